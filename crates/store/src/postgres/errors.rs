//! Turning tokio-postgres errors into [`StoreError`]s that name the server, never a secret.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::config::SslMode;
use crate::error::StoreError;

/// What an error message needs: where the server is, the deadline, and the secret that must
/// never appear in a message (defence in depth: servers do not echo passwords, but a
/// message built from a connection string might).
#[derive(Debug, Clone)]
pub(crate) struct ErrCtx {
    /// `host:port` of the server.
    pub endpoint: String,
    /// Database name.
    pub dbname: String,
    /// The configured deadline of one call.
    pub timeout: Duration,
    /// Text to scrub from every message (the password), if any.
    pub secret: Option<String>,
    /// The configured `sslmode`, named when a TLS handshake fails.
    pub sslmode: SslMode,
}

impl ErrCtx {
    /// Removes the secret from `message`.
    pub fn scrub(&self, message: String) -> String {
        match &self.secret {
            Some(secret) if !secret.is_empty() && message.contains(secret.as_str()) => {
                message.replace(secret.as_str(), "<redacted>")
            }
            _ => message,
        }
    }

    /// Where, for messages: `database plexus on 127.0.0.1:5432`.
    fn place(&self) -> String {
        format!("PostgreSQL database {} on {}", self.dbname, self.endpoint)
    }

    /// Classifies `err`.
    pub fn map(&self, err: &tokio_postgres::Error) -> StoreError {
        let place = self.place();
        let Some(db) = err.as_db_error() else {
            // No server answer: I/O, TLS, a closed connection, a timeout while connecting.
            let mut detail = self.scrub(error_chain(err));
            if self.sslmode != SslMode::Disable && mentions_tls(&detail) {
                // TLS is on by default (verify-full): a plain test server lands here.
                detail.push_str(&format!(
                    " [ipam.store.sslmode is \"{}\": the server must offer TLS with a \
                     certificate the ca_file (or system roots) verifies; set \"sslmode\": \
                     \"disable\" only for a server reached over a trusted link]",
                    self.sslmode.as_str()
                ));
            }
            return if err.is_closed() {
                StoreError::Unavailable {
                    reason: format!("connection to {place} was closed ({detail})"),
                }
            } else {
                StoreError::Unavailable {
                    reason: format!("cannot reach {place}: {detail}"),
                }
            };
        };
        let code = db.code();
        let detail = self.scrub(format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            code.code()
        ));
        let class = &code.code()[..2.min(code.code().len())];
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            StoreError::Busy {
                reason: format!("{place} is contended ({detail})"),
            }
        } else if *code == SqlState::QUERY_CANCELED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        {
            StoreError::Unavailable {
                reason: format!(
                    "{place} did not finish within the timeout of {} ms ({detail})",
                    self.timeout.as_millis()
                ),
            }
        } else if class == "28" {
            StoreError::Unavailable {
                reason: format!(
                    "{place} refused the login (check user, password_file and pg_hba.conf): \
                     {detail}"
                ),
            }
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            StoreError::Unavailable {
                reason: format!("{place} is read-only, is it a standby? ({detail})"),
            }
        } else if matches!(class, "08" | "53" | "57" | "58" | "3D" | "XX") {
            // Connection failures, resources (disk full, out of memory), operator
            // intervention (shutdown), system errors, missing database, internal errors.
            StoreError::Unavailable {
                reason: format!("{place} is unavailable ({detail})"),
            }
        } else if class == "42" && *code != SqlState::SYNTAX_ERROR {
            // Missing tables or columns, or no privilege on them.
            StoreError::Corrupt {
                reason: format!("{place} has unexpected tables or privileges ({detail})"),
            }
        } else {
            StoreError::Internal {
                reason: format!("{place}: {detail}"),
            }
        }
    }

    /// The deadline passed while waiting for the server.
    pub fn timed_out(&self, what: &str) -> StoreError {
        StoreError::Unavailable {
            reason: format!(
                "{} did not answer {what} within the timeout of {} ms",
                self.place(),
                self.timeout.as_millis()
            ),
        }
    }

    /// A [`StoreError::Corrupt`] about this database.
    pub fn corrupt(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            reason: self.scrub(format!("{}: {what}", self.place())),
        }
    }
}

/// `err` and its sources, joined: tokio-postgres puts the useful part (e.g. "Connection
/// refused") in the source.
/// Whether an error text is about the TLS handshake or certificate.
fn mentions_tls(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    ["tls", "ssl", "certificate"]
        .iter()
        .any(|word| lower.contains(word))
}

fn error_chain(err: &tokio_postgres::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrCtx {
        ErrCtx {
            endpoint: "db:5432".into(),
            dbname: "plexus".into(),
            timeout: Duration::from_millis(1500),
            secret: Some("s3cr3t-pw".into()),
            sslmode: SslMode::VerifyFull,
        }
    }

    #[test]
    fn scrub_removes_the_secret() {
        let scrubbed = ctx().scrub("password=s3cr3t-pw host=db".into());
        assert_eq!(scrubbed, "password=<redacted> host=db");
        let empty = ErrCtx {
            secret: Some(String::new()),
            ..ctx()
        };
        assert_eq!(empty.scrub("abc".into()), "abc");
    }

    #[test]
    fn timeouts_and_corruption_name_the_place() {
        let err = ctx().timed_out("the claim");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("db:5432") && msg.contains("1500 ms"), "{msg}");
        let err = ctx().corrupt("bad row with s3cr3t-pw");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
