//! Running one plugin process and summarising latencies.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `binary` once with the CNI environment and `stdin`; returns stdout and wall time.
pub fn cni_call(
    binary: &Path,
    verb: &str,
    container: &str,
    stdin: &str,
) -> anyhow::Result<(String, Duration)> {
    cni_call_env(binary, verb, container, stdin, &[])
}

/// Like [`cni_call`], with extra environment variables (e.g. `NODE_NAME`).
pub fn cni_call_env(
    binary: &Path,
    verb: &str,
    container: &str,
    stdin: &str,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .envs(extra_env.iter().copied())
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", "/run/netns/bench")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "{} {verb} {container} failed: {}{}",
            binary.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), elapsed))
}

/// The first address of an ADD result, without its prefix.
pub fn first_address(result: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(result)?;
    let addr = v["ips"][0]["address"]
        .as_str()
        .context("no address in result")?;
    Ok(addr.split('/').next().unwrap_or_default().to_string())
}

/// Median and 99th percentile of a set of durations.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// The median.
    pub p50: Duration,
    /// The 90th percentile (nearest rank).
    pub p90: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
}

/// Summarises `samples` (must not be empty).
pub fn summarise(samples: &mut [Duration]) -> Summary {
    samples.sort_unstable();
    let rank = |q: f64| {
        let idx = ((samples.len() as f64) * q).ceil() as usize;
        samples[idx.clamp(1, samples.len()) - 1]
    };
    Summary {
        p50: rank(0.5),
        p90: rank(0.9),
        p99: rank(0.99),
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
