//! Unit tests for reading the CNI environment.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::codes;

/// A complete ADD environment; tests remove or override entries.
fn add_vars() -> HashMap<&'static str, String> {
    HashMap::from([
        (VAR_COMMAND, "ADD".to_owned()),
        (VAR_CONTAINER_ID, "c0ffee-1.a_b".to_owned()),
        (VAR_NETNS, "/var/run/netns/pod1".to_owned()),
        (VAR_IFNAME, "net1".to_owned()),
        (VAR_ARGS, "K8S_POD_NAME=pod1".to_owned()),
        (VAR_PATH, "/opt/cni/bin:/usr/lib/cni".to_owned()),
    ])
}

fn read(vars: &HashMap<&'static str, String>) -> Result<Environment, Error> {
    Environment::from_vars(|name| vars.get(name).cloned())
}

fn with(command: &str) -> HashMap<&'static str, String> {
    let mut vars = add_vars();
    vars.insert(VAR_COMMAND, command.to_owned());
    vars
}

fn assert_code_4_naming(result: Result<Environment, Error>, names: &[&str]) {
    let err = result.expect_err("expected an environment error");
    assert_eq!(err.code, codes::INVALID_ENV, "{err:?}");
    for name in names {
        assert!(err.msg.contains(name), "{:?} should name {name}", err.msg);
    }
}

#[test]
fn reads_a_full_add_environment() {
    let env = read(&add_vars()).expect("valid");
    assert_eq!(env.command, Command::Add);
    assert_eq!(env.container_id.as_deref(), Some("c0ffee-1.a_b"));
    assert_eq!(env.netns, Some(PathBuf::from("/var/run/netns/pod1")));
    assert_eq!(env.ifname.as_deref(), Some("net1"));
    assert_eq!(env.args.pod_name(), Some("pod1"));
    assert_eq!(
        env.path,
        [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
    assert_eq!(
        env.attachment(),
        Some(Attachment {
            container_id: "c0ffee-1.a_b".into(),
            ifname: "net1".into()
        })
    );
}

#[test]
fn missing_or_empty_command_is_code_4() {
    let mut vars = add_vars();
    vars.remove(VAR_COMMAND);
    assert_code_4_naming(read(&vars), &[VAR_COMMAND]);
    vars.insert(VAR_COMMAND, String::new());
    assert_code_4_naming(read(&vars), &[VAR_COMMAND]);
}

#[test]
fn unknown_command_is_code_4() {
    assert_code_4_naming(read(&with("DELETE")), &[VAR_COMMAND, "DELETE"]);
}

#[test]
fn each_required_variable_missing_per_verb_is_named() {
    let required: [(&str, &[&str]); 3] = [
        ("ADD", &[VAR_CONTAINER_ID, VAR_NETNS, VAR_IFNAME]),
        ("CHECK", &[VAR_CONTAINER_ID, VAR_NETNS, VAR_IFNAME]),
        ("DEL", &[VAR_CONTAINER_ID, VAR_IFNAME]),
    ];
    for (command, names) in required {
        for name in names {
            let mut vars = with(command);
            vars.remove(name);
            assert_code_4_naming(read(&vars), &[name, command]);
            // An empty string is the same as unset.
            vars.insert(name, String::new());
            assert_code_4_naming(read(&vars), &[name]);
        }
    }
}

#[test]
fn all_missing_variables_are_named_at_once() {
    let vars = HashMap::from([(VAR_COMMAND, "ADD".to_owned())]);
    let err = read(&vars).expect_err("nothing set");
    assert_eq!(err.code, codes::INVALID_ENV);
    assert_eq!(
        err.msg,
        "ADD requires environment variables CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, \
         which are not set"
    );
}

#[test]
fn del_works_without_a_netns() {
    let mut vars = with("DEL");
    vars.remove(VAR_NETNS);
    let env = read(&vars).expect("DEL without netns is valid");
    assert_eq!(env.command, Command::Del);
    assert_eq!(env.netns, None);
    vars.insert(VAR_NETNS, String::new());
    assert_eq!(read(&vars).expect("empty netns is unset").netns, None);
}

#[test]
fn status_gc_version_need_nothing_and_ignore_attachment_vars() {
    for (command, expected) in [
        ("STATUS", Command::Status),
        ("GC", Command::Gc),
        ("VERSION", Command::Version),
    ] {
        let only_command = HashMap::from([(VAR_COMMAND, command.to_owned())]);
        let env = read(&only_command).expect(command);
        assert_eq!(env.command, expected);
        assert_eq!(env.attachment(), None);

        // libcni exports the per-attachment variables as empty strings here.
        let mut libcni_style = only_command.clone();
        for name in [VAR_CONTAINER_ID, VAR_NETNS, VAR_IFNAME, VAR_ARGS] {
            libcni_style.insert(name, String::new());
        }
        libcni_style.insert(VAR_PATH, "/opt/cni/bin".to_owned());
        let env = read(&libcni_style).expect(command);
        assert_eq!(
            (env.container_id, env.netns, env.ifname),
            (None, None, None)
        );

        // Stale values that would be invalid for ADD do not break these verbs.
        let mut stale = with(command);
        stale.insert(VAR_IFNAME, "far-too-long-interface".to_owned());
        stale.insert(VAR_CONTAINER_ID, "-bad".to_owned());
        let env = read(&stale).expect(command);
        assert_eq!((env.container_id, env.ifname), (None, None));
    }
}

#[test]
fn gc_and_status_read_path_and_args() {
    let env = read(&with("GC")).expect("GC");
    assert_eq!(env.path.len(), 2);
    assert_eq!(env.args.pod_name(), Some("pod1"));
    let mut bad_args = with("STATUS");
    bad_args.insert(VAR_ARGS, "junk".to_owned());
    assert_code_4_naming(read(&bad_args), &["CNI_ARGS", "junk"]);
}

#[test]
fn version_ignores_everything_but_the_command() {
    let mut vars = with("VERSION");
    vars.insert(VAR_ARGS, "junk".to_owned());
    let env = read(&vars).expect("VERSION");
    assert!(env.args.is_empty());
    assert!(env.path.is_empty());
}

#[test]
fn malformed_cni_args_is_code_4() {
    let mut vars = add_vars();
    vars.insert(VAR_ARGS, "K8S_POD_NAME".to_owned());
    assert_code_4_naming(read(&vars), &["CNI_ARGS", "K8S_POD_NAME"]);
}

#[test]
fn valid_container_ids_are_accepted() {
    for id in [
        "a",
        "0",
        "abc-DEF_1.2",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ] {
        let mut vars = add_vars();
        vars.insert(VAR_CONTAINER_ID, id.to_owned());
        assert_eq!(read(&vars).expect(id).container_id.as_deref(), Some(id));
    }
}

#[test]
fn invalid_container_ids_are_code_4_naming_var_and_value() {
    for id in [
        "-abc", "_abc", ".abc", "abc/def", "abc def", "abc:1", "ä", "a\u{0}b",
    ] {
        let mut vars = add_vars();
        vars.insert(VAR_CONTAINER_ID, id.to_owned());
        assert_code_4_naming(read(&vars), &[VAR_CONTAINER_ID, &format!("{id:?}")]);
    }
}

#[test]
fn valid_ifnames_are_accepted() {
    for ifname in [
        "eth0",
        "net1",
        "a",
        "123456789012345",
        "vlan.100",
        "eth-0_a",
    ] {
        let mut vars = add_vars();
        vars.insert(VAR_IFNAME, ifname.to_owned());
        assert_eq!(read(&vars).expect(ifname).ifname.as_deref(), Some(ifname));
    }
}

#[test]
fn invalid_ifnames_are_code_4_naming_var_and_value() {
    let too_long_in_bytes = "éééééééé"; // 8 characters, 16 bytes
    for ifname in [
        "1234567890123456",
        too_long_in_bytes,
        ".",
        "..",
        "eth/0",
        "eth:0",
        "eth 0",
        "eth\t0",
        "eth\u{a0}0",
        "eth\u{1}",
        "é",
        "\u{0435}th0",  // Cyrillic е: a lookalike of eth0
        "eth\u{200b}0", // zero-width space
        "eth\u{0}0",
    ] {
        let mut vars = add_vars();
        vars.insert(VAR_IFNAME, ifname.to_owned());
        assert_code_4_naming(read(&vars), &[VAR_IFNAME, &format!("{ifname:?}")]);
    }
}

#[test]
fn path_drops_empty_entries() {
    let mut vars = add_vars();
    vars.insert(VAR_PATH, ":/opt/cni/bin::".to_owned());
    assert_eq!(
        read(&vars).expect("valid").path,
        [PathBuf::from("/opt/cni/bin")]
    );
}

#[test]
fn spec_identifier_grammar() {
    assert!(is_spec_identifier("net-1.a_b"));
    assert!(!is_spec_identifier(""));
    assert!(!is_spec_identifier("-net"));
    assert!(!is_spec_identifier("net/1"));
}
