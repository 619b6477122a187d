//! Tests of the NAD reader: what plexus serves, what it leaves to others, and clear errors.

use plexus_model::{NetworkRef, NetworkRefKind};

use super::*;

fn read(config: &str) -> Result<Option<NadConfig>, NadError> {
    parse_nad_config("team-a", "net1", config)
}

fn plexus_of(config: &str) -> Option<PlexusAttachment> {
    match read(config) {
        Ok(Some(c)) => c.plexus,
        other => panic!("{config}: {other:?}"),
    }
}

#[test]
fn the_meta_plugin_and_the_network_it_names() {
    assert_eq!(
        plexus_of(r#"{"cniVersion": "1.0.0", "type": "plexus", "clusterNetwork": "blue"}"#),
        Some(PlexusAttachment::MetaPlugin {
            network: Some(NetworkRef {
                kind: NetworkRefKind::ClusterNetwork,
                name: "blue".into(),
                namespace: None,
            })
        })
    );
    // Namespaced kinds are looked up in the NAD's namespace.
    assert_eq!(
        plexus_of(r#"{"type": "plexus", "tenantNetwork": "red"}"#),
        Some(PlexusAttachment::MetaPlugin {
            network: Some(NetworkRef {
                kind: NetworkRefKind::TenantNetwork,
                name: "red".into(),
                namespace: Some("team-a".into()),
            })
        })
    );
    assert_eq!(
        plexus_of(r#"{"type": "plexus", "network": "green"}"#),
        Some(PlexusAttachment::MetaPlugin {
            network: Some(NetworkRef {
                kind: NetworkRefKind::DanmNet,
                name: "green".into(),
                namespace: Some("team-a".into()),
            })
        })
    );
    assert_eq!(
        plexus_of(r#"{"type": "plexus", "store": {"type": "sqlite"}}"#),
        Some(PlexusAttachment::MetaPlugin { network: None })
    );
}

#[test]
fn plexus_ipam_in_a_single_config_or_a_list() {
    assert_eq!(
        plexus_of(
            r#"{"cniVersion": "1.0.0", "name": "macvlan-blue", "type": "macvlan", "master": "eth0",
                "ipam": {"type": "plexus-ipam", "network": "blue"}}"#
        ),
        Some(PlexusAttachment::Ipam {
            plugin: "macvlan".into(),
            network: Some("blue".into()),
        })
    );
    let list = read(
        r#"{"cniVersion": "1.0.0", "name": "br", "plugins": [
              {"type": "bridge", "bridge": "br0",
               "ipam": {"type": "plexus-ipam", "range": "10.1.0.0/24"}},
              {"type": "tuning", "sysctl": {}}]}"#,
    )
    .unwrap()
    .unwrap();
    assert!(list.is_list);
    assert_eq!(list.plugins.len(), 2);
    assert_eq!(list.name.as_deref(), Some("br"));
    assert_eq!(list.cni_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        list.plexus,
        Some(PlexusAttachment::Ipam {
            plugin: "bridge".into(),
            network: None,
        })
    );
    // whereabouts' spelling of the stored-network key.
    assert_eq!(
        plexus_of(r#"{"type": "ipvlan", "ipam": {"type": "plexus-ipam", "network_name": "x"}}"#),
        Some(PlexusAttachment::Ipam {
            plugin: "ipvlan".into(),
            network: Some("x".into()),
        })
    );
}

#[test]
fn other_configs_are_read_but_not_plexus() {
    let config = read(
        r#"{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
            "ipam": {"type": "whereabouts", "range": "10.2.0.0/24"}}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(config.plexus, None);
    assert!(!config.is_list);
    assert_eq!(config.name, None);
    assert_eq!(read("").unwrap(), None);
    assert_eq!(read("  \n").unwrap(), None);
}

#[test]
fn broken_configs_are_clear_errors() {
    let cases = [
        (r#"{"type": "plexus""#, "not a JSON object"),
        (r#"["plexus"]"#, "not a JSON object"),
        (r#"{"name": "x"}"#, "spec.config type: is missing"),
        (r#"{"type": 7}"#, "spec.config type: must be a string"),
        (r#"{"plugins": {}}"#, "spec.config plugins: must be a list"),
        (r#"{"plugins": []}"#, "lists no plugin"),
        (
            r#"{"plugins": ["bridge"]}"#,
            "spec.config plugins[0]: must be an object",
        ),
        (
            r#"{"plugins": [{"type": "bridge"}, {"name": "x"}]}"#,
            "spec.config plugins[1].type: is missing",
        ),
        (
            r#"{"type": "plexus", "clusterNetwork": "blue", "tenantNetwork": "red"}"#,
            "spec.config tenantNetwork: names a second network (after clusterNetwork)",
        ),
        (
            r#"{"type": "plexus", "clusterNetwork": "Blue_Net"}"#,
            "spec.config clusterNetwork: must be a DNS-1123 subdomain",
        ),
        (
            r#"{"type": "plexus", "network": 5}"#,
            "spec.config network: must be a network name",
        ),
        (
            r#"{"type": "macvlan", "ipam": {"type": "plexus-ipam", "network": "../etc"}}"#,
            "spec.config ipam.network: must be a DNS-1123 subdomain",
        ),
    ];
    for (config, expected) in cases {
        let err = read(config).unwrap_err().to_string();
        assert!(
            err.starts_with("NetworkAttachmentDefinition team-a/net1: "),
            "{config}: {err}"
        );
        assert!(err.contains(expected), "{config}: {err}");
    }
    let big = format!(
        r#"{{"type": "plexus", "pad": "{}"}}"#,
        "x".repeat(MAX_CONFIG_BYTES)
    );
    assert!(matches!(read(&big), Err(NadError::TooLarge { .. })));
}

#[test]
fn a_nad_without_spec_reads_and_writes_its_api_version() -> Result<(), serde_json::Error> {
    let nad: NetworkAttachmentDefinition = serde_json::from_str(
        r#"{"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "on-disk", "namespace": "team-a"}}"#,
    )?;
    assert_eq!(nad.spec.config, "");
    assert_eq!(nad.cni_config(), Ok(None));
    assert_eq!(nad.qualified_name(), "team-a/on-disk");
    let mut nad = NetworkAttachmentDefinition::new(
        "blue",
        NadSpec {
            config: r#"{"type": "plexus", "clusterNetwork": "blue"}"#.into(),
        },
    );
    nad.metadata.namespace = Some("team-a".into());
    let text = serde_json::to_string(&nad)?;
    assert!(text.starts_with(
        r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","#
    ));
    let again: NetworkAttachmentDefinition = serde_json::from_str(&text)?;
    assert_eq!(again, nad);
    assert!(matches!(
        again.cni_config(),
        Ok(Some(NadConfig {
            plexus: Some(PlexusAttachment::MetaPlugin { network: Some(_) }),
            ..
        }))
    ));
    Ok(())
}
