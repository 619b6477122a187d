//! Fuzz target: the CNI environment of one invocation (`Environment::from_vars`) and
//! `CNI_ARGS` (`CniArgs::parse`).
//!
//! The input is split at NUL bytes into `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH`; the whole input, as text, is also parsed as
//! `CNI_ARGS` on its own.
//!
//! Invariants: errors render as CNI JSON; `CNI_ARGS` renders back (`K=V;K=V`) to text that
//! parses to the same pairs; per-attachment verbs always carry their attachment.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_cni::{CniArgs, Command, Environment};
use plexus_fuzz::{check_cni_error, nul_fields};

/// The variables, in the order of the input's NUL-separated fields.
const VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

fn check_args(args: &CniArgs, input_len: usize) {
    let again = CniArgs::parse(&args.to_string()).expect("rendered CNI_ARGS re-parse");
    assert_eq!(&again, args);
    for (key, value) in args.pairs() {
        assert!(!key.is_empty() && !key.contains(';') && !key.contains('='));
        assert!(!value.contains(';'));
    }
    if let Err(err) = args.ips() {
        check_cni_error(&err, input_len);
    }
    if let Err(err) = args.reject_unknown() {
        check_cni_error(&err, input_len);
    }
    let _ = (args.pod_namespace(), args.pod_name(), args.pod_uid());
    let _ = (args.infra_container_id(), args.ignore_unknown());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match CniArgs::parse(text) {
            Ok(args) => check_args(&args, data.len()),
            Err(err) => check_cni_error(&err, data.len()),
        }
    }

    let fields = nul_fields(data, VARS.len());
    let var = |name: &str| {
        let index = VARS.iter().position(|v| *v == name)?;
        fields.get(index).copied().flatten().map(str::to_owned)
    };
    match Environment::from_vars(var) {
        Ok(env) => {
            if matches!(env.command, Command::Add | Command::Del | Command::Check) {
                let attachment = env.attachment().expect("per-attachment verb");
                assert!(!attachment.container_id.is_empty());
                assert!(!attachment.ifname.is_empty() && attachment.ifname.len() <= 15);
            } else {
                assert!(env.attachment().is_none());
            }
            check_args(&env.args, data.len());
        }
        Err(err) => check_cni_error(&err, data.len()),
    }
});
