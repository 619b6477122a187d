//! The real `plexus` binary with `kubeconfig` against a real API server (`scripts/with-kube`)
//! as root in real network namespaces: pods created as API objects ask for networks with
//! DANM's interfaces annotation and NPWG's networks annotation (a NAD naming a plexus
//! network) and get every interface, with network-status written and read back; a
//! forbidden namespace, a missing network and an unreachable API server give their CNI
//! errors and allocate nothing; a pod re-created under its name never gets or touches the
//! old incarnation's addresses and status; DEL removes the status.
//!
//! Skipped with a printed reason without root and Debian's plugins (a failure under
//! `PLEXUS_REQUIRE_PRIVILEGED=1`) or without an API server (under `PLEXUS_REQUIRE_KUBE=1`).

#[path = "../support/mod.rs"]
mod support;

mod cluster;

use kube::{Api, Client};
use plexus_k8s::pod::PodKey;
use plexus_k8s::{ClusterNetwork, DanmNet, NetworkAttachmentDefinition};
use serde_json::{Value, json};
use support::World;
use support::netns::{
    HostLink, Netns, Run, assert_pod_empty, exec_with, plugin_path, privileged, veth,
};

use cluster::{
    apply_crds, cni_args, create, create_pod, delete_namespace, delete_pod, namespace, status,
    unique,
};

/// Everything one test sets up: the world (store, records), the cluster client, its
/// namespace, the host parents and the names of its cluster-scoped networks.
struct Setup {
    world: World,
    rt: tokio::runtime::Runtime,
    client: Client,
    kubeconfig: String,
    ns: String,
    /// The default network (ClusterNetwork, netconf `defaultNetwork`).
    dflt: String,
    /// A ClusterNetwork every namespace may use.
    blue: String,
    /// A ClusterNetwork only namespace `ops` may use.
    private: String,
    _links: Vec<HostLink>,
}

/// Root, Debian's plugins and an API server, or `None` after printing why not.
fn setup(test: &str) -> Option<Setup> {
    if !privileged(test) {
        return None;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (kubeconfig, client) = rt.block_on(cluster::client(test))?;
    let mut world = World::new("");
    world.cni_path = plugin_path(world.dir.path());
    let (a, b, c) = (veth(), veth(), veth());
    let (dflt, blue, private) = (unique("dflt"), unique("blue"), unique("priv"));
    let ns = rt.block_on(async {
        apply_crds(&client).await;
        let ns = namespace(&client, "plexus").await;
        let cluster = |name: &str, parent: &str, cidr: &str, extra: Value| {
            let mut spec = json!({"NetworkID": "n", "NetworkType": "macvlan",
                                  "Options": {"host_device": parent, "cidr": cidr}});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
                   "metadata": {"name": name}, "spec": spec})
        };
        create::<ClusterNetwork>(
            Api::all(client.clone()),
            cluster(&dflt, &c.0, "10.93.0.0/24", json!({})),
        )
        .await;
        let mut blue_spec = cluster(&blue, &a.0, "10.91.0.0/24", json!({}));
        blue_spec["spec"]["Options"]["net6"] = json!("fd91::/64");
        create::<ClusterNetwork>(Api::all(client.clone()), blue_spec).await;
        let allowed = json!({"AllowedTenants": ["ops"]});
        create::<ClusterNetwork>(
            Api::all(client.clone()),
            cluster(&private, &a.0, "10.94.0.0/24", allowed),
        )
        .await;
        create::<DanmNet>(
            Api::namespaced(client.clone(), &ns),
            json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
                   "metadata": {"name": "green", "namespace": ns},
                   "spec": {"NetworkID": "green", "NetworkType": "macvlan",
                            "Options": {"host_device": b.0, "cidr": "10.92.0.0/24"}}}),
        )
        .await;
        let config = json!({"cniVersion": "1.0.0", "name": "bluenad", "type": "plexus",
                            "clusterNetwork": blue});
        create::<NetworkAttachmentDefinition>(
            Api::namespaced(client.clone(), &ns),
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": "bluenad", "namespace": ns},
                   "spec": {"config": config.to_string()}}),
        )
        .await;
        ns
    });
    Some(Setup {
        world,
        rt,
        client,
        kubeconfig,
        ns,
        dflt,
        blue,
        private,
        _links: vec![a, b, c],
    })
}

impl Setup {
    /// The netconf: the world's store and records, the cluster's kubeconfig.
    fn conf(&self) -> Value {
        let mut conf = self.world.conf(None);
        conf["kubeconfig"] = json!(self.kubeconfig);
        conf["defaultNetwork"] = json!(self.dflt);
        conf
    }

    fn pod(&self, name: &str, annotations: &[(&str, &str)]) -> PodKey {
        self.rt
            .block_on(create_pod(&self.client, &self.ns, name, annotations))
    }

    fn run(&self, verb: &str, container: &str, netns: &Netns, key: &PodKey) -> Run {
        exec_with(
            &self.world,
            verb,
            container,
            netns,
            &self.conf(),
            &cni_args(key),
        )
    }

    fn status(&self, key: &PodKey) -> Option<Vec<plexus_k8s::status::NetworkStatusEntry>> {
        self.rt.block_on(status(&self.client, key))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.rt.block_on(async {
            let api: kube::Api<ClusterNetwork> = kube::Api::all(self.client.clone());
            for name in [&self.dflt, &self.blue, &self.private] {
                let _ = api.delete(name, &Default::default()).await;
            }
            delete_namespace(&self.client, &self.ns).await;
        });
    }
}

/// The addresses the result puts on the pod interface `ifname` (without prefix).
fn addresses_on(result: &Value, ifname: &str) -> Vec<String> {
    let index = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .position(|i| i["name"] == json!(ifname) && i["sandbox"].is_string())
        .unwrap_or_else(|| panic!("no interface {ifname}: {result}"));
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ip| ip["interface"] == json!(index))
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Asserts success; the result.
fn ok(run: Run) -> Value {
    assert_eq!(
        run.code, 0,
        "expected success: {}\n{}",
        run.value, run.stderr
    );
    run.value
}

/// Asserts the CNI error `code`; its message.
fn refused(run: &Run, code: u64) -> String {
    assert_ne!(run.code, 0, "expected CNI error {code}: {}", run.value);
    assert_eq!(run.value["code"].as_u64(), Some(code), "{}", run.value);
    run.value["msg"].as_str().unwrap_or_default().to_owned()
}

/// Each network-status entry: name, interface, addresses, default.
fn summary(
    entries: &[plexus_k8s::status::NetworkStatusEntry],
) -> Vec<(String, String, Vec<String>, bool)> {
    entries
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.interface.clone().unwrap_or_default(),
                e.ips.iter().map(ToString::to_string).collect(),
                e.default,
            )
        })
        .collect()
}

#[test]
fn danm_and_npwg_pods_get_every_interface_and_their_network_status() {
    let Some(s) = setup("danm_and_npwg_pods_get_every_interface_and_their_network_status") else {
        return;
    };
    let danm = format!(
        r#"[{{"clusterNetwork":"{}","ip":"dynamic","ip6":"dynamic"}},{{"network":"green","ip":"dynamic"}}]"#,
        s.blue
    );
    let a = s.pod("danm", &[("danm.k8s.io/interfaces", &danm)]);
    let b = s.pod("npwg", &[("k8s.v1.cni.cncf.io/networks", "bluenad@net1")]);
    let (pa, pb) = (Netns::new("plxp"), Netns::new("plxp"));

    let ra = ok(s.run("ADD", "ctr-a", &pa, &a));
    let links = pa.text(&["ip", "-o", "link"]);
    for name in ["eth0", "eth1"] {
        assert!(links.contains(&format!(": {name}@")), "{name}: {links}");
    }
    let green = format!("{}/green", s.ns);
    assert_eq!(
        summary(&s.status(&a).expect("network-status of the DANM pod")),
        vec![
            (
                s.blue.clone(),
                "eth0".into(),
                addresses_on(&ra, "eth0"),
                true
            ),
            (
                green.clone(),
                "eth1".into(),
                addresses_on(&ra, "eth1"),
                false
            ),
        ]
    );
    assert_eq!(addresses_on(&ra, "eth0").len(), 2, "dual stack: {ra}");
    assert_eq!(s.world.held(&s.blue).len(), 2);
    assert_eq!(s.world.held(&green).len(), 1);

    let rb = ok(s.run("ADD", "ctr-b", &pb, &b));
    let links = pb.text(&["ip", "-o", "link"]);
    for name in ["eth0", "net1"] {
        assert!(links.contains(&format!(": {name}@")), "{name}: {links}");
    }
    let eth0 = addresses_on(&rb, "eth0");
    assert!(
        eth0[0].starts_with("10.93.0."),
        "the default network first: {rb}"
    );
    assert_eq!(
        summary(&s.status(&b).expect("network-status of the NPWG pod")),
        vec![
            (s.dflt.clone(), "eth0".into(), eth0, true),
            (
                format!("{}/bluenad", s.ns),
                "net1".into(),
                addresses_on(&rb, "net1"),
                false
            ),
        ]
    );
    assert_eq!(s.world.held(&s.blue).len(), 4);

    // DEL removes the status and the addresses; again, it is still a success.
    ok(s.run("DEL", "ctr-a", &pa, &a));
    assert_eq!(s.status(&a), None);
    assert_pod_empty(&pa);
    assert_eq!(s.world.held(&green).len(), 0);
    ok(s.run("DEL", "ctr-a", &pa, &a));
    // A pod already gone: DEL releases its addresses and succeeds.
    s.rt.block_on(delete_pod(&s.client, &b));
    ok(s.run("DEL", "ctr-b", &pb, &b));
    assert_eq!(s.world.held(&s.blue).len(), 0);
    assert_eq!(s.world.held(&s.dflt).len(), 0);
    assert!(s.world.records().is_empty(), "{:?}", s.world.records());
}

#[test]
fn refused_requests_give_their_cni_error_and_allocate_nothing() {
    let Some(s) = setup("refused_requests_give_their_cni_error_and_allocate_nothing") else {
        return;
    };
    let forbidden = format!(r#"[{{"clusterNetwork":"{}","ip":"dynamic"}}]"#, s.private);
    let missing = format!(
        r#"[{{"clusterNetwork":"{}","ip":"dynamic"}},{{"clusterNetwork":"nosuchnet","ip":"dynamic"}}]"#,
        s.blue
    );
    let c = s.pod("forbidden", &[("plexus.io/interfaces", &forbidden)]);
    let d = s.pod("missing", &[("danm.k8s.io/interfaces", &missing)]);
    let e = s.pod("nonad", &[("k8s.v1.cni.cncf.io/networks", "nosuchnad")]);
    let pod = Netns::new("plxp");

    let msg = refused(&s.run("ADD", "ctr-c", &pod, &c), 7);
    assert!(
        msg.contains(&s.private) && msg.contains("may not use"),
        "{msg}"
    );
    let msg = refused(&s.run("ADD", "ctr-d", &pod, &d), 7);
    assert!(
        msg.contains("nosuchnet") && msg.contains("not found"),
        "{msg}"
    );
    let msg = refused(&s.run("ADD", "ctr-e", &pod, &e), 7);
    assert!(
        msg.contains("nosuchnad") && msg.contains("not found"),
        "{msg}"
    );
    for key in [&c, &d, &e] {
        assert_eq!(s.status(key), None, "{key}");
    }

    // An API server that does not answer: try again later.
    let dead = s.world.dir.path().join("dead.kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: c, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let mut conf = s.conf();
    conf["kubeconfig"] = json!(dead);
    let run = exec_with(&s.world, "ADD", "ctr-f", &pod, &conf, &cni_args(&d));
    let msg = refused(&run, 11);
    assert!(msg.contains("get pod"), "{msg}");

    for network in [&s.blue, &s.private, &s.dflt] {
        assert!(s.world.held(network).is_empty(), "{network}");
    }
    assert!(s.world.records().is_empty(), "{:?}", s.world.records());
    assert_pod_empty(&pod);
}

#[test]
fn a_recreated_pod_neither_inherits_nor_touches_the_old_addresses() {
    let Some(s) = setup("a_recreated_pod_neither_inherits_nor_touches_the_old_addresses") else {
        return;
    };
    let request = format!(r#"[{{"clusterNetwork":"{}","ip":"dynamic"}}]"#, s.blue);
    let annotations = [("danm.k8s.io/interfaces", request.as_str())];
    let old = s.pod("web-0", &annotations);
    let (p1, p2, p3) = (Netns::new("plxp"), Netns::new("plxp"), Netns::new("plxp"));
    let r1 = ok(s.run("ADD", "ctr-1", &p1, &old));
    let old_address = addresses_on(&r1, "eth0");

    s.rt.block_on(delete_pod(&s.client, &old));
    let new = s.pod("web-0", &annotations);
    assert_ne!(old.uid, new.uid);

    // A late ADD for the old incarnation: refused, nothing allocated, nothing written.
    let msg = refused(&s.run("ADD", "ctr-late", &p3, &old), 4);
    assert!(msg.contains("re-created"), "{msg}");
    assert_eq!(s.world.held(&s.blue).len(), 1);
    assert_eq!(s.status(&new), None);
    assert_pod_empty(&p3);

    let r2 = ok(s.run("ADD", "ctr-2", &p2, &new));
    let new_address = addresses_on(&r2, "eth0");
    assert_ne!(new_address, old_address);
    let entries = s.status(&new).expect("the new pod's network-status");
    assert_eq!(summary(&entries)[0].2, new_address);

    // The old incarnation's DEL releases its address and leaves the new pod's status.
    ok(s.run("DEL", "ctr-1", &p1, &old));
    assert_eq!(s.status(&new).map(|e| summary(&e)), Some(summary(&entries)));
    let held: Vec<String> = s
        .world
        .held(&s.blue)
        .iter()
        .map(|a| a.ip.to_string())
        .collect();
    assert_eq!(held, new_address);

    ok(s.run("DEL", "ctr-2", &p2, &new));
    assert_eq!(s.status(&new), None);
    assert!(s.world.held(&s.blue).is_empty());
}
