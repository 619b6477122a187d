//! Real-netns helpers for the privileged tests: the root gate, named network namespaces
//! and host links (those of `plexus-test-support`), veth parents removed on drop, and the
//! real `plexus` binary run the way a runtime runs it (stdin, environment, stdout and
//! stderr).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use plexus_test_support::privileged::Need;
pub use plexus_test_support::privileged::{HostLink, Netns, sh, unique};
use serde_json::Value;

use super::World;

/// Whether the privileged test `what` can run (root, Debian's CNI plugins); see
/// [`plexus_test_support::privileged::privileged`].
pub fn privileged(what: &str) -> bool {
    plexus_test_support::privileged::privileged(what, &[Need::Root, Need::CniPlugins])
}

/// A veth pair, both ends up, usable as a macvlan parent.
pub fn veth() -> HostLink {
    let name = unique("plxv");
    let peer = format!("{name}p");
    sh(&[
        "ip", "link", "add", &name, "type", "veth", "peer", "name", &peer,
    ]);
    sh(&["ip", "link", "set", &name, "up"]);
    sh(&["ip", "link", "set", &peer, "up"]);
    HostLink(name)
}

/// The plexus binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_plexus"))
}

/// CNI_PATH: `<dir>/bin` (with plexus-ipam, built next to plexus by the workspace, and
/// whatever test plugins are put there) and Debian's plugins.
pub fn cni_path(dir: &Path) -> String {
    let ipam = binary().with_file_name("plexus-ipam");
    assert!(
        ipam.exists(),
        "{} is missing: build it first (cargo build -p plexus-ipam)",
        ipam.display()
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let _ = std::os::unix::fs::symlink(&ipam, bin.join("plexus-ipam"));
    format!("{}:/usr/lib/cni", bin.display())
}

/// CNI_PATH for tests whose only plugins are their own: `<dir>/bin`, created.
pub fn plugin_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    bin.display().to_string()
}

/// The `CNI_ARGS` of the tests' pod.
pub const POD_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p";

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout parsed (Null when empty).
    pub value: Value,
    /// Stderr (the log).
    pub stderr: String,
}

/// Runs `verb` of the plexus binary for `container` in `netns` with `cni_args`.
pub fn exec_with(
    world: &World,
    verb: &str,
    container: &str,
    netns: &Netns,
    conf: &Value,
    cni_args: &str,
) -> Run {
    let mut child = Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &world.cni_path)
        .env("CNI_ARGS", cni_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        eprintln!("{verb} stderr: {stderr}");
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        value,
        stderr,
    }
}

/// Runs `verb` for the tests' pod: exit code and stdout.
pub fn exec(
    world: &World,
    verb: &str,
    container: &str,
    netns: &Netns,
    conf: &Value,
) -> (i32, Value) {
    let run = exec_with(world, verb, container, netns, conf, POD_ARGS);
    (run.code, run.value)
}

/// Asserts success; the result.
pub fn ok(reply: (i32, Value)) -> Value {
    assert_eq!(reply.0, 0, "expected success: {}", reply.1);
    reply.1
}

/// The pod has only `lo`, no rule for table 100.
pub fn assert_pod_empty(pod: &Netns) {
    let links = pod.text(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "links left: {links}");
    let rules = pod.text(&["ip", "rule"]) + &pod.text(&["ip", "-6", "rule"]);
    assert!(!rules.contains("lookup 100"), "rules left: {rules}");
}
