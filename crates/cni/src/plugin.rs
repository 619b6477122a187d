//! The runner every plexus binary uses: one CNI invocation from environment and stdin to
//! exactly one output on stdout and an exit code.

use std::any::Any;
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;

use crate::command::Command;
use crate::env::{Environment, VAR_COMMAND};
use crate::error::{ERROR_EXIT_CODE, Error, render_error};
use crate::netconf::{MAX_CONFIG_BYTES, NetConf};
use crate::result::{SuccessResult, version_reply};
use crate::version::{CniVersion, SUPPORTED_VERSIONS};

/// Everything a plugin gets for one invocation.
#[derive(Debug, Clone)]
pub struct Request {
    /// The validated environment.
    pub env: Environment,
    /// The parsed network configuration.
    pub conf: NetConf,
    /// The exact bytes read from stdin, for passing on to delegate plugins.
    pub stdin: Vec<u8>,
}

/// A CNI plugin: one method per verb (VERSION is answered by [`run`] itself).
///
/// [`run`] only calls a method when the configuration's `cniVersion` has the verb (CHECK from
/// 0.4.0, STATUS and GC from 1.1.0). Return an [`Error`] with the matching spec code; a panic
/// is caught and reported as code 999.
pub trait Plugin {
    /// ADD: attach the container and return the result.
    fn add(&self, req: &Request) -> Result<SuccessResult, Error>;
    /// DEL: release the attachment; must succeed when it is already gone.
    fn del(&self, req: &Request) -> Result<(), Error>;
    /// CHECK: verify the attachment is still as ADD left it.
    fn check(&self, req: &Request) -> Result<(), Error>;
    /// STATUS: `Ok` when ready to service ADD, else code 50 or 51.
    fn status(&self, req: &Request) -> Result<(), Error>;
    /// GC: release resources of attachments not in `req.conf.valid_attachments`.
    fn gc(&self, req: &Request) -> Result<(), Error>;
}

/// An error on its way to stdout, with the configuration's version when it is known.
struct Failure {
    error: Error,
    version: Option<CniVersion>,
}

impl Failure {
    fn new(error: Error, version: Option<CniVersion>) -> Self {
        Self { error, version }
    }
}

/// Runs one CNI invocation and returns the process exit code (0 on success, 1 on error).
///
/// Reads the environment through `var` and all of `stdin` (at most 1 MiB is accepted),
/// answers VERSION itself, refuses CHECK below CNI 0.4.0 and STATUS/GC below 1.1.0 with
/// code 1, and otherwise dispatches to `plugin`. Writes exactly one thing to `stdout`: the
/// result JSON (ADD), the version JSON (VERSION), nothing (successful DEL, CHECK, STATUS,
/// GC), or the error object from [`render_error`]. A panic inside the plugin is caught and
/// becomes code 999 "internal error" with the panic message in `details`.
///
/// When `CNI_COMMAND` is unset or empty (a person ran the binary), writes `about` and the
/// supported versions to stderr and returns 0, as libcni's skel does.
pub fn run<P: Plugin>(
    plugin: &P,
    about: &str,
    var: impl Fn(&str) -> Option<String>,
    stdin: impl Read,
    mut stdout: impl Write,
) -> i32 {
    if var(VAR_COMMAND).is_none_or(|command| command.is_empty()) {
        print_about(about);
        return 0;
    }
    let (output, exit_code) = match invoke(plugin, &var, stdin) {
        Ok(None) => return 0,
        Ok(Some(json)) => (json, 0),
        Err(failure) => render_error(&failure.error, failure.version.as_ref()),
    };
    let written = stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => exit_code,
        Err(err) => {
            // stdout is gone, so stderr is the only place left to say why.
            let _ = writeln!(std::io::stderr(), "plexus: cannot write to stdout: {err}");
            ERROR_EXIT_CODE
        }
    }
}

fn print_about(about: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "{about}\nCNI protocol versions supported: {}",
        SUPPORTED_VERSIONS.join(", ")
    );
}

/// Everything between reading the input and choosing the output: `Ok(Some(json))` to print,
/// `Ok(None)` for a silent success.
fn invoke<P: Plugin>(
    plugin: &P,
    var: &impl Fn(&str) -> Option<String>,
    stdin: impl Read,
) -> Result<Option<String>, Failure> {
    let bytes = read_stdin(stdin).map_err(|err| Failure::new(err, None))?;
    // Lets errors found before the configuration is fully parsed carry its version.
    let sniffed = sniff_version(&bytes);
    let env = Environment::from_vars(var).map_err(|err| Failure::new(err, sniffed))?;

    if env.command == Command::Version {
        let requested = version_request(&bytes).map_err(|err| Failure::new(err, sniffed))?;
        return Ok(Some(version_reply(&requested).to_string()));
    }

    let conf = NetConf::parse(&bytes).map_err(|err| Failure::new(err, sniffed))?;
    let version = conf.cni_version;
    let fail = |err| Failure::new(err, Some(version));
    check_verb_supported(env.command, &version).map_err(fail)?;

    tracing::debug!(
        command = %env.command,
        network = %conf.name,
        container_id = env.container_id.as_deref().unwrap_or(""),
        ifname = env.ifname.as_deref().unwrap_or(""),
        "dispatching CNI request"
    );
    let request = Request {
        env,
        conf,
        stdin: bytes,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| dispatch(plugin, &request)));
    match outcome {
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(result))) => Ok(Some(result.to_json(&version).to_string())),
        Ok(Err(err)) => Err(fail(err)),
        Err(payload) => Err(fail(
            Error::internal("internal error").with_details(panic_message(payload.as_ref())),
        )),
    }
}

fn dispatch<P: Plugin>(plugin: &P, req: &Request) -> Result<Option<SuccessResult>, Error> {
    match req.env.command {
        Command::Add => plugin.add(req).map(Some),
        Command::Del => plugin.del(req).map(|()| None),
        Command::Check => plugin.check(req).map(|()| None),
        Command::Status => plugin.status(req).map(|()| None),
        Command::Gc => plugin.gc(req).map(|()| None),
        // Answered before dispatch; kept total so no verb can reach a plugin unhandled.
        Command::Version => Err(Error::internal("VERSION reached the plugin dispatcher")),
    }
}

/// Reads stdin to its end, but never more than one byte past the configuration limit (so an
/// oversized input is still reported as such by [`NetConf::parse`]).
fn read_stdin(stdin: impl Read) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CONFIG_BYTES).map_or(u64::MAX, |max| max.saturating_add(1));
    stdin.take(limit).read_to_end(&mut bytes).map_err(|err| {
        Error::io_failure("failed to read the network configuration from stdin")
            .with_details(err.to_string())
    })?;
    Ok(bytes)
}

/// The `cniVersion` of `bytes` if it is JSON with a version string, whatever else is wrong.
fn sniff_version(bytes: &[u8]) -> Option<CniVersion> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value.get("cniVersion")?.as_str()?.parse().ok()
}

/// The version a VERSION request asks about: stdin `{"cniVersion": "x"}`; empty stdin, or no
/// or an empty `cniVersion`, means the latest.
fn version_request(bytes: &[u8]) -> Result<CniVersion, Error> {
    if bytes.trim_ascii().is_empty() {
        return Ok(CniVersion::LATEST);
    }
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(Error::invalid_config(format!(
            "VERSION request is larger than the {MAX_CONFIG_BYTES}-byte limit"
        )));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|err| {
        Error::decode_failure("VERSION request on stdin is not valid JSON")
            .with_details(err.to_string())
    })?;
    let Value::Object(object) = value else {
        return Err(Error::decode_failure(
            "VERSION request on stdin must be a JSON object",
        ));
    };
    match object.get("cniVersion") {
        None | Some(Value::Null) => Ok(CniVersion::LATEST),
        Some(Value::String(text)) if text.is_empty() => Ok(CniVersion::LATEST),
        Some(Value::String(text)) => text.parse(),
        Some(_) => Err(Error::decode_failure(
            "VERSION request field \"cniVersion\" must be a string",
        )),
    }
}

/// Refuses verbs the configuration's version does not have (code 1), as libcni's skel does.
fn check_verb_supported(command: Command, version: &CniVersion) -> Result<(), Error> {
    let minimum = match command {
        Command::Check if !version.supports_check() => CniVersion::V0_4_0,
        Command::Status | Command::Gc if !version.supports_status_gc() => CniVersion::V1_1_0,
        _ => return Ok(()),
    };
    Err(Error::incompatible_version(format!(
        "{command} requires cniVersion {minimum} or later; the configuration has {version}"
    )))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
