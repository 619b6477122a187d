//! Whole-process benchmark of the `plexus` meta-plugin (run as root):
//! ADD+DEL of a pod with 1, 4 and 16 built-in macvlan interfaces, against 4 sequential
//! Debian `macvlan` + `host-local` ADDs (and their DELs) in the same run.
//!
//! ```text
//! bin=$(scripts/build-release -p plexus -p plexus-ipam)
//! cargo run --release -p plexus --example bench -- "$bin" [rounds]
//! ```
//! Prints a Markdown table (median and p90 in ms per pod, and per interface).

#![allow(clippy::print_stdout)] // the report is the output

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cni(
    binary: &Path,
    verb: &str,
    container: &str,
    netns: &str,
    ifname: &str,
    path: &str,
    conf: &Value,
) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", path)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{} {verb}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.9))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(
        args.get(1)
            .expect("usage: bench <dir with plexus, plexus-ipam> [rounds]"),
    );
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = format!("{}:/usr/lib/cni", bin.display());
    let parent = format!("plxbench{}", std::process::id() % 10000);
    sh(&[
        "ip",
        "link",
        "add",
        &parent,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{parent}p"),
    ]);
    sh(&["ip", "link", "set", &parent, "up"]);
    let networks = dir.path().join("networks");
    std::fs::create_dir(&networks).expect("mkdir");
    std::fs::write(
        networks.join("bench.json"),
        json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork", "metadata": {"name": "bench"},
               "spec": {"NetworkID": "bench", "NetworkType": "macvlan",
                        "Options": {"host_device": parent, "cidr": "10.200.0.0/16"}}})
        .to_string(),
    )
    .expect("write network");
    let plexus = bin.join("plexus");
    let netns = "plxbenchpod";
    let netns_path = format!("/run/netns/{netns}");
    let mut rows = Vec::new();
    for n in [1usize, 4, 16] {
        let request: Vec<Value> = (0..n)
            .map(|_| json!({"clusterNetwork": "bench", "ip": "dynamic"}))
            .collect();
        let conf = json!({"cniVersion": "1.1.0", "name": "plexus", "type": "plexus",
            "store": {"path": dir.path().join("plexus.db")}, "networksDir": networks,
            "stateDir": dir.path().join("state"), "cniDir": dir.path(),
            "runtimeConfig": {"plexus.networks": request}});
        let (mut adds, mut total) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            sh(&["ip", "netns", "add", netns]);
            let id = format!("bench{n}x{round}");
            let add = cni(&plexus, "ADD", &id, &netns_path, "eth0", &path, &conf);
            let del = cni(&plexus, "DEL", &id, &netns_path, "eth0", &path, &conf);
            sh(&["ip", "netns", "del", netns]);
            adds.push(add);
            total.push(add + del);
        }
        rows.push((format!("plexus, {n} macvlan"), n, stats(adds), stats(total)));
    }
    let debian = json!({"cniVersion": "1.0.0", "name": "debbench", "type": "macvlan",
        "master": parent, "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "10.201.0.0/16", "dataDir": dir.path().join("hl")}});
    let (mut adds, mut total) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        sh(&["ip", "netns", "add", netns]);
        let id = format!("deb{round}");
        let mut add = Duration::ZERO;
        let mut del = Duration::ZERO;
        for i in 0..4 {
            add += cni(
                Path::new("/usr/lib/cni/macvlan"),
                "ADD",
                &id,
                &netns_path,
                &format!("eth{i}"),
                &path,
                &debian,
            );
        }
        for i in 0..4 {
            del += cni(
                Path::new("/usr/lib/cni/macvlan"),
                "DEL",
                &id,
                &netns_path,
                &format!("eth{i}"),
                &path,
                &debian,
            );
        }
        sh(&["ip", "netns", "del", netns]);
        adds.push(add);
        total.push(add + del);
    }
    rows.push((
        "Debian macvlan+host-local, 4 sequential ADDs".to_owned(),
        4,
        stats(adds),
        stats(total),
    ));
    let _ = Command::new("ip").args(["link", "del", &parent]).output();

    println!(
        "| pod | ADD p50 ms | ADD p90 ms | ADD+DEL p50 ms | ADD+DEL p90 ms | ADD p50 per interface ms |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, n, (add50, add90), (tot50, tot90)) in rows {
        println!(
            "| {label} | {add50:.2} | {add90:.2} | {tot50:.2} | {tot90:.2} | {:.2} |",
            add50 / n as f64
        );
    }
    println!("\n{rounds} rounds each; a fresh pod netns per round (not timed).");
}
