//! NPWG's NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`): the object, the CRD Multus
//! installs (the test cluster installs it too), and a reader of its CNI configuration that
//! recognises what plexus serves.
//!
//! A NAD's `spec.config` is a CNI configuration or configuration list as a JSON string
//! (empty: an on-disk configuration named like the NAD). plexus serves an attachment when
//! - a plugin of the configuration is `"type": "plexus"`, optionally naming its network like
//!   DANM's interfaces annotation does: `"clusterNetwork"`, `"tenantNetwork"` or `"network"`
//!   (a DanmNet), namespaced kinds in the NAD's namespace; or
//! - a plugin's IPAM is `"type": "plexus-ipam"`, optionally naming a stored plexus network
//!   (`"ipam": {"network": "blue"}`, also `network_name`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::NamespaceResourceScope;
use plexus_model::names::dns_subdomain_problem;
use plexus_model::{NetworkRef, NetworkRefKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::crd_from_json;
use crate::foreign::foreign_resource;

/// NPWG's API group.
pub const GROUP: &str = "k8s.cni.cncf.io";
/// Largest `spec.config` read, in bytes (the pod annotations' limit, `plexus_model`'s
/// `MAX_ANNOTATION_BYTES`; a CNI configuration is a few hundred bytes).
pub const MAX_CONFIG_BYTES: usize = plexus_model::annotation::MAX_ANNOTATION_BYTES;
/// The `type` of plexus' meta-plugin.
pub const PLEXUS_TYPE: &str = "plexus";
/// The `ipam.type` of plexus' IPAM plugin.
pub const PLEXUS_IPAM_TYPE: &str = "plexus-ipam";

/// The spec of a NetworkAttachmentDefinition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NadSpec {
    /// The CNI configuration (or configuration list) as a JSON string.
    #[serde(default)]
    pub config: String,
}

foreign_resource! {
    /// A NetworkAttachmentDefinition: one network a pod may ask for in its
    /// `k8s.v1.cni.cncf.io/networks` annotation.
    NetworkAttachmentDefinition {
        group: "k8s.cni.cncf.io",
        version: "v1",
        kind: "NetworkAttachmentDefinition",
        plural: "network-attachment-definitions",
        scope: NamespaceResourceScope,
        spec: NadSpec,
    }
}

/// The CRD, as NPWG's reference deployment (Multus) installs it.
pub fn crd() -> CustomResourceDefinition {
    crd_from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("network-attachment-definitions.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "NetworkAttachmentDefinition",
                "plural": "network-attachment-definitions",
                "singular": "network-attachment-definition",
                "shortNames": ["net-attach-def"],
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "description": "NetworkAttachmentDefinition is a CRD schema specified by the Network Plumbing Working Group to express the intent for attaching pods to one or more logical or physical networks. More information available at: https://github.com/k8snetworkplumbingwg/multi-net-spec",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "description": "NetworkAttachmentDefinition spec defines the desired state of a network attachment",
                            "type": "object",
                            "properties": {
                                "config": {
                                    "description": "NetworkAttachmentDefinition config is a JSON-formatted CNI configuration",
                                    "type": "string",
                                },
                            },
                        },
                    },
                }},
            }],
        },
    }))
}

/// A NAD configuration plexus cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NadError {
    /// `spec.config` is over [`MAX_CONFIG_BYTES`].
    #[error(
        "NetworkAttachmentDefinition {nad}: spec.config is {bytes} bytes; at most {MAX_CONFIG_BYTES} are read"
    )]
    TooLarge {
        /// `namespace/name` of the NAD.
        nad: String,
        /// The size of its config.
        bytes: usize,
    },
    /// `spec.config` is not a JSON object.
    #[error("NetworkAttachmentDefinition {nad}: spec.config is not a JSON object: {detail}")]
    Syntax {
        /// `namespace/name` of the NAD.
        nad: String,
        /// What the parser found.
        detail: String,
    },
    /// The JSON is not a CNI configuration or configuration list, or names a plexus network
    /// badly.
    #[error("NetworkAttachmentDefinition {nad}: spec.config {field}: {detail}")]
    Invalid {
        /// `namespace/name` of the NAD.
        nad: String,
        /// Where in the config (`type`, `plugins[1].ipam.network`, ...).
        field: String,
        /// What is wrong.
        detail: String,
    },
}

/// What a NAD asks of plexus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlexusAttachment {
    /// `"type": "plexus"`: the meta-plugin sets the attachment up; on the named network, or,
    /// when none is named, as its configuration and the pod's request decide.
    MetaPlugin {
        /// The network the configuration names.
        network: Option<NetworkRef>,
    },
    /// A plugin whose IPAM is `plexus-ipam`.
    Ipam {
        /// The plugin's `type` (`macvlan`, `bridge`, ...).
        plugin: String,
        /// The stored plexus network of `ipam.network`; `None` when the IPAM section
        /// carries its own ranges.
        network: Option<String>,
    },
}

/// A NAD's CNI configuration, read.
#[derive(Debug, Clone, PartialEq)]
pub struct NadConfig {
    /// `name` (NPWG: injected from the NAD's name when absent).
    pub name: Option<String>,
    /// `cniVersion`.
    pub cni_version: Option<String>,
    /// Whether the configuration is a list (`plugins`).
    pub is_list: bool,
    /// The plugin configurations: the one of a single configuration, or the list's.
    pub plugins: Vec<Map<String, Value>>,
    /// What plexus serves, from the first plugin that is plexus or uses plexus-ipam.
    pub plexus: Option<PlexusAttachment>,
}

impl NetworkAttachmentDefinition {
    /// `namespace/name` (namespace `default` when unset).
    pub fn qualified_name(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The NAD's CNI configuration, read; `None` when `spec.config` is empty (the runtime
    /// then looks for an on-disk configuration named like the NAD).
    pub fn cni_config(&self) -> Result<Option<NadConfig>, NadError> {
        parse_nad_config(
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or_default(),
            &self.spec.config,
        )
    }
}

/// Read the CNI configuration `config` of the NAD `namespace/name`; `None` when empty.
pub fn parse_nad_config(
    namespace: &str,
    name: &str,
    config: &str,
) -> Result<Option<NadConfig>, NadError> {
    let nad = format!("{namespace}/{name}");
    if config.len() > MAX_CONFIG_BYTES {
        return Err(NadError::TooLarge {
            nad,
            bytes: config.len(),
        });
    }
    if config.trim().is_empty() {
        return Ok(None);
    }
    let root: Map<String, Value> = serde_json::from_str(config).map_err(|e| NadError::Syntax {
        nad: nad.clone(),
        detail: e.to_string(),
    })?;
    let invalid = |field: String, detail: String| NadError::Invalid {
        nad: nad.clone(),
        field,
        detail,
    };
    let text = |map: &Map<String, Value>, key: &str, path: &str| match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            format!("{path}{key}"),
            format!("must be a string, not {other}"),
        )),
    };
    let name_field = text(&root, "name", "")?;
    let cni_version = text(&root, "cniVersion", "")?;
    let (is_list, plugins) = match root.get("plugins") {
        Some(Value::Array(list)) => {
            let mut plugins = Vec::with_capacity(list.len());
            for (i, plugin) in list.iter().enumerate() {
                match plugin {
                    Value::Object(map) => plugins.push(map.clone()),
                    other => {
                        return Err(invalid(
                            format!("plugins[{i}]"),
                            format!("must be an object, not {other}"),
                        ));
                    }
                }
            }
            if plugins.is_empty() {
                return Err(invalid("plugins".into(), "lists no plugin".into()));
            }
            (true, plugins)
        }
        Some(other) => {
            return Err(invalid(
                "plugins".into(),
                format!("must be a list, not {other}"),
            ));
        }
        None => (false, vec![root.clone()]),
    };
    let mut plexus = None;
    for (i, plugin) in plugins.iter().enumerate() {
        let path = if is_list {
            format!("plugins[{i}].")
        } else {
            String::new()
        };
        let Some(plugin_type) = text(plugin, "type", &path)? else {
            return Err(invalid(format!("{path}type"), "is missing".into()));
        };
        let found = if plugin_type == PLEXUS_TYPE {
            Some(PlexusAttachment::MetaPlugin {
                network: meta_plugin_network(plugin, namespace, &path)
                    .map_err(|(f, d)| invalid(f, d))?,
            })
        } else {
            match plugin.get("ipam") {
                Some(Value::Object(ipam)) if ipam.get("type") == Some(&json!(PLEXUS_IPAM_TYPE)) => {
                    let ipam_path = format!("{path}ipam.");
                    let network = match text(ipam, "network", &ipam_path)? {
                        Some(n) => Some(n),
                        None => text(ipam, "network_name", &ipam_path)?,
                    };
                    if let Some(n) = &network
                        && let Some(problem) = dns_subdomain_problem(n)
                    {
                        return Err(invalid(format!("{ipam_path}network"), problem));
                    }
                    Some(PlexusAttachment::Ipam {
                        plugin: plugin_type,
                        network,
                    })
                }
                _ => None,
            }
        };
        if plexus.is_none() {
            plexus = found;
        }
    }
    Ok(Some(NadConfig {
        name: name_field,
        cni_version,
        is_list,
        plugins,
        plexus,
    }))
}

/// The network a `"type": "plexus"` plugin names, if any: at most one of `clusterNetwork`,
/// `tenantNetwork`, `network`.
fn meta_plugin_network(
    plugin: &Map<String, Value>,
    namespace: &str,
    path: &str,
) -> Result<Option<NetworkRef>, (String, String)> {
    let mut found: Option<(NetworkRef, &str)> = None;
    for (key, kind) in [
        ("clusterNetwork", NetworkRefKind::ClusterNetwork),
        ("tenantNetwork", NetworkRefKind::TenantNetwork),
        ("network", NetworkRefKind::DanmNet),
    ] {
        let Some(value) = plugin.get(key) else {
            continue;
        };
        let field = format!("{path}{key}");
        let Value::String(name) = value else {
            return Err((field, format!("must be a network name, not {value}")));
        };
        if let Some(problem) = dns_subdomain_problem(name) {
            return Err((field, problem));
        }
        if let Some((_, first)) = &found {
            return Err((
                field,
                format!("names a second network (after {path}{first}); name one"),
            ));
        }
        let namespace = (kind != NetworkRefKind::ClusterNetwork).then(|| namespace.to_owned());
        found = Some((
            NetworkRef {
                kind,
                name: name.clone(),
                namespace,
            },
            key,
        ));
    }
    Ok(found.map(|(r, _)| r))
}

#[cfg(test)]
mod tests;
