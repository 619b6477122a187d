//! `plexusctl exec VERB NETWORK [NETNS]`: run a CNI configuration from a directory against
//! a network namespace, like cnitool, with libcni's result cache, so plexus can be tried
//! (and debugged) without a container runtime.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout, write_structured};
use crate::runner::cache::DEFAULT_CACHE_DIR;
use crate::runner::invoke::CniEnv;
use crate::runner::{Runner, conf};

/// Where plugins are looked for when neither --cni-path nor CNI_PATH says.
pub const DEFAULT_CNI_PATH: &str = "/opt/cni/bin:/usr/lib/cni";

/// The CNI verbs `exec` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Verb {
    /// Attach: run every plugin's ADD, print and cache the result.
    Add,
    /// Verify an attachment against its cached result.
    Check,
    /// Detach: every plugin's DEL in reverse order.
    Del,
    /// Ask every plugin whether it is ready (CNI 1.1.0).
    Status,
    /// Collect what belongs to no valid attachment (CNI 1.1.0).
    Gc,
}

/// Arguments of `exec`.
#[derive(Debug, Args)]
pub struct Exec {
    /// The verb.
    #[arg(value_enum)]
    pub verb: Verb,
    /// The network (the configuration's `name`).
    pub network: String,
    /// The network namespace: a name under /run/netns or a path. Needed by add, check
    /// and del.
    pub netns: Option<String>,
    /// Interface name inside the namespace.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// Container id (default: derived from the netns path, stable across calls).
    #[arg(long)]
    pub container_id: Option<String>,
    /// Directory of network configurations (default: --cni-conf-dir / settings).
    #[arg(long, value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// libcni result cache directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
    /// Plugin directories, `:`-separated.
    #[arg(long, env = "CNI_PATH", value_name = "DIRS", default_value = DEFAULT_CNI_PATH)]
    pub cni_path: String,
    /// CNI_ARGS, e.g. `K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod`.
    #[arg(long, env = "CNI_ARGS", default_value = "")]
    pub args: String,
    /// Capability arguments as JSON (`{"ips": ["10.0.0.5/24"]}`), given to the plugins
    /// that declare the capability (cnitool's CAP_ARGS).
    #[arg(long, env = "CAP_ARGS", value_name = "JSON")]
    pub runtime_config: Option<String>,
    /// gc: JSON file of the valid attachments (`[{"containerID", "ifname"}]`).
    #[arg(long, value_name = "FILE", conflicts_with = "valid_from_cache")]
    pub valid: Option<PathBuf>,
    /// gc: the attachments in the result cache are the valid ones (what libcni does; only
    /// right when this cache knows every attachment of the network).
    #[arg(long)]
    pub valid_from_cache: bool,
}

impl Exec {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let dir = self
            .conf_dir
            .clone()
            .unwrap_or_else(|| ctx.settings.cni_conf_dir.clone());
        let list = conf::load(&dir, &self.network)?;
        let runtime_config = match &self.runtime_config {
            Some(text) => serde_json::from_str::<Value>(text)
                .map_err(|e| CtlError::invalid("--runtime-config", e.to_string()))?,
            None => Value::Object(Default::default()),
        };
        let needs_netns = matches!(self.verb, Verb::Add | Verb::Check | Verb::Del);
        let netns = match (&self.netns, needs_netns) {
            (Some(ns), _) => netns_path(ns),
            (None, false) => String::new(),
            (None, true) => {
                return Err(CtlError::invalid("exec", "add, check and del need a NETNS"));
            }
        };
        if matches!(self.verb, Verb::Add | Verb::Check) && !std::path::Path::new(&netns).exists() {
            return Err(CtlError::invalid(
                "NETNS",
                format!("{netns} does not exist"),
            ));
        }
        let env = CniEnv {
            container_id: match (&self.container_id, needs_netns) {
                (Some(id), _) => id.clone(),
                (None, true) => container_id_for(&netns),
                (None, false) => String::new(),
            },
            netns,
            ifname: if needs_netns {
                self.ifname.clone()
            } else {
                String::new()
            },
            args: self.args.clone(),
            path: std::env::split_paths(&self.cni_path).collect(),
        };
        let mut runner = Runner::new(list, env, self.cache_dir.clone(), runtime_config);
        let outcome = match self.verb {
            Verb::Add => runner.add().map(Some),
            Verb::Check => runner.check().map(|()| None),
            Verb::Del => runner.del().map(|()| None),
            Verb::Status => runner.status().map(|()| None),
            Verb::Gc => {
                // Other runtimes may hold attachments of the same network: the valid set
                // is never guessed.
                let valid = match (&self.valid, self.valid_from_cache) {
                    (Some(file), _) => Some(crate::commands::gc::read_valid_file(file)?),
                    (None, true) => None,
                    (None, false) => {
                        return Err(CtlError::invalid(
                            "exec gc",
                            "say which attachments are valid: --valid FILE or --valid-from-cache",
                        ));
                    }
                };
                runner.gc(valid).map(|deleted| {
                    tracing::info!("gc: {deleted} cached attachment(s) deleted");
                    None
                })
            }
        };
        for note in &runner.notes {
            tracing::warn!("{note}");
        }
        if let Some(result) = outcome? {
            let mut out = stdout();
            // The result is the CNI result itself: JSON whatever -o says, unless YAML.
            let format = match ctx.output() {
                crate::cli::OutputFormat::Yaml => crate::cli::OutputFormat::Yaml,
                _ => crate::cli::OutputFormat::Json,
            };
            write_structured(&mut out, format, &result)?;
            out.flush().map_err(out_err)?;
        }
        Ok(())
    }
}

/// `/run/netns/NAME` for a bare name; paths are kept.
pub fn netns_path(netns: &str) -> String {
    if netns.contains('/') {
        netns.to_string()
    } else {
        format!("/run/netns/{netns}")
    }
}

/// A stable container id for a netns path (FNV-1a, as cnitool derives one from a hash).
pub fn container_id_for(netns: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in netns.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("plexusctl-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_names_and_ids() {
        assert_eq!(netns_path("blue"), "/run/netns/blue");
        assert_eq!(netns_path("/proc/1/ns/net"), "/proc/1/ns/net");
        let id = container_id_for("/run/netns/blue");
        assert_eq!(id, container_id_for("/run/netns/blue"));
        assert_ne!(id, container_id_for("/run/netns/red"));
        assert!(id.starts_with("plexusctl-") && id.len() == 26);
    }
}
