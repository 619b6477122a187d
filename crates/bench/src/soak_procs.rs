//! Finding the store server processes of `scripts/with-servers` and reading their memory
//! and descriptors from `/proc`, for `plexus-bench soak`.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Memory and descriptors of a set of processes at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Sum of VmRSS.
    pub rss_bytes: u64,
    /// Sum of open descriptors.
    pub fds: u64,
    /// How many of the processes were still alive.
    pub processes: u64,
}

/// The long-lived server processes of `backend`, found at the start: for PostgreSQL the
/// postmaster listening on `PLEXUS_TEST_PG_PORT` and its children at that moment (the
/// checkpointer, writers, launchers; a call's own backend is too short-lived to matter),
/// for etcd the member serving `PLEXUS_TEST_ETCD_ENDPOINTS`. Empty for SQLite.
pub fn server_pids(backend: &str) -> anyhow::Result<Vec<u32>> {
    let processes = all_processes();
    match backend {
        "postgres" => {
            let port = std::env::var("PLEXUS_TEST_PG_PORT").context("PLEXUS_TEST_PG_PORT")?;
            let postmaster = processes
                .iter()
                .find(|(_, _, argv)| {
                    is_program(argv, "postgres")
                        && argv.windows(2).any(|w| w[0] == "-p" && w[1] == port)
                })
                .map(|(pid, _, _)| *pid)
                .with_context(|| format!("no postgres process with -p {port}"))?;
            let mut pids = vec![postmaster];
            pids.extend(
                processes
                    .iter()
                    .filter(|(_, ppid, _)| *ppid == postmaster)
                    .map(|(pid, _, _)| *pid),
            );
            Ok(pids)
        }
        "etcd" => {
            let endpoint = std::env::var("PLEXUS_TEST_ETCD_ENDPOINTS")
                .context("PLEXUS_TEST_ETCD_ENDPOINTS")?;
            let first = endpoint
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            processes
                .iter()
                .find(|(_, _, argv)| {
                    is_program(argv, "etcd") && argv.iter().any(|a| a.contains(&first))
                })
                .map(|(pid, _, _)| vec![*pid])
                .with_context(|| format!("no etcd process serving {first}"))
        }
        _ => Ok(Vec::new()),
    }
}

/// The bolt database file of the etcd member `pid` (`<data-dir>/member/snap/db`), from its
/// command line; `None` when it has no `--data-dir`.
pub fn etcd_db_file(pid: u32) -> Option<PathBuf> {
    data_dir_of(&argv_of(pid)?).map(|dir| dir.join("member/snap/db"))
}

/// The command line of `pid`, one string per argument.
fn argv_of(pid: u32) -> Option<Vec<String>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// The value of `--data-dir` (two arguments, or one with `=`).
fn data_dir_of(argv: &[String]) -> Option<PathBuf> {
    argv.iter()
        .enumerate()
        .find_map(|(i, arg)| match arg.strip_prefix("--data-dir") {
            Some("") => argv.get(i + 1).map(PathBuf::from),
            Some(rest) => rest.strip_prefix('=').map(PathBuf::from),
            None => None,
        })
}

fn is_program(argv: &[String], name: &str) -> bool {
    argv.first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|f| f == name)
}

/// Every process: (pid, parent pid, argv).
fn all_processes() -> Vec<(u32, u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?, argv_of(pid)?)))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// RSS and descriptors of those of `pids` still alive.
pub fn usage_of(pids: &[u32]) -> ProcSample {
    let mut sample = ProcSample {
        rss_bytes: 0,
        fds: 0,
        processes: 0,
    };
    for pid in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        sample.rss_bytes += rss_kib * 1024;
        sample.fds += fds;
        sample.processes += 1;
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_data_dir_in_either_spelling() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            data_dir_of(&argv(
                "etcd --name a --data-dir /tmp/x/etcd --listen-client-urls u"
            )),
            Some(PathBuf::from("/tmp/x/etcd"))
        );
        assert_eq!(
            data_dir_of(&argv("etcd --data-dir=/d")),
            Some(PathBuf::from("/d"))
        );
        assert_eq!(data_dir_of(&argv("etcd --data-dir")), None);
        assert_eq!(data_dir_of(&argv("etcd --data-directory=/d")), None);
    }

    #[test]
    fn this_process_is_measured() {
        let me = std::process::id();
        let sample = usage_of(&[me, u32::MAX]);
        assert_eq!(sample.processes, 1);
        assert!(sample.rss_bytes > 0 && sample.fds >= 3, "{sample:?}");
        let found = all_processes();
        assert!(
            found
                .iter()
                .any(|(pid, _, argv)| *pid == me && !argv.is_empty())
        );
    }

    #[test]
    fn sqlite_has_no_server() {
        assert!(server_pids("sqlite").unwrap().is_empty());
    }
}
