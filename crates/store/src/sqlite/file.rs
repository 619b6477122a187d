//! The database file before SQLite opens it: created private (0600, its directory 0700)
//! when a write may create the store, or required to exist when it may not.
//!
//! Every refusal names the path and says what is there instead (nothing, a directory, an
//! empty file), so a mistyped `--store` or `store.path` is never answered from a new, empty
//! database.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::errors::ErrCtx;
use crate::error::StoreError;

/// The field named by the refusals here: the store's location, whichever way it was given
/// (`ipam.store.path`, `store.path`, `plexusctl --store`).
const FIELD: &str = "store";

/// What creates a store, for the "does not exist" message.
const WHO_CREATES: &str = "nothing was created: only writes create a store (plexusctl network \
                           create|apply, plexusctl import, or a plugin ADD with its own ranges)";

/// Creates the parent directory (0700) and the database file (0600) when missing, so
/// SQLite never creates the file with the process umask. A directory where the file should
/// be is refused as such.
pub(super) fn create_private_file(path: &Path, ctx: &ErrCtx<'_>) -> Result<(), StoreError> {
    if path.is_dir() {
        return Err(is_a_directory(path));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| ctx.io("create directory", parent, &e))?;
        refuse_world_writable(parent, ctx)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(ctx.io("create database file", path, &e)),
    }
}

/// Refuses anything but an existing, non-empty regular file at `path`, touching nothing.
pub(crate) fn check_existing(path: &Path) -> Result<(), StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty() && !p.exists())
                .map(|p| format!(" (nor does its directory {})", p.display()))
                .unwrap_or_default();
            return Err(StoreError::config(
                FIELD,
                format!(
                    "database {} does not exist{parent}; {WHO_CREATES}",
                    path.display()
                ),
            ));
        }
        Err(e) => {
            return Err(StoreError::Unavailable {
                reason: format!("cannot inspect database {}: {e}", path.display()),
            });
        }
    };
    if meta.is_dir() {
        return Err(is_a_directory(path));
    }
    if !meta.is_file() {
        return Err(StoreError::config(
            FIELD,
            format!(
                "{} is not a regular file, so not a database",
                path.display()
            ),
        ));
    }
    if meta.len() == 0 {
        return Err(StoreError::config(
            FIELD,
            format!(
                "database {} is an empty file, not a plexus store; {WHO_CREATES}",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn is_a_directory(path: &Path) -> StoreError {
    StoreError::config(
        FIELD,
        format!(
            "{} is a directory, not a database file (name the file, e.g. {})",
            path.display(),
            path.join("plexus.db").display()
        ),
    )
}

/// Refuses a database directory every user may write to (`/tmp`, a 0777 mount): anyone could
/// pre-create the database (or its `-wal`) and then read or forge every allocation, or swap
/// the file between two calls. The sticky bit does not help against pre-creation.
fn refuse_world_writable(dir: &Path, ctx: &ErrCtx<'_>) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir).map_err(|e| ctx.io("inspect directory", dir, &e))?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(StoreError::config(
            "ipam.store.path",
            format!(
                "the database directory {} is world-writable (mode {:o}): any user could \
                 replace or pre-create the database; use a root-owned directory such as \
                 /var/lib/plexus (created 0700 when missing)",
                dir.display(),
                mode & 0o7777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reason(err: StoreError) -> String {
        match err {
            StoreError::Config { field, reason } => {
                assert_eq!(field, FIELD);
                reason
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = walk(dir);
        names.sort();
        names
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.display().to_string());
            if path.is_dir() {
                out.extend(walk(&path));
            }
        }
        out
    }

    #[test]
    fn a_missing_file_or_directory_is_refused_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("other"), "x").unwrap();
        let before = listing(dir.path());
        let missing = dir.path().join("p.db");
        let text = reason(check_existing(&missing).unwrap_err());
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        let deeper = dir.path().join("sub/p.db");
        let text = reason(check_existing(&deeper).unwrap_err());
        assert!(text.contains("nor does its directory"), "{text}");
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn directories_and_empty_files_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let text = reason(check_existing(dir.path()).unwrap_err());
        assert!(text.contains("is a directory"), "{text}");
        let ctx = ErrCtx::start(dir.path(), Duration::ZERO);
        let text = reason(create_private_file(dir.path(), &ctx).unwrap_err());
        assert!(text.contains("is a directory"), "{text}");
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").unwrap();
        let text = reason(check_existing(&empty).unwrap_err());
        assert!(text.contains("empty file"), "{text}");
        std::fs::write(&empty, "SQLite format 3\0").unwrap();
        check_existing(&empty).unwrap();
    }
}
