//! A small CNI runtime for `plexusctl exec`: runs a configuration list's plugins for ADD,
//! CHECK, DEL, STATUS and GC like libcni, with its result cache.
//!
//! Versions: each plugin is asked (VERSION) which versions it speaks; when it does not
//! speak the list's version, it is called with the configuration and `prevResult`
//! downgraded to the highest version both sides speak (a 1.1.0 list with Debian's 1.0.0
//! plugins works), and STATUS and GC skip plugins older than 1.1.0 (CHECK those older than
//! 0.4.0).

pub mod cache;
pub mod conf;
pub mod invoke;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use plexus_cni::{CniVersion, SuccessResult};
use serde_json::{Value, json};

use crate::commands::gc::ValidAttachment;
use crate::error::{CtlError, CtlResult};
use cache::CacheEntry;
use conf::{ConfList, plugin_config};
use invoke::{CniEnv, find_plugin, invoke, negotiate, supported_versions};

/// One plugin of a list, located and version-matched.
#[derive(Debug, Clone)]
struct Resolved {
    /// Position in the list.
    index: usize,
    /// `type`.
    kind: String,
    /// The binary.
    binary: PathBuf,
    /// The version it is called with.
    version: CniVersion,
}

/// Runs one configuration list for one attachment.
#[derive(Debug)]
pub struct Runner {
    /// The list.
    pub list: ConfList,
    /// Environment of the calls (attachment parts unused by STATUS and GC).
    pub env: CniEnv,
    /// libcni-style cache directory.
    pub cache_dir: PathBuf,
    /// Capability arguments, handed to plugins declaring the capability.
    pub runtime_config: Value,
    /// Notes for the operator (skipped plugins, downgrades).
    pub notes: Vec<String>,
}

impl Runner {
    /// A runner over `list`.
    pub fn new(list: ConfList, env: CniEnv, cache_dir: PathBuf, runtime_config: Value) -> Runner {
        Runner {
            list,
            env,
            cache_dir,
            runtime_config,
            notes: Vec::new(),
        }
    }

    /// Locates every plugin and picks the version to call it with.
    fn resolve(&mut self) -> CtlResult<Vec<Resolved>> {
        let mut asked: HashMap<PathBuf, Vec<String>> = HashMap::new();
        let mut resolved = Vec::new();
        for (index, plugin) in self.list.plugins.iter().enumerate() {
            let kind = plugin
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let binary = find_plugin(&self.env.path, &kind)?;
            let supported = match asked.get(&binary) {
                Some(s) => s.clone(),
                None => {
                    let s = supported_versions(&binary, &self.env, self.list.version)?;
                    asked.insert(binary.clone(), s.clone());
                    s
                }
            };
            let version = negotiate(self.list.version, &supported).ok_or_else(|| {
                CtlError::Plugin(format!(
                    "plugin {kind} speaks {} but the list is at {}: no common version",
                    supported.join(", "),
                    self.list.version
                ))
            })?;
            if version != self.list.version {
                tracing::info!(
                    "{kind} speaks at most {version}; called with the configuration downgraded from {}",
                    self.list.version
                );
            }
            resolved.push(Resolved {
                index,
                kind,
                binary,
                version,
            });
        }
        Ok(resolved)
    }

    /// For a plugin too old for STATUS/GC: its IPAM plugin (`ipam.type`), when that one
    /// speaks 1.1.0, so it can be asked directly with the plugin's configuration.
    fn delegate_ipam(&self, p: &Resolved) -> CtlResult<Option<Resolved>> {
        let Some(kind) = self.list.plugins[p.index]
            .pointer("/ipam/type")
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let Ok(binary) = find_plugin(&self.env.path, kind) else {
            return Ok(None);
        };
        let supported = supported_versions(&binary, &self.env, self.list.version)?;
        match negotiate(self.list.version, &supported) {
            Some(version) if version.supports_status_gc() => {
                tracing::info!(
                    "{} speaks {}: asking its IPAM plugin {kind} directly",
                    p.kind,
                    p.version
                );
                Ok(Some(Resolved {
                    index: p.index,
                    kind: kind.to_string(),
                    binary,
                    version,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The configuration for plugin `p`, with `prev` converted to its version.
    fn config_for(&self, p: &Resolved, prev: Option<&Value>) -> CtlResult<Value> {
        let prev = match prev {
            Some(result) => Some(convert_result(result, p.version)?),
            None => None,
        };
        Ok(plugin_config(
            &self.list.plugins[p.index],
            &self.list.name,
            p.version,
            &self.runtime_config,
            prev.as_ref(),
        ))
    }

    /// ADD: every plugin in order, each given the previous result; the final result (in
    /// the list's version) is cached and returned.
    pub fn add(&mut self) -> CtlResult<Value> {
        let plugins = self.resolve()?;
        let mut prev: Option<Value> = None;
        for p in &plugins {
            let conf = self.config_for(p, prev.as_ref())?;
            let result = invoke(&p.binary, "ADD", &self.env, &conf).map_err(|e| {
                CtlError::Plugin(format!(
                    "{e}; the attachment may be half set up: run `plexusctl exec del` for it"
                ))
            })?;
            prev = Some(result);
        }
        let result = match &prev {
            Some(r) => convert_result(r, self.list.version)?,
            None => Value::Null,
        };
        let entry = CacheEntry {
            container_id: self.env.container_id.clone(),
            ifname: self.env.ifname.clone(),
            network: self.list.name.clone(),
            netns: self.env.netns.clone(),
            result: result.clone(),
        };
        cache::write(&self.cache_dir, &entry, &self.list.raw, &self.env.args)?;
        Ok(result)
    }

    /// The cached ADD result of this attachment.
    fn cached(&self) -> CtlResult<Option<CacheEntry>> {
        cache::read(
            &self.cache_dir,
            &self.list.name,
            &self.env.container_id,
            &self.env.ifname,
        )
    }

    /// CHECK: every plugin in order against the cached result.
    pub fn check(&mut self) -> CtlResult<()> {
        if self.list.disable_check {
            self.notes
                .push("disableCheck is set: nothing checked".into());
            return Ok(());
        }
        if !self.list.version.supports_check() {
            return Err(CtlError::invalid(
                &self.list.name,
                format!(
                    "version {} has no CHECK (0.4.0 or later needed)",
                    self.list.version
                ),
            ));
        }
        let cached = self.cached()?.ok_or_else(|| {
            CtlError::Plugin(format!(
                "no cached result for {}/{} in {}: CHECK needs a previous ADD",
                self.env.container_id,
                self.env.ifname,
                self.cache_dir.display()
            ))
        })?;
        for p in self.resolve()? {
            if !p.version.supports_check() {
                self.notes
                    .push(format!("{} speaks {}: CHECK skipped", p.kind, p.version));
                continue;
            }
            let conf = self.config_for(&p, Some(&cached.result))?;
            invoke(&p.binary, "CHECK", &self.env, &conf)?;
        }
        Ok(())
    }

    /// DEL: every plugin in reverse order (all of them, even after a failure), with the
    /// cached result as `prevResult` for 0.4.0+ plugins; the cache entry goes when every
    /// plugin succeeded.
    pub fn del(&mut self) -> CtlResult<()> {
        let cached = self.cached()?;
        let mut failures = Vec::new();
        for p in self.resolve()?.iter().rev() {
            let prev = cached
                .as_ref()
                .filter(|_| p.version.supports_check())
                .map(|c| &c.result)
                .filter(|r| !r.is_null());
            let conf = self.config_for(p, prev)?;
            if let Err(e) = invoke(&p.binary, "DEL", &self.env, &conf) {
                failures.push(e.to_string());
            }
        }
        if failures.is_empty() {
            cache::remove(
                &self.cache_dir,
                &self.list.name,
                &self.env.container_id,
                &self.env.ifname,
            )
        } else {
            Err(CtlError::Plugin(failures.join("; ")))
        }
    }

    /// STATUS: every 1.1.0+ plugin in order; the first failure is the answer.
    pub fn status(&mut self) -> CtlResult<()> {
        if !self.list.version.supports_status_gc() {
            self.notes.push(format!(
                "version {} has no STATUS: nothing asked",
                self.list.version
            ));
            return Ok(());
        }
        for p in self.resolve()? {
            if !p.version.supports_status_gc() {
                match self.delegate_ipam(&p)? {
                    Some(ipam) => {
                        let conf = self.config_for(&ipam, None)?;
                        invoke(&ipam.binary, "STATUS", &self.env, &conf)?;
                    }
                    None => self
                        .notes
                        .push(format!("{} speaks {}: STATUS skipped", p.kind, p.version)),
                }
                continue;
            }
            let conf = self.config_for(&p, None)?;
            invoke(&p.binary, "STATUS", &self.env, &conf)?;
        }
        Ok(())
    }

    /// GC as libcni does it: DEL every cached attachment of the network that is not valid,
    /// then GC on every 1.1.0+ plugin with the valid set. `valid` defaults to every cached
    /// attachment of the network. Keeps going past failures and reports them all.
    pub fn gc(&mut self, valid: Option<Vec<ValidAttachment>>) -> CtlResult<usize> {
        if self.list.disable_gc {
            self.notes
                .push("disableGC is set: nothing collected".into());
            return Ok(0);
        }
        let cached = cache::list(&self.cache_dir, &self.list.name)?;
        let valid = valid.unwrap_or_else(|| {
            cached
                .iter()
                .map(|c| ValidAttachment {
                    container_id: c.container_id.clone(),
                    ifname: c.ifname.clone(),
                })
                .collect()
        });
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|v| (v.container_id.as_str(), v.ifname.as_str()))
            .collect();
        let mut failures = Vec::new();
        let mut deleted = 0;
        let base_env = self.env.clone();
        for stale in cached
            .iter()
            .filter(|c| !keep.contains(&(c.container_id.as_str(), c.ifname.as_str())))
        {
            self.env = CniEnv {
                container_id: stale.container_id.clone(),
                ifname: stale.ifname.clone(),
                netns: stale.netns.clone(),
                ..base_env.clone()
            };
            match self.del() {
                Ok(()) => deleted += 1,
                Err(e) => failures.push(e.to_string()),
            }
        }
        self.env = CniEnv {
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            ..base_env
        };
        if self.list.version.supports_status_gc() {
            let list =
                serde_json::to_value(&valid).map_err(|e| CtlError::Internal(e.to_string()))?;
            for p in self.resolve()? {
                // A plugin too old for GC cannot forward it to its IPAM plugin: do it for it.
                let target = if p.version.supports_status_gc() {
                    p.clone()
                } else if let Some(ipam) = self.delegate_ipam(&p)? {
                    ipam
                } else {
                    self.notes
                        .push(format!("{} speaks {}: GC skipped", p.kind, p.version));
                    continue;
                };
                let p = target;
                let mut conf = self.config_for(&p, None)?;
                conf["cni.dev/valid-attachments"] = list.clone();
                conf["cni.dev/attachments"] = list.clone();
                if let Err(e) = invoke(&p.binary, "GC", &self.env, &conf) {
                    failures.push(e.to_string());
                }
            }
        } else {
            self.notes.push(format!(
                "version {} has no GC verb: only cached attachments were deleted",
                self.list.version
            ));
        }
        if failures.is_empty() {
            Ok(deleted)
        } else {
            Err(CtlError::Plugin(failures.join("; ")))
        }
    }
}

/// A result in the shape of `version` (e.g. a 1.1.0 result for a 1.0.0 plugin, or the
/// plugins' 1.0.0 result for a 1.1.0 list).
pub fn convert_result(result: &Value, version: CniVersion) -> CtlResult<Value> {
    if result.is_null() {
        return Ok(json!({"cniVersion": version.to_string()}));
    }
    let parsed = SuccessResult::from_json(result).map_err(|e| {
        CtlError::Plugin(format!(
            "a plugin returned a result plexusctl cannot read: {e}"
        ))
    })?;
    Ok(parsed.to_json(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_convert_between_versions() {
        let v1 = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}]});
        let old = convert_result(&v1, CniVersion::V0_4_0).unwrap();
        assert_eq!(old["cniVersion"], "0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        let back = convert_result(&old, CniVersion::V1_1_0).unwrap();
        assert_eq!(back["cniVersion"], "1.1.0");
        assert!(back["ips"][0].get("version").is_none());
        assert!(convert_result(&json!({"ips": 5}), CniVersion::V1_0_0).is_err());
    }
}
