//! `import --from danm` at scale: bitmaps with millions of set bits are streamed into the
//! store, so the importer's memory does not grow with them (formerly fuzz finding 3 in
//! `docs/reliability.md`: a full `/10` asked for a single 553 MB allocation).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{Env, Run, binary};

/// Peak resident memory allowed to one `plexusctl import` of a full bitmap.
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// A ClusterNetwork on `cidr` whose `alloc` bitmap has every bit set.
fn full_network(name: &str, cidr: &str, host_bits: u32) -> String {
    let bitmap = vec![0xffu8; (1usize << host_bits) / 8];
    let alloc = base64::engine::general_purpose::STANDARD.encode(bitmap);
    format!(
        "apiVersion: danm.k8s.io/v1\nkind: ClusterNetwork\nmetadata: {{name: {name}}}\nspec:\n  \
         NetworkID: {name}\n  Options:\n    host_device: eth0\n    cidr: {cidr}\n    alloc: {alloc}\n"
    )
}

/// `VmHWM` (peak resident set, KiB) of a running process, if it can still be read.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs plexusctl against `env`'s store, sampling the child's peak RSS every 5 ms until it
/// exits. Returns the run and the highest `VmHWM` seen.
fn run_measured(env: &Env, args: &[&str]) -> (Run, u64) {
    let mut child = Command::new(binary())
        .arg("--store")
        .arg(env.db())
        .arg("--cni-conf-dir")
        .arg(env.conf_dir())
        .args(args)
        .env_remove("PLEXUS_STORE")
        .env_remove("PLEXUSCTL_CONFIG")
        .env_remove("PLEXUS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plexusctl");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout thread"),
        stderr: stderr.join().expect("stderr thread"),
    };
    assert!(peak > 0, "no RSS sample of the child: {run:#?}");
    (run, peak)
}

/// The fuzz input `danm-full-10.yaml` (a `/10`, all 4,194,304 bits set): every held
/// address is decoded and counted within the memory limit, and a full `/20` is written to
/// the store address for address, also within the limit.
#[test]
fn danm_full_slash_10_imports_with_bounded_memory() {
    let env = Env::new();
    let big = env.file("full-10.yaml", &full_network("full", "10.0.0.0/10", 22));
    let (run, peak) = run_measured(
        &env,
        &[
            "import",
            "--from",
            "danm",
            "--dry-run",
            big.to_str().unwrap(),
        ],
    );
    // 2^22 bits minus the network and broadcast addresses DANM sets for itself.
    assert!(
        run.ok()
            .contains("would import 4194302 address(es), 1 network(s)"),
        "{run:#?}"
    );
    eprintln!("full /10: peak RSS {} MiB", peak / 1024);
    assert!(
        peak < RSS_LIMIT_KIB,
        "full /10 peaked at {peak} KiB (limit {RSS_LIMIT_KIB})"
    );

    // Written for real: a /20 is 4,094 held addresses, over the progress threshold.
    let file = env.file("full-20.yaml", &full_network("mid", "10.1.0.0/20", 12));
    let (run, peak) = run_measured(&env, &["import", "--from", "danm", file.to_str().unwrap()]);
    assert!(
        run.ok().contains("imported 4094 address(es), 1 network(s)"),
        "{run:#?}"
    );
    assert!(peak < RSS_LIMIT_KIB, "full /20 peaked at {peak} KiB");
    let exported = env.ctl(&["-o", "json", "export", "mid"]).json();
    let ips: Vec<&str> = exported["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .map(|a| a["ip"].as_str().expect("ip"))
        .collect();
    assert_eq!(ips.len(), 4094);
    let mut expected: Vec<String> = (1..4095u32)
        .map(|i| std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 1, 0, 0)) + i))
        .map(|ip| ip.to_string())
        .collect();
    let mut got: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "exactly the held addresses, each once");
    let network = env.ctl(&["-o", "json", "network", "show", "mid"]).json();
    assert!(network.to_string().contains("10.1.0.0/20"), "{network}");
    // A second import changes nothing.
    let again = env.ctl(&["import", "--from", "danm", file.to_str().unwrap()]);
    assert!(
        again.ok().contains("imported 4094 address(es)"),
        "{again:#?}"
    );
    let count = env.ctl(&["-o", "json", "export", "mid"]).json()["allocations"]
        .as_array()
        .map(Vec::len);
    assert_eq!(count, Some(4094));
}

/// A bitmap longer than its CIDR needs is refused with the field named, nothing written.
#[test]
fn danm_bitmap_longer_than_its_cidr_is_refused() {
    let env = Env::new();
    // A /20's bitmap (512 bytes) on a /24.
    let file = env.file("long.yaml", &full_network("long", "10.2.0.0/24", 12));
    let run = env.ctl(&["import", "--from", "danm", file.to_str().unwrap()]);
    let err = run.fails(2);
    assert!(
        err.contains("spec.Options.alloc") && err.contains("10.2.0.0/24 needs 32"),
        "{run:#?}"
    );
    // Refused before anything was written: not even the store was created.
    assert!(!env.db().exists(), "{run:#?}");
    let listed = env.ctl(&["-o", "json", "network", "list"]);
    assert!(listed.fails(2).contains("does not exist"), "{listed:#?}");
}
