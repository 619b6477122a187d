//! Turning rusqlite errors into [`StoreError`]s that name the database file.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use crate::error::StoreError;

/// What an error message needs to say where and how long: one per database operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrCtx<'a> {
    /// The database file.
    pub path: &'a Path,
    /// The configured busy timeout.
    pub busy_timeout: Duration,
    /// When the operation started, to tell "waited the whole busy timeout" from a quick
    /// refusal.
    pub started: Instant,
}

impl<'a> ErrCtx<'a> {
    /// Context for an operation starting now.
    pub fn start(path: &'a Path, busy_timeout: Duration) -> Self {
        ErrCtx {
            path,
            busy_timeout,
            started: Instant::now(),
        }
    }

    /// Classifies `err`.
    pub fn map(&self, err: rusqlite::Error) -> StoreError {
        let path = self.path.display();
        let (code, detail) = match &err {
            rusqlite::Error::SqliteFailure(ffi_err, message) => (
                ffi_err.code,
                message.clone().unwrap_or_else(|| ffi_err.to_string()),
            ),
            // A row whose values do not fit the schema's meaning (e.g. edited by hand).
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                return self.corrupt(format!("unexpected stored value: {err}"));
            }
            other => {
                return StoreError::Internal {
                    reason: format!("database {path}: {other}"),
                };
            }
        };
        match code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => self.busy(&detail),
            ErrorCode::ReadOnly => StoreError::Unavailable {
                reason: format!("database {path} is read-only ({detail})"),
            },
            ErrorCode::DiskFull => StoreError::Unavailable {
                reason: format!("disk full while writing database {path} ({detail})"),
            },
            ErrorCode::CannotOpen => StoreError::Unavailable {
                reason: format!("cannot open database {path} ({detail})"),
            },
            ErrorCode::SystemIoFailure => StoreError::Unavailable {
                reason: format!("I/O error on database {path} ({detail})"),
            },
            ErrorCode::PermissionDenied => StoreError::Unavailable {
                reason: format!("permission denied on database {path} ({detail})"),
            },
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt {
                reason: format!("database {path} is damaged or not a SQLite database ({detail})"),
            },
            _ => StoreError::Internal {
                reason: format!("database {path}: {detail}"),
            },
        }
    }

    /// A lock conflict: [`StoreError::Unavailable`] once the whole busy timeout was spent
    /// waiting, [`StoreError::Busy`] when SQLite refused early (nothing to wait for yet).
    fn busy(&self, detail: &str) -> StoreError {
        let path = self.path.display();
        let waited = self.started.elapsed();
        if !self.busy_timeout.is_zero() && waited >= self.busy_timeout {
            StoreError::Unavailable {
                reason: format!(
                    "database {path} stayed locked by another process for longer than the \
                     busy timeout of {} ms ({detail})",
                    self.busy_timeout.as_millis()
                ),
            }
        } else {
            StoreError::Busy {
                reason: format!("database {path} is locked by another process ({detail})"),
            }
        }
    }

    /// A [`StoreError::Unavailable`] for a filesystem error while preparing the file.
    pub fn io(&self, what: &str, target: &Path, err: &std::io::Error) -> StoreError {
        StoreError::Unavailable {
            reason: format!("cannot {what} {}: {err}", target.display()),
        }
    }

    /// A [`StoreError::Corrupt`] about this database.
    pub fn corrupt(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            reason: format!("database {}: {what}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    fn ctx(timeout_ms: u64, started_ago_ms: u64) -> ErrCtx<'static> {
        let now = Instant::now();
        ErrCtx {
            path: Path::new("/var/lib/plexus/test.db"),
            busy_timeout: Duration::from_millis(timeout_ms),
            started: now
                .checked_sub(Duration::from_millis(started_ago_ms))
                .unwrap_or(now),
        }
    }

    #[test]
    fn read_only_disk_full_cantopen_ioerr_are_unavailable_and_name_the_path() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_READONLY,
            ffi::SQLITE_FULL,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_PERM,
        ] {
            let err = ctx(1000, 0).map(failure(code));
            assert!(
                matches!(err, StoreError::Unavailable { .. }),
                "{code}: {err:?}"
            );
            assert!(err.to_string().contains("/var/lib/plexus/test.db"), "{err}");
        }
    }

    #[test]
    fn busy_before_the_timeout_is_transient_after_it_unavailable() {
        let early = ctx(10_000, 0).map(failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(early.is_transient(), "{early:?}");
        let late = ctx(50, 60).map(failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(matches!(late, StoreError::Unavailable { .. }), "{late:?}");
        assert!(late.to_string().contains("50 ms"), "{late}");
        let no_wait = ctx(0, 60).map(failure(rusqlite::ffi::SQLITE_LOCKED));
        assert!(no_wait.is_transient(), "{no_wait:?}");
    }

    #[test]
    fn damaged_files_are_corrupt_and_others_internal() {
        let err = ctx(0, 0).map(failure(rusqlite::ffi::SQLITE_NOTADB));
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let err = ctx(0, 0).map(failure(rusqlite::ffi::SQLITE_MISMATCH));
        assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
        let err = ctx(0, 0).map(rusqlite::Error::QueryReturnedNoRows);
        assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
        let bad_value =
            rusqlite::Error::InvalidColumnType(8, "created_at".into(), rusqlite::types::Type::Text);
        let err = ctx(0, 0).map(bad_value);
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}
