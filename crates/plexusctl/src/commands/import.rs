//! `plexusctl import FILE...`: record allocations from plexus' own export, whereabouts'
//! IPPools (and ORIPs) or DANM network objects (with their `alloc` bitmaps and,
//! optionally, DanmEps). Idempotent: importing a file twice changes nothing; an address
//! another attachment already holds is reported as a conflict (exit status 1).
//!
//! `plexusctl import --from whereabouts-etcd --conf FILE` reads no files: it takes the
//! ranges whereabouts ≤ 0.5.4 keeps in the etcd the configuration names into the store
//! plexus-ipam uses for it ([`crate::import::whereabouts_etcd`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::import::whereabouts::WhereaboutsOptions;
use crate::import::{self, ImportOutcome, ImportPlan, danm, native, whereabouts, whereabouts_etcd};
use crate::netdef::networks_of_cni_config;
use crate::netfile::documents;
use crate::output::{out_err, stdout, write_structured};

/// Imports below this many records draw no progress bar.
const PROGRESS_THRESHOLD: usize = 1000;

/// Where the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// plexus' own export (`plexusctl export`).
    Plexus,
    /// whereabouts IPPool / OverlappingRangeIPReservation objects.
    Whereabouts,
    /// DANM DanmNet / ClusterNetwork / TenantNetwork objects (and DanmEps).
    Danm,
    /// The ranges whereabouts ≤ 0.5.4 keeps in etcd (`/whereabouts/<range>`), read live
    /// from the etcd of `--conf`'s `etcd_host`; no FILE.
    WhereaboutsEtcd,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct Import {
    /// Files to import (YAML or JSON, several documents each); `-` reads stdin. None with
    /// `--from whereabouts-etcd`.
    pub files: Vec<PathBuf>,
    /// The format (default: detected from the first document's `kind`).
    #[arg(long, value_enum)]
    pub from: Option<Source>,
    /// whereabouts: the plexus network to import into (default: the network of --conf,
    /// else one network per IPPool, named after the pool).
    #[arg(long)]
    pub network: Option<String>,
    /// whereabouts: the CNI configuration (conflist, conf or NAD config JSON) of the
    /// network, so addresses are recorded under the range sets the plugin uses. Required
    /// with `--from whereabouts-etcd`: its `etcd_*` keys name the etcd to read, and the
    /// import goes to the store plexus-ipam uses for it.
    #[arg(long, value_name = "FILE")]
    pub conf: Option<PathBuf>,
    /// whereabouts: interface name for allocations that recorded none.
    #[arg(long, default_value = "eth0")]
    pub default_ifname: String,
    /// Parse and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Import {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        if self.from == Some(Source::WhereaboutsEtcd) {
            return self.exec_whereabouts_etcd(ctx).await;
        }
        if self.files.is_empty() {
            return Err(CtlError::invalid(
                "import",
                "name at least one FILE (`-` reads stdin)",
            ));
        }
        let mut docs = Vec::new();
        for file in &self.files {
            let source = file.display().to_string();
            docs.extend(documents(&source, &read_input(file)?)?);
        }
        let source = self.detect(&docs)?;
        let what = self
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut danm_import = None;
        let plan = match source {
            Source::Plexus => {
                let mut plan = ImportPlan::default();
                for doc in &docs {
                    let export = native::parse(&what, doc)?;
                    let part = native::plan(&what, &export)?;
                    plan.networks.extend(part.networks);
                    plan.records.extend(part.records);
                    plan.history.extend(part.history);
                }
                plan
            }
            Source::Whereabouts => whereabouts::plan(&docs, &self.whereabouts_options()?)?,
            Source::WhereaboutsEtcd => unreachable_source()?,
            Source::Danm => {
                let mut parsed = danm::plan(&what, &docs)?;
                let plan = std::mem::take(&mut parsed.plan);
                danm_import = Some(parsed);
                plan
            }
        };
        // DANM bitmaps can hold millions of addresses: their records are streamed.
        let record_count = match &danm_import {
            Some(parsed) => usize::try_from(parsed.held).unwrap_or(usize::MAX),
            None => plan.records.len(),
        };
        let outcome = if self.dry_run {
            ImportOutcome {
                notes: plan.notes.clone(),
                ..ImportOutcome::default()
            }
        } else {
            let store = ctx.open_store_for_writing().await?;
            let bar = progress_bar(record_count);
            let progress = |n: usize| bar.set_position(n as u64);
            let outcome = match &danm_import {
                Some(parsed) => {
                    import::apply_streamed(store.as_ref(), &plan, parsed.records(), progress)
                        .await?
                }
                None => import::apply(store.as_ref(), &plan, progress).await?,
            };
            bar.finish_and_clear();
            outcome
        };
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                for note in &outcome.notes {
                    writeln!(out, "note: {note}").map_err(out_err)?;
                }
                for conflict in &outcome.conflicts {
                    writeln!(out, "conflict: {conflict}").map_err(out_err)?;
                }
                let verb = if self.dry_run {
                    "would import"
                } else {
                    "imported"
                };
                let count = if self.dry_run {
                    record_count
                } else {
                    outcome.imported
                };
                let (networks, history) = if self.dry_run {
                    (plan.networks.len(), plan.history.len())
                } else {
                    (outcome.networks, outcome.history)
                };
                writeln!(
                    out,
                    "{verb} {count} address(es), {networks} network(s) and {history} history \
                     event(s) from {what}; {} conflict(s)",
                    outcome.conflicts.len()
                )
                .map_err(out_err)?;
            }
            format => write_structured(&mut out, format, &outcome)?,
        }
        out.flush().map_err(out_err)?;
        if outcome.conflicts.is_empty() {
            Ok(())
        } else {
            Err(CtlError::Problems(format!(
                "{} address(es) not imported: held by another attachment",
                outcome.conflicts.len()
            )))
        }
    }

    /// `--from whereabouts-etcd`: see [`crate::import::whereabouts_etcd`].
    async fn exec_whereabouts_etcd(&self, ctx: &Context) -> CtlResult<()> {
        if !self.files.is_empty() {
            return Err(CtlError::invalid(
                "import",
                "--from whereabouts-etcd reads etcd, not files; give --conf only",
            ));
        }
        let conf = self.conf.as_ref().ok_or_else(|| {
            CtlError::invalid(
                "import",
                "--from whereabouts-etcd needs --conf FILE: the network's configuration, \
                 whose etcd_* keys name the etcd to read",
            )
        })?;
        let source = whereabouts_etcd::source(conf, self.network.clone())?;
        let report = whereabouts_etcd::run(&source, &self.default_ifname, self.dry_run).await?;
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                for note in &report.outcome.notes {
                    writeln!(out, "note: {note}").map_err(out_err)?;
                }
                for conflict in &report.outcome.conflicts {
                    writeln!(out, "conflict: {conflict}").map_err(out_err)?;
                }
                for key in &report.keys {
                    let fate = match &key.moved_to {
                        Some(to) => format!("moved to {to}"),
                        None if self.dry_run => "would be imported and moved".to_string(),
                        None if key.listed == 0 => "absent: nothing to import".to_string(),
                        None => "left in place".to_string(),
                    };
                    writeln!(out, "{}: {} address(es), {fate}", key.key, key.listed)
                        .map_err(out_err)?;
                }
                let verb = if self.dry_run {
                    "would import"
                } else {
                    "imported"
                };
                writeln!(
                    out,
                    "{verb} {} address(es) into network {} from whereabouts' etcd at {}; {} \
                     conflict(s)",
                    report.outcome.imported,
                    source.network,
                    source.etcd.endpoints.join(","),
                    report.outcome.conflicts.len()
                )
                .map_err(out_err)?;
            }
            format => write_structured(&mut out, format, &report)?,
        }
        out.flush().map_err(out_err)?;
        if report.outcome.conflicts.is_empty() {
            Ok(())
        } else {
            Err(CtlError::Problems(format!(
                "{} address(es) not imported: held by another attachment",
                report.outcome.conflicts.len()
            )))
        }
    }

    /// `--from`, or the format the first document's kind implies.
    fn detect(&self, docs: &[Value]) -> CtlResult<Source> {
        if let Some(from) = self.from {
            return Ok(from);
        }
        let kind = docs
            .first()
            .and_then(|d| d.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            native::EXPORT_KIND => Ok(Source::Plexus),
            "IPPool" | "OverlappingRangeIPReservation" | "NodeSlicePool" => Ok(Source::Whereabouts),
            "DanmNet" | "ClusterNetwork" | "TenantNetwork" | "DanmEp" => Ok(Source::Danm),
            _ => Err(CtlError::invalid(
                "import",
                format!(
                    "cannot tell the format of kind {kind:?}; pass --from plexus|whereabouts|danm"
                ),
            )),
        }
    }

    fn whereabouts_options(&self) -> CtlResult<WhereaboutsOptions> {
        let mut range_sets = Vec::new();
        let mut conf_network = None;
        if let Some(conf) = &self.conf {
            let text = std::fs::read_to_string(conf).map_err(|e| CtlError::io(conf, e))?;
            let source = conf.display().to_string();
            let text = as_plexus_ipam(&source, &text)?;
            let def = networks_of_cni_config(&source, &text)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    CtlError::invalid(&source, "has no whereabouts or plexus-ipam plugin")
                })?;
            range_sets = def.range_sets;
            conf_network = Some(def.name);
        }
        let network = self.network.clone().or(conf_network);
        Ok(WhereaboutsOptions {
            network,
            range_sets,
            default_ifname: self.default_ifname.clone(),
        })
    }
}

/// `--from whereabouts-etcd` never reaches the file importers.
fn unreachable_source() -> CtlResult<ImportPlan> {
    Err(CtlError::invalid(
        "import",
        "--from whereabouts-etcd reads etcd, not files",
    ))
}

/// A CNI configuration with every `whereabouts` IPAM turned into `plexus-ipam` (the
/// syntax is the same), so the plugin's own parser reads the ranges.
fn as_plexus_ipam(source: &str, text: &str) -> CtlResult<String> {
    let mut conf: Value = serde_json::from_str(text)
        .map_err(|e| CtlError::invalid(source, format!("not JSON: {e}")))?;
    let mut rewrite = |plugin: &mut Value| {
        if let Some(ipam) = plugin.get_mut("ipam")
            && ipam.get("type").and_then(Value::as_str) == Some("whereabouts")
        {
            ipam["type"] = Value::from("plexus-ipam");
        }
    };
    match conf.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins.iter_mut().for_each(&mut rewrite),
        None => rewrite(&mut conf),
    }
    Ok(conf.to_string())
}

fn read_input(path: &Path) -> CtlResult<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CtlError::io("stdin", e))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))
}

/// A progress bar on stderr for large imports (drawn only on a terminal).
fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_THRESHOLD {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} addresses ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whereabouts_confs_are_read_as_plexus_ipam() {
        let text = r#"{"cniVersion":"0.4.0","name":"wb","type":"macvlan",
                      "ipam":{"type":"whereabouts","range":"10.5.0.0/24","range_start":"10.5.0.10"}}"#;
        let converted = as_plexus_ipam("c", text).unwrap();
        let def = networks_of_cni_config("c", &converted).unwrap().remove(0);
        // Overlap protection on (whereabouts' default): the shared network, owned by "wb".
        assert_eq!(def.name, plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK);
        assert_eq!(def.owners, ["wb"]);
        assert_eq!(
            def.range_sets[0].id(),
            "wb|10.5.0.0/24[10.5.0.10-10.5.0.254]"
        );
    }
}
