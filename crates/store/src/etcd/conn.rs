//! Reaching etcd: connect options from the configuration and its files, the classification
//! of client errors (retry, give up, conflict), and the deadline with jittered backoff that
//! bounds every store call.

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::time::Instant;

use super::config::EtcdConfig;
use crate::Secret;
use crate::backoff::Backoff;
use crate::error::StoreError;

/// Why one attempt of a store call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A concurrent writer changed what the attempt read (a failed compare, a compacted
    /// snapshot): re-run the whole attempt on fresh data.
    Conflict(String),
    /// No answer, or an answer that a later attempt may not get (no leader, overload).
    Transient(String),
    /// Retrying cannot help.
    Fatal(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Fatal(err)
    }
}

/// Everything needed to open a client, prepared once from the configuration.
pub(crate) struct Connector {
    endpoints: Vec<String>,
    options: ConnectOptions,
    username: Option<String>,
    password: Option<Secret>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ConnectOptions' own Debug would print the password.
        f.debug_struct("Connector")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Reads the password, CA, certificate and key files of `cfg`.
    pub(crate) fn new(cfg: &EtcdConfig) -> Result<Connector, StoreError> {
        cfg.validate()?;
        // require_leader: a member cut off from its cluster answers at once instead of
        // letting the call hang until the deadline.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(cfg.timeout)
            .with_timeout(cfg.timeout)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        let password = match (&cfg.password_file, &cfg.password) {
            (Some(path), _) => Some(read_password(path)?),
            (None, Some(inline)) => Some(inline.clone()),
            (None, None) => None,
        };
        if let (Some(user), Some(password)) = (&cfg.username, &password) {
            options = options.with_user(user.clone(), password.expose());
        }
        if cfg.uses_tls() {
            options = options.with_tls(tls_options(cfg)?);
        }
        Ok(Connector {
            endpoints: cfg.endpoints.clone(),
            options,
            username: cfg.username.clone(),
            password,
        })
    }

    /// The endpoints, for messages.
    pub(crate) fn endpoints(&self) -> String {
        self.endpoints.join(",")
    }

    /// A new client. The connection itself is made by the first request (and remade by
    /// any later one after a failure); with a username, this authenticates first.
    pub(crate) async fn connect(&self) -> Result<Client, Failure> {
        Client::connect(&self.endpoints, Some(self.options.clone()))
            .await
            .map_err(|err| match err {
                // Raised while setting up the channel, before any network traffic.
                etcd_client::Error::TransportError(_)
                | etcd_client::Error::InvalidUri(_)
                | etcd_client::Error::InvalidArgs(_) => Failure::Fatal(StoreError::config(
                    "ipam.store",
                    self.scrub(format!("cannot set up the etcd client: {err}")),
                )),
                other => self.classify(other),
            })
    }

    /// What an error of the etcd client means for the call, with secrets removed.
    pub(crate) fn classify(&self, err: etcd_client::Error) -> Failure {
        let endpoints = self.endpoints();
        match err {
            etcd_client::Error::GRpcStatus(status) => {
                let message = self.scrub(with_causes(status.message(), &status));
                classify_status(i32::from(status.code()), message, &endpoints, self)
            }
            etcd_client::Error::TransportError(e) => Failure::Transient(self.scrub(format!(
                "etcd at {endpoints} unreachable: {}",
                with_causes(&e.to_string(), &e)
            ))),
            etcd_client::Error::IoError(e) => {
                Failure::Transient(self.scrub(format!("etcd at {endpoints} unreachable: {e}")))
            }
            other => Failure::Fatal(StoreError::Internal {
                reason: self.scrub(format!("etcd client error: {other}")),
            }),
        }
    }

    /// `message` with the password (should a server or library ever echo it) removed.
    pub(crate) fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(secret) if !secret.expose().is_empty() && message.contains(secret.expose()) => {
                message.replace(secret.expose(), "<redacted>")
            }
            _ => message,
        }
    }

    fn user(&self) -> &str {
        self.username.as_deref().unwrap_or("(none)")
    }
}

/// `message` followed by the causes of `err` it does not already mention (a TLS failure
/// hides behind a bare "transport error" otherwise).
fn with_causes(message: &str, err: &dyn std::error::Error) -> String {
    let mut text = message.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let shown = err.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = err.source();
    }
    text
}

// gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const INVALID_ARGUMENT: i32 = 3;
const DEADLINE_EXCEEDED: i32 = 4;
const PERMISSION_DENIED: i32 = 7;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const OUT_OF_RANGE: i32 = 11;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

fn classify_status(code: i32, message: String, endpoints: &str, conn: &Connector) -> Failure {
    let unavailable = |reason: String| Failure::Fatal(StoreError::Unavailable { reason });
    if message.contains("authentication failed")
        || message.contains("user name is empty")
        || code == UNAUTHENTICATED
    {
        return unavailable(format!(
            "etcd at {endpoints} refused the credentials of user {}: {message}",
            conn.user()
        ));
    }
    if code == PERMISSION_DENIED {
        return unavailable(format!(
            "etcd user {} may not use these keys (grant it read/write on the store prefix): \
             {message}",
            conn.user()
        ));
    }
    if message.contains("invalid peer certificate") {
        // A configuration problem: retrying until the deadline would only hide it.
        return unavailable(format!(
            "TLS verification of etcd at {endpoints} failed (ca_file must hold the CA that \
             signed the server certificate, whose names must include the endpoint's host): \
             {message}"
        ));
    }
    if message.contains("database space exceeded") {
        return unavailable(format!(
            "etcd at {endpoints} is out of space (NOSPACE alarm; compact and defragment): \
             {message}"
        ));
    }
    match code {
        // The snapshot this attempt read at was compacted away: read again.
        OUT_OF_RANGE => Failure::Conflict(message),
        CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED | INTERNAL
        | UNAVAILABLE => Failure::Transient(format!("etcd at {endpoints}: {message}")),
        INVALID_ARGUMENT => Failure::Fatal(StoreError::Internal {
            reason: format!("etcd refused a request as invalid: {message}"),
        }),
        _ => Failure::Fatal(StoreError::Internal {
            reason: format!("etcd at {endpoints} failed (gRPC code {code}): {message}"),
        }),
    }
}

fn read_password(path: &Path) -> Result<Secret, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Unavailable {
        reason: format!("cannot read etcd password_file {}: {e}", path.display()),
    })?;
    // Files written by `echo` or editors end with a newline that is not part of it.
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(StoreError::config(
            "ipam.store.password_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret::new(password))
}

fn tls_options(cfg: &EtcdConfig) -> Result<TlsOptions, StoreError> {
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.ca_file {
        let pem = read_pem("ca_file", ca, "CERTIFICATE-----")?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
        let cert = read_pem("cert_file", cert, "CERTIFICATE-----")?;
        let key = read_pem("key_file", key, "PRIVATE KEY-----")?;
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(tls)
}

/// The contents of a PEM file, which must contain a `-----BEGIN ...<marker>` block.
fn read_pem(field: &str, path: &Path, marker: &str) -> Result<Vec<u8>, StoreError> {
    let pem = std::fs::read(path).map_err(|e| StoreError::Unavailable {
        reason: format!("cannot read etcd {field} {}: {e}", path.display()),
    })?;
    let text = String::from_utf8_lossy(&pem);
    let has_block = text
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.ends_with(marker));
    if !has_block {
        return Err(StoreError::config(
            format!("ipam.store.{field}"),
            format!("{} holds no PEM block ending in {marker:?}", path.display()),
        ));
    }
    Ok(pem)
}

/// The deadline of one store call and the [`Backoff`] between its attempts.
pub(crate) struct Attempts {
    deadline: Instant,
    timeout: Duration,
    backoff: Backoff,
}

impl Attempts {
    /// A call that must finish within `timeout` from now.
    pub(crate) fn new(timeout: Duration) -> Self {
        let deadline = Instant::now() + timeout;
        Attempts {
            deadline,
            timeout,
            backoff: Backoff::until(deadline.into_std()),
        }
    }

    /// Whether no attempt has failed yet.
    pub(crate) fn is_first(&self) -> bool {
        self.backoff.failures() == 0
    }

    /// `step` cut off at the deadline.
    pub(crate) async fn bounded<T>(
        &self,
        step: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout_at(self.deadline, step).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Transient(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// After a failed attempt: waits the backoff's pause when another attempt fits before
    /// the deadline, otherwise returns the error the call ends with.
    pub(crate) async fn retry_after(
        &mut self,
        failure: Failure,
        endpoints: &str,
    ) -> Result<(), StoreError> {
        let (busy, reason) = match failure {
            Failure::Fatal(err) => return Err(err),
            Failure::Conflict(reason) => (true, reason),
            Failure::Transient(reason) => (false, reason),
        };
        tracing::debug!(attempt = self.backoff.failures() + 1, busy, %reason, "etcd attempt failed");
        if self.backoff.wait().await {
            return Ok(());
        }
        let waited = self.timeout.as_millis();
        let attempts = self.backoff.failures();
        Err(if busy {
            StoreError::Busy {
                reason: format!(
                    "concurrent writers kept changing the same etcd keys; gave up after \
                     {attempts} attempts in {waited} ms (last: {reason})"
                ),
            }
        } else {
            StoreError::Unavailable {
                reason: format!(
                    "etcd at {endpoints} did not succeed within {waited} ms ({attempts} \
                     attempts; last error: {reason})"
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests;
