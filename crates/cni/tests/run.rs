//! End-to-end tests of `plexus_cni::run` with a fake plugin: environment and stdin in,
//! exactly one stdout output and an exit code out.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};

use plexus_cni::{
    Command, Error, IpConfig, Plugin, Request, SuccessResult, codes, netconf::MAX_CONFIG_BYTES, run,
};
use serde_json::{Value, json};

/// What the fake plugin does when called.
#[derive(Clone)]
enum Behaviour {
    Succeed,
    Fail(Error),
    PanicStr,
    PanicString,
}

/// A plugin that records every request it gets and behaves as told.
struct FakePlugin {
    behaviour: Behaviour,
    calls: RefCell<Vec<Request>>,
}

impl FakePlugin {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            calls: RefCell::new(Vec::new()),
        }
    }

    fn act(&self, req: &Request) -> Result<(), Error> {
        self.calls.borrow_mut().push(req.clone());
        match &self.behaviour {
            Behaviour::Succeed => Ok(()),
            Behaviour::Fail(err) => Err(err.clone()),
            Behaviour::PanicStr => panic!("store handle vanished"),
            Behaviour::PanicString => panic!("index {} out of range", 7),
        }
    }

    fn commands(&self) -> Vec<Command> {
        self.calls
            .borrow()
            .iter()
            .map(|req| req.env.command)
            .collect()
    }
}

impl Plugin for FakePlugin {
    fn add(&self, req: &Request) -> Result<SuccessResult, Error> {
        self.act(req)?;
        Ok(SuccessResult {
            ips: vec![IpConfig {
                address: "10.0.0.5/24".parse().map_err(|_| Error::internal("test"))?,
                gateway: Some("10.0.0.1".parse().map_err(|_| Error::internal("test"))?),
                interface: None,
            }],
            ..SuccessResult::default()
        })
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        self.act(req)
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        self.act(req)
    }
    fn status(&self, req: &Request) -> Result<(), Error> {
        self.act(req)
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        self.act(req)
    }
}

/// The outcome of one invocation.
struct Outcome {
    exit: i32,
    stdout: String,
}

impl Outcome {
    /// stdout parsed as exactly one JSON document on one line.
    fn json(&self) -> Value {
        assert!(
            self.stdout.ends_with('\n'),
            "stdout must end with a newline: {:?}",
            self.stdout
        );
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "exactly one line: {:?}",
            self.stdout
        );
        serde_json::from_str(&self.stdout).expect("stdout must be one JSON document")
    }

    fn assert_error(&self, code: u32, version: &str) -> Value {
        assert_eq!(self.exit, 1, "stdout: {}", self.stdout);
        let value = self.json();
        assert_eq!(value["code"], code, "{value}");
        assert_eq!(value["cniVersion"], version, "{value}");
        assert!(
            value["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{value}"
        );
        value
    }
}

fn env_for(command: &str) -> HashMap<String, String> {
    let mut vars = HashMap::from([("CNI_COMMAND".to_owned(), command.to_owned())]);
    if matches!(command, "ADD" | "DEL" | "CHECK") {
        vars.insert("CNI_CONTAINERID".into(), "ctr1".into());
        vars.insert("CNI_NETNS".into(), "/var/run/netns/ctr1".into());
        vars.insert("CNI_IFNAME".into(), "net1".into());
        vars.insert("CNI_ARGS".into(), "K8S_POD_NAME=pod1".into());
    }
    vars.insert("CNI_PATH".into(), "/opt/cni/bin".into());
    vars
}

fn conf(version: &str) -> String {
    json!({"cniVersion": version, "name": "net1", "type": "plexus-ipam"}).to_string()
}

fn invoke_with(plugin: &FakePlugin, vars: &HashMap<String, String>, stdin: impl Read) -> Outcome {
    let mut stdout = Vec::new();
    let exit = run(
        plugin,
        "plexus test plugin",
        |k| vars.get(k).cloned(),
        stdin,
        &mut stdout,
    );
    Outcome {
        exit,
        stdout: String::from_utf8(stdout).expect("stdout must be UTF-8"),
    }
}

fn invoke(plugin: &FakePlugin, command: &str, stdin: &str) -> Outcome {
    invoke_with(plugin, &env_for(command), stdin.as_bytes())
}

#[test]
fn add_prints_the_result_in_the_config_version() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let out = invoke(&plugin, "ADD", &conf("0.3.1"));
    assert_eq!(out.exit, 0);
    assert_eq!(
        out.json(),
        json!({"cniVersion": "0.3.1",
               "ips": [{"version": "4", "address": "10.0.0.5/24", "gateway": "10.0.0.1"}]})
    );
    let out = invoke(&plugin, "ADD", &conf("1.1.0"));
    assert_eq!(
        out.json()["ips"][0],
        json!({"address": "10.0.0.5/24", "gateway": "10.0.0.1"})
    );
}

#[test]
fn plugin_gets_the_parsed_environment_config_and_raw_stdin() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let stdin = conf("1.0.0");
    invoke(&plugin, "DEL", &stdin);
    let calls = plugin.calls.borrow();
    let req = calls.first().expect("called once");
    assert_eq!(req.env.command, Command::Del);
    assert_eq!(req.env.container_id.as_deref(), Some("ctr1"));
    assert_eq!(req.env.args.pod_name(), Some("pod1"));
    assert_eq!(req.conf.name, "net1");
    assert_eq!(req.stdin, stdin.as_bytes());
}

#[test]
fn silent_verbs_print_nothing_on_success() {
    for command in ["DEL", "CHECK", "STATUS", "GC"] {
        let plugin = FakePlugin::new(Behaviour::Succeed);
        let out = invoke(&plugin, command, &conf("1.1.0"));
        assert_eq!((out.exit, out.stdout.as_str()), (0, ""), "{command}");
        assert_eq!(plugin.commands().len(), 1, "{command}");
    }
}

#[test]
fn gc_sees_the_valid_attachments() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let stdin = json!({"cniVersion": "1.1.0", "name": "net1", "type": "plexus-ipam",
        "cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "net1"}]});
    let out = invoke(&plugin, "GC", &stdin.to_string());
    assert_eq!(out.exit, 0);
    let calls = plugin.calls.borrow();
    let valid = calls[0].conf.valid_attachments.as_ref().expect("present");
    assert_eq!(valid.len(), 1);
    assert_eq!(valid[0].container_id, "ctr1");
}

#[test]
fn check_below_0_4_0_is_refused_with_code_1() {
    for version in ["0.3.0", "0.3.1"] {
        let plugin = FakePlugin::new(Behaviour::Succeed);
        let out = invoke(&plugin, "CHECK", &conf(version));
        let value = out.assert_error(codes::INCOMPATIBLE_VERSION, version);
        assert!(
            value["msg"].as_str().unwrap_or("").contains("CHECK"),
            "{value}"
        );
        assert!(plugin.commands().is_empty(), "plugin must not be called");
    }
    let plugin = FakePlugin::new(Behaviour::Succeed);
    assert_eq!(invoke(&plugin, "CHECK", &conf("0.4.0")).exit, 0);
}

#[test]
fn status_and_gc_below_1_1_0_are_refused_with_code_1() {
    for command in ["STATUS", "GC"] {
        for version in ["0.3.1", "0.4.0", "1.0.0"] {
            let plugin = FakePlugin::new(Behaviour::Succeed);
            let out = invoke(&plugin, command, &conf(version));
            out.assert_error(codes::INCOMPATIBLE_VERSION, version);
            assert!(plugin.commands().is_empty(), "{command} {version}");
        }
    }
}

#[test]
fn plugin_errors_are_rendered_with_the_config_version() {
    let err = Error::not_available("store unreachable").with_details("connection refused");
    let plugin = FakePlugin::new(Behaviour::Fail(err));
    let out = invoke(&plugin, "STATUS", &conf("1.1.0"));
    let value = out.assert_error(codes::NOT_AVAILABLE, "1.1.0");
    assert_eq!(value["msg"], "store unreachable");
    assert_eq!(value["details"], "connection refused");

    let plugin = FakePlugin::new(Behaviour::Fail(Error::try_again_later("busy")));
    let out = invoke(&plugin, "ADD", &conf("0.4.0"));
    out.assert_error(codes::TRY_AGAIN_LATER, "0.4.0");
}

#[test]
fn a_panicking_plugin_becomes_code_999_and_nothing_else_on_stdout() {
    for (behaviour, message) in [
        (Behaviour::PanicStr, "store handle vanished"),
        (Behaviour::PanicString, "index 7 out of range"),
    ] {
        for command in ["ADD", "DEL"] {
            let plugin = FakePlugin::new(behaviour.clone());
            let out = invoke(&plugin, command, &conf("1.0.0"));
            let value = out.assert_error(codes::INTERNAL, "1.0.0");
            assert_eq!(value["msg"], "internal error");
            assert_eq!(value["details"], message);
        }
    }
}

#[test]
fn version_is_answered_without_the_plugin() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let supported = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    for (stdin, expected) in [
        ("", "1.1.0"),
        ("  \n", "1.1.0"),
        (r#"{"cniVersion": "0.4.0"}"#, "0.4.0"),
        (r#"{"cniVersion": "0.2.0"}"#, "0.2.0"),
        (r#"{"cniVersion": ""}"#, "1.1.0"),
        (r#"{"name": "x"}"#, "1.1.0"),
    ] {
        let out = invoke(&plugin, "VERSION", stdin);
        assert_eq!(out.exit, 0, "{stdin:?}");
        assert_eq!(
            out.json(),
            json!({"cniVersion": expected, "supportedVersions": supported}),
            "{stdin:?}"
        );
    }
    assert!(plugin.commands().is_empty());
}

#[test]
fn version_with_garbage_stdin_is_code_6() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    for stdin in [
        "not json",
        "[1]",
        r#"{"cniVersion": 1}"#,
        r#"{"cniVersion": "one"}"#,
    ] {
        invoke(&plugin, "VERSION", stdin).assert_error(codes::DECODE_FAILURE, "1.1.0");
    }
    let out = invoke_with(&plugin, &env_for("VERSION"), &b"\xff\xfe"[..]);
    out.assert_error(codes::DECODE_FAILURE, "1.1.0");
}

#[test]
fn no_command_prints_nothing_on_stdout_and_exits_0() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let nothing = HashMap::new();
    let out = invoke_with(&plugin, &nothing, &b""[..]);
    assert_eq!((out.exit, out.stdout.as_str()), (0, ""));
    let empty = HashMap::from([("CNI_COMMAND".to_owned(), String::new())]);
    let out = invoke_with(&plugin, &empty, &b""[..]);
    assert_eq!((out.exit, out.stdout.as_str()), (0, ""));
    assert!(plugin.commands().is_empty());
}

#[test]
fn unknown_command_is_code_4() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let out = invoke(&plugin, "RESTART", &conf("0.4.0"));
    out.assert_error(codes::INVALID_ENV, "0.4.0");
}

#[test]
fn env_errors_carry_the_config_version_when_it_can_be_read() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let mut vars = env_for("ADD");
    vars.remove("CNI_IFNAME");
    let out = invoke_with(&plugin, &vars, conf("0.4.0").as_bytes());
    let value = out.assert_error(codes::INVALID_ENV, "0.4.0");
    assert!(
        value["msg"].as_str().unwrap_or("").contains("CNI_IFNAME"),
        "{value}"
    );
    // With an unreadable config the error falls back to 1.1.0.
    let out = invoke_with(&plugin, &vars, &b"garbage"[..]);
    out.assert_error(codes::INVALID_ENV, "1.1.0");
    assert!(plugin.commands().is_empty());
}

#[test]
fn config_errors_are_reported_with_their_codes() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    invoke(&plugin, "ADD", "").assert_error(codes::DECODE_FAILURE, "1.1.0");
    invoke(&plugin, "ADD", "{oops").assert_error(codes::DECODE_FAILURE, "1.1.0");
    invoke(&plugin, "ADD", &conf("0.2.0")).assert_error(codes::INCOMPATIBLE_VERSION, "0.2.0");
    let nameless = json!({"cniVersion": "1.0.0", "type": "plexus-ipam"}).to_string();
    invoke(&plugin, "ADD", &nameless).assert_error(codes::INVALID_CONFIG, "1.0.0");
    assert!(plugin.commands().is_empty());
}

#[test]
fn endless_stdin_is_bounded_and_reported_as_code_7() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let out = invoke_with(&plugin, &env_for("ADD"), io::repeat(b' '));
    out.assert_error(codes::INVALID_CONFIG, "1.1.0");
    let big = format!("{}{}", conf("0.4.0"), " ".repeat(MAX_CONFIG_BYTES));
    let out = invoke_with(&plugin, &env_for("DEL"), big.as_bytes());
    // The version is still read from the (whitespace-padded) object for the error.
    out.assert_error(codes::INVALID_CONFIG, "0.4.0");
    assert!(plugin.commands().is_empty());
}

/// A stdin that fails.
struct BrokenReader;

impl Read for BrokenReader {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("stdin exploded"))
    }
}

#[test]
fn unreadable_stdin_is_code_5() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let out = invoke_with(&plugin, &env_for("ADD"), BrokenReader);
    let value = out.assert_error(codes::IO_FAILURE, "1.1.0");
    assert_eq!(value["details"], "stdin exploded");
}

/// A stdout that fails.
struct BrokenWriter;

impl Write for BrokenWriter {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn failing_to_write_the_result_exits_1() {
    let plugin = FakePlugin::new(Behaviour::Succeed);
    let vars = env_for("ADD");
    let exit = run(
        &plugin,
        "about",
        |k| vars.get(k).cloned(),
        conf("1.1.0").as_bytes(),
        BrokenWriter,
    );
    assert_eq!(exit, 1);
    // A silent success writes nothing, so a broken stdout does not matter there.
    let vars = env_for("DEL");
    let exit = run(
        &plugin,
        "about",
        |k| vars.get(k).cloned(),
        conf("1.1.0").as_bytes(),
        BrokenWriter,
    );
    assert_eq!(exit, 0);
}
