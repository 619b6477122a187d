//! Golden tests of `showalloc`: a DANM network with a hand-built `alloc` bitmap is imported,
//! and `showalloc` prints what DANM's Showalloc prints for it (line for line), plus the
//! JSON form, the CIDR filter, the heat-map and IPv6 (`-6`); each against SQLite and,
//! under `scripts/with-servers`, PostgreSQL and etcd.

mod common;

use base64::Engine;
use common::backends::{Backend, backends};

/// A /24 bitmap built by hand from DANM's documented format: 32 bytes, most significant
/// bit first, bit i ↔ 10.100.100.i, standard padded base64.
fn bitmap(bits: &[usize]) -> String {
    let mut bytes = [0u8; 32];
    for bit in bits {
        bytes[bit / 8] |= 0x80 >> (bit % 8);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// DanmNet `prod/internal` (pool .10-.200, no routes) holding .12, .13 and .77, plus the
/// DanmEp of .13 (pod web-1).
fn danm_yaml() -> String {
    let alloc = bitmap(&[0, 12, 13, 77, 255]);
    format!(
        "apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: internal
  namespace: prod
spec:
  NetworkID: internal
  NetworkType: ipvlan
  Options:
    host_device: ens3
    cidr: 10.100.100.0/24
    allocation_pool:
      start: 10.100.100.10
      end: 10.100.100.200
    alloc: {alloc}
---
apiVersion: danm.k8s.io/v1
kind: DanmEp
metadata: {{name: 1f3e, namespace: prod}}
spec:
  NetworkName: internal
  Pod: web-1
  CID: 5b1c0ffee
  Interface: {{Name: eth1, Address: 10.100.100.13/24}}
"
    )
}

/// The DANM file imported into every backend; `test` names the databases.
fn imported(test: &str) -> Vec<(Backend, String)> {
    backends(test)
        .into_iter()
        .map(|env| {
            let file = env.file("danm.yaml", &danm_yaml());
            let file = file.to_str().unwrap().to_string();
            let out = env.ctl(&["import", "--from", "danm", &file]);
            assert!(
                out.ok().contains("imported 3 address(es)"),
                "{}: {out:#?}",
                env.label
            );
            (env, file)
        })
        .collect()
}

/// Exactly DANM's output for this bitmap, except that a pod is named `namespace/name`
/// (DANM prints the bare pod name).
const GOLDEN: &str = "\
DANM network Kind: DanmNet
       IP version: IPv4
             CIDR: 10.100.100.0/24
       Pool start: 10.100.100.10
       Pool   end: 10.100.100.200
--------------------------------------------------------------
   10.100.100.0 : reserved (network base address)
  10.100.100.12 : allocated (unknown Pod)
  10.100.100.13 : allocated (Pod: prod/web-1)
  10.100.100.77 : allocated (unknown Pod)
 10.100.100.255 : reserved (broadcast address)
";

#[test]
fn danm_bitmap_prints_like_danm_showalloc() {
    for (env, file) in imported("golden") {
        eprintln!("{}", env.label);
        let out = env.ctl(&["--networks", &file, "showalloc", "prod/internal"]);
        assert_eq!(out.ok(), GOLDEN);
    }
}

#[test]
fn all_and_cidr_filter_add_free_and_out_of_pool_lines() {
    for (env, file) in imported("all_cidr") {
        eprintln!("{}", env.label);
        let out = env.ctl(&[
            "--networks",
            &file,
            "showalloc",
            "prod/internal",
            "-a",
            "--cidr",
            "10.100.100.8/29",
        ]);
        let lines: Vec<&str> = out.ok().lines().skip(6).collect();
        assert_eq!(
            lines,
            [
                "   10.100.100.8 : out of pool range",
                "   10.100.100.9 : out of pool range",
                "  10.100.100.10 : free",
                "  10.100.100.11 : free",
                "  10.100.100.12 : allocated (unknown Pod)",
                "  10.100.100.13 : allocated (Pod: prod/web-1)",
                "  10.100.100.14 : free",
                "  10.100.100.15 : free",
            ]
        );
        // The whole /24 with --all: one line per address.
        let all = env.ctl(&["--networks", &file, "showalloc", "prod/internal", "--all"]);
        assert_eq!(all.ok().lines().count(), 6 + 256);
    }
}

#[test]
fn json_output_streams_every_line() {
    for (env, file) in imported("json") {
        eprintln!("{}", env.label);
        let v = env
            .ctl(&[
                "--networks",
                &file,
                "-o",
                "json",
                "showalloc",
                "prod/internal",
                "-w",
            ])
            .json();
        assert_eq!(v["network"], "prod/internal");
        assert_eq!(v["kind"], "DanmNet");
        let addresses = v["pools"][0]["addresses"].as_array().unwrap();
        let statuses: Vec<(&str, &str)> = addresses
            .iter()
            .map(|a| (a["ip"].as_str().unwrap(), a["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("10.100.100.0", "network_base"),
                ("10.100.100.12", "allocated"),
                ("10.100.100.13", "allocated"),
                ("10.100.100.77", "allocated"),
                ("10.100.100.255", "broadcast")
            ]
        );
        assert_eq!(addresses[2]["pod"], "prod/web-1");
        assert_eq!(addresses[2]["container_id"], "5b1c0ffee");
        assert_eq!(addresses[2]["ifname"], "eth1");
        // YAML parses to the same document.
        let yaml = env.ctl(&[
            "--networks",
            &file,
            "-o",
            "yaml",
            "showalloc",
            "prod/internal",
        ]);
        let parsed: serde_json::Value = serde_norway::from_str(yaml.ok()).unwrap();
        assert_eq!(parsed["pools"][0]["addresses"].as_array().unwrap().len(), 5);
    }
}

#[test]
fn heat_map_shades_held_blocks() {
    for (env, file) in imported("heat_map") {
        eprintln!("{}", env.label);
        let out = env.ctl(&["--networks", &file, "showalloc", "prod/internal", "--map"]);
        let text = out.ok();
        assert!(
            text.starts_with("10.100.100.0/24: 3 of 191 addresses held (1.6%), one cell per /32"),
            "{text}"
        );
        // Row 10.100.100.0 holds .12 and .13 as full cells; .0 (reserved) is empty.
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("10.100.100.0 "))
            .unwrap();
        let cells: Vec<char> = row.split(' ').next_back().unwrap().chars().collect();
        assert_eq!(
            (cells[0], cells[12], cells[13], cells[14]),
            ('·', '█', '█', '·')
        );
    }
}

#[test]
fn undefined_networks_are_refused_unless_a_cidr_is_given() {
    for (env, _) in imported("undefined") {
        eprintln!("{}", env.label);
        // The import stored the DanmNet; without its definition the network is unknown.
        let shown = env.ctl(&["showalloc", "prod/internal"]);
        assert!(
            shown.ok().contains("Defined by: DanmNet (stored)"),
            "{shown:?}"
        );
        let deleted = env.ctl(&["network", "delete", "prod/internal", "--force"]);
        assert!(
            deleted.ok().contains("3 address(es) stay allocated"),
            "{deleted:?}"
        );
        let err = env
            .ctl(&["showalloc", "prod/internal"])
            .fails(2)
            .to_string();
        assert!(
            err.contains("prod/internal: has no definition") && err.contains("--cidr"),
            "{err}"
        );
        let out = env.ctl(&["showalloc", "prod/internal", "--cidr", "10.100.100.0/28"]);
        let text = out.ok();
        assert!(
            text.contains("  10.100.100.12 : allocated (unknown Pod)"),
            "{text}"
        );
        assert!(!text.contains("10.100.100.77"), "{text}");
        // -6 on an IPv4-only network says so.
        let err = env
            .ctl(&["showalloc", "prod/internal", "--cidr", "10.0.0.0/24", "-6"])
            .fails(2)
            .to_string();
        assert!(err.contains("has no IPv6 pool"), "{err}");
        // A name that is neither defined nor held is an error, --cidr or not.
        let err = env
            .ctl(&["showalloc", "prod/internl", "--cidr", "10.0.0.0/24"])
            .fails(2)
            .to_string();
        assert!(err.contains("did you mean \"prod/internal\"?"), "{err}");
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    for (env, file) in imported("closed_stdout") {
        eprintln!("{}", env.label);
        let mut cmd = std::process::Command::new(common::binary());
        cmd.args(["--store", &env.store])
            .args(["--networks", &file, "showalloc", "prod/internal", "--all"])
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Read one line, then hang up.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 8];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// A dual-stack DanmNet with both bitmaps: `-6` prints the IPv6 pool DANM's way, the
/// IPv4 pool stays the default, and `--map -6` draws the IPv6 pool.
#[test]
fn ipv6_pools_print_with_dash_6() {
    let alloc6 = bitmap(&[0, 16, 17, 255]);
    let yaml = format!(
        "apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {{name: dual, namespace: prod}}
spec:
  NetworkID: dual
  NetworkType: ipvlan
  Options:
    host_device: ens3
    cidr: 10.100.101.0/24
    alloc: {}
    net6: fd00:100::/64
    allocation_pool_v6: {{cidr: 'fd00:100::/120'}}
    alloc6: {alloc6}
",
        bitmap(&[0, 7, 255])
    );
    for env in backends("ipv6") {
        let label = env.label;
        let file = env.file("dual.yaml", &yaml);
        let out = env.ctl(&["import", "--from", "danm", file.to_str().unwrap()]);
        assert!(
            out.ok().contains("imported 3 address(es)"),
            "{label}: {out:#?}"
        );
        let v4 = env.ctl(&["showalloc", "prod/dual"]);
        let v4 = v4.ok();
        assert!(
            v4.contains("10.100.101.7 : allocated (unknown Pod)"),
            "{label}: {v4}"
        );
        assert!(!v4.contains("fd00:100::"), "{label}: {v4}");
        let v6 = env.ctl(&["showalloc", "prod/dual", "-6"]);
        let v6 = v6.ok();
        assert!(v6.contains("IP version: IPv6"), "{label}: {v6}");
        assert!(
            v6.contains("fd00:100::10 : allocated (unknown Pod)"),
            "{label}: {v6}"
        );
        assert!(
            v6.contains("fd00:100::11 : allocated (unknown Pod)"),
            "{label}: {v6}"
        );
        assert!(!v6.contains("10.100.101.7"), "{label}: {v6}");
        let map = env.ctl(&["showalloc", "prod/dual", "-6", "--map"]);
        assert!(
            map.ok().starts_with("fd00:100::/120: 2 of "),
            "{label}: {map:#?}"
        );
    }
}
