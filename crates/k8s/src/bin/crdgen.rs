//! crdgen: writes every CRD of plexus-k8s (plexus', DANM's, NPWG's NAD) as YAML into a
//! directory, `deploy/crds/` of the workspace by default.
//!
//! ```text
//! crdgen [DIR]           write the files (and remove .yaml files no CRD generates)
//! crdgen --check [DIR]   exit 1, naming each file, when DIR differs from the types
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use plexus_k8s::crds;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crdgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut check = false;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                eprintln!(
                    "usage: crdgen [--check] [DIR]  (default DIR: deploy/crds of the workspace)"
                );
                return Ok(ExitCode::SUCCESS);
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}"),
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => bail!("unexpected argument {extra}"),
        }
    }
    let dir = match dir {
        Some(dir) => dir,
        // crates/k8s → the workspace root.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .context("the crate directory has no workspace root above it")?
            .join("deploy/crds"),
    };
    if check {
        let stale = crds::stale(&dir).with_context(|| format!("checking {}", dir.display()))?;
        if stale.is_empty() {
            eprintln!("crdgen: {} is up to date", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        for s in &stale {
            eprintln!("crdgen: {}: {s}", dir.display());
        }
        eprintln!("crdgen: run `cargo run -p plexus-k8s --bin crdgen` and commit deploy/crds");
        return Ok(ExitCode::FAILURE);
    }
    let written = crds::write_all(&dir).with_context(|| format!("writing {}", dir.display()))?;
    for path in written {
        eprintln!("crdgen: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
