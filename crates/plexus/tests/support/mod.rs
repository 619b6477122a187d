//! Shared set-up of the meta-plugin tests: a temporary directory with network definitions,
//! a SQLite store and endpoint records, and the plugin run the way a runtime calls it.

#![allow(dead_code)]

pub mod netns;

use std::path::PathBuf;
use std::sync::Arc;

use plexus::PlexusPlugin;
use plexus_netlink::{FakeDataplane, Netns};
use plexus_store::{Allocation, StoreConfig};
use serde_json::{Value, json};
use tempfile::TempDir;

/// What one invocation produced.
#[derive(Debug)]
pub struct Reply {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
}

impl Reply {
    /// Asserts success; the parsed result or Null.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "expected success: {}", self.stdout);
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.stdout).unwrap()
        }
    }

    /// Asserts a CNI error with `code`; returns the error object.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(self.code, 0, "expected failure {code}: {}", self.stdout);
        let v: Value = serde_json::from_str(&self.stdout).unwrap();
        assert_eq!(v["code"].as_u64(), Some(code), "{v}");
        v
    }
}

/// A test world.
pub struct World {
    /// Everything on disk.
    pub dir: TempDir,
    /// Extra environment (e.g. `CNI_PATH`).
    pub cni_path: String,
    /// The pod's netns path as passed in `CNI_NETNS`.
    pub netns: String,
}

impl World {
    /// An empty world; `netns` is the pod's netns path.
    pub fn new(netns: &str) -> World {
        let dir = TempDir::new().unwrap();
        for sub in ["networks", "cni"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        World {
            dir,
            cni_path: String::new(),
            netns: netns.to_owned(),
        }
    }

    /// The SQLite file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("plexus.db")
    }

    /// Directory of static delegate configurations.
    pub fn cni_dir(&self) -> PathBuf {
        self.dir.path().join("cni")
    }

    /// Writes a ClusterNetwork definition.
    pub fn cluster_network(&self, name: &str, network_type: &str, options: Value) {
        self.cluster_network_with(name, network_type, options, json!({}));
    }

    /// Writes a ClusterNetwork definition with annotations.
    pub fn cluster_network_with(
        &self,
        name: &str,
        network_type: &str,
        options: Value,
        annotations: Value,
    ) {
        let object = json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"NetworkID": name, "NetworkType": network_type, "Options": options}});
        std::fs::write(
            self.dir
                .path()
                .join("networks")
                .join(format!("{name}.json")),
            object.to_string(),
        )
        .unwrap();
    }

    /// The plexus netconf asking for `networks` (none: the default network).
    pub fn conf(&self, networks: Option<Value>) -> Value {
        let mut conf = json!({"cniVersion": "1.1.0", "name": "plexus", "type": "plexus",
            "store": {"type": "sqlite", "path": self.db()},
            "networksDir": self.dir.path().join("networks"),
            "stateDir": self.dir.path().join("state"),
            "cniDir": self.cni_dir(), "maxParallel": 1, "nodeName": "test-node",
            "timeouts": {"addMs": 20000, "delMs": 20000}});
        if let Some(networks) = networks {
            conf["runtimeConfig"] = json!({"plexus.networks": networks});
        }
        conf
    }

    /// Runs `verb` for `container` through the CNI runner.
    pub fn run(&self, plugin: &PlexusPlugin, verb: &str, container: &str, conf: &Value) -> Reply {
        let netns = self.netns.clone();
        let cni_path = self.cni_path.clone();
        let container = container.to_owned();
        let verb = verb.to_owned();
        let var = move |k: &str| match k {
            "CNI_COMMAND" => Some(verb.clone()),
            "CNI_CONTAINERID" => Some(container.clone()),
            "CNI_NETNS" => Some(netns.clone()),
            "CNI_IFNAME" => Some("eth0".to_owned()),
            "CNI_PATH" => Some(cni_path.clone()),
            "CNI_ARGS" => Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p".to_owned()),
            _ => None,
        };
        let mut out = Vec::new();
        let code = plexus_cni::run(plugin, "test", var, conf.to_string().as_bytes(), &mut out);
        Reply {
            code,
            stdout: String::from_utf8(out).unwrap(),
        }
    }

    /// Every allocation of `network` in the store.
    pub fn held(&self, network: &str) -> Vec<Allocation> {
        let config = StoreConfig::from_json(Some(&json!({"path": self.db()}))).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let store = plexus_store::open(&config).await.unwrap();
                store.list(network).await.unwrap()
            })
    }

    /// Endpoint record files left in the state directory.
    pub fn records(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("state")) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A plugin over a fake host with NICs `eth1` (MTU 1500) and `eth2` (MTU 9000) and a pod
/// netns at `pod`.
pub fn fake_plugin(pod: &str) -> (PlexusPlugin, Arc<FakeDataplane>) {
    let fake = Arc::new(FakeDataplane::new());
    fake.add_device(&Netns::Host, "eth1", 1500);
    fake.add_device(&Netns::Host, "eth2", 9000);
    fake.add_netns(&Netns::path(pod));
    let plugin = PlexusPlugin {
        dataplane: Some(fake.clone()),
        ..PlexusPlugin::default()
    };
    (plugin, fake)
}
