//! Network namespaces without ever switching a tokio worker: a short-lived OS thread enters
//! the target netns (`setns`), opens the netlink socket there (or does the one job that must
//! run inside, like writing `/proc/sys/net`), and exits. A socket stays bound to the netns it
//! was created in, so the cached connection is then used from any task (netavark's trick).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::stat;
use rtnetlink::Handle;
use tokio::task::AbortHandle;

use crate::error::{ErrorContext, ErrorKind, Result, errno_detail};
use crate::types::Netns;

/// Identity of a namespace: device and inode of its nsfs file. Two paths to the same netns
/// share it, and a path re-used for a new netns gets a new one.
type NsKey = (u64, u64);

/// The path that names the calling thread's own netns.
const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// A netlink connection opened inside one netns; its reader task dies with it.
struct Connection {
    handle: Handle,
    task: AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens and caches one netlink connection per namespace.
pub(crate) struct Namespaces {
    host: File,
    host_key: NsKey,
    connections: Mutex<HashMap<NsKey, Connection>>,
}

fn ns_key(path: &Path) -> std::result::Result<NsKey, Errno> {
    let st = stat(path)?;
    Ok((st.st_dev, st.st_ino))
}

fn setns_failure(ctx: &ErrorContext, errno: Errno) -> crate::Error {
    match errno {
        // A path that exists but is not (any more) a namespace: as good as gone.
        Errno::EINVAL => ctx.error(
            ErrorKind::NotFound,
            format!("not a network namespace file ({})", errno_detail(errno)),
        ),
        other => ctx
            .errno(other)
            .with_hint("entering the netns needs CAP_SYS_ADMIN"),
    }
}

impl Namespaces {
    /// Pins the calling thread's netns as [`Netns::Host`].
    pub(crate) fn new() -> std::io::Result<Namespaces> {
        let host = File::open(THREAD_SELF_NETNS)?;
        let host_key = ns_key(Path::new(THREAD_SELF_NETNS)).map_err(std::io::Error::from)?;
        Ok(Namespaces {
            host,
            host_key,
            connections: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, ctx: &ErrorContext, netns: &Netns) -> Result<NsKey> {
        match netns {
            Netns::Host => Ok(self.host_key),
            Netns::Path(path) => ns_key(path).map_err(|errno| {
                ctx.errno(errno)
                    .with_hint("the netns file is missing or unreadable")
            }),
        }
    }

    fn open(&self, ctx: &ErrorContext, netns: &Netns) -> Result<File> {
        let opened = match netns {
            Netns::Host => self.host.try_clone(),
            Netns::Path(path) => File::open(path),
        };
        opened.map_err(|e| {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32));
            ctx.errno(errno)
        })
    }

    /// An open file of `netns`, for `IFLA_NET_NS_FD` (moving a link there).
    pub(crate) fn file(&self, ctx: &ErrorContext, netns: &Netns) -> Result<File> {
        self.open(ctx, netns)
    }

    /// The netlink handle of `netns`, opening the connection on first use.
    pub(crate) async fn handle(&self, ctx: &ErrorContext, netns: &Netns) -> Result<Handle> {
        let key = self.key(ctx, netns)?;
        if let Some(conn) = self.lock().get(&key) {
            return Ok(conn.handle.clone());
        }
        let file = self.open(ctx, netns)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ctx.error(ErrorKind::Other, format!("no tokio runtime: {e}")))?;
        let opened = run_on_netns_thread(ctx, file, move || {
            let _entered = runtime.enter();
            let (mut conn, handle, _unsolicited) = rtnetlink::new_connection()?;
            // Dumps need the final NLMSG_DONE: it may carry NLM_F_DUMP_INTR.
            conn.set_forward_done(true);
            let task = runtime.spawn(conn).abort_handle();
            Ok::<_, std::io::Error>(Connection { handle, task })
        })
        .await?
        .map_err(|e| ctx.error(ErrorKind::Other, format!("cannot open netlink socket: {e}")))?;
        let mut connections = self.lock();
        // Another task may have raced us here; keep the first connection.
        let conn = connections.entry(key).or_insert(opened);
        Ok(conn.handle.clone())
    }

    /// Runs `job` on a fresh OS thread that has entered `netns`.
    pub(crate) async fn run<T, F>(&self, ctx: &ErrorContext, netns: &Netns, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let file = self.open(ctx, netns)?;
        run_on_netns_thread(ctx, file, job).await
    }

    /// Drops the cached connection of `netns` (so the netns can be freed once the runtime
    /// removes it). Long-running users call this when a pod is gone.
    pub(crate) fn forget(&self, netns: &Netns) {
        let key = match netns {
            Netns::Host => Some(self.host_key),
            Netns::Path(path) => ns_key(path).ok(),
        };
        if let Some(key) = key {
            self.lock().remove(&key);
        }
    }

    /// Number of namespaces with an open connection.
    pub(crate) fn open_connections(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NsKey, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Spawns a thread, enters the netns of `file`, runs `job`, and lets the thread die so the
/// namespace switch can never leak into other work.
async fn run_on_netns_thread<T, F>(ctx: &ErrorContext, file: File, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("plexus-netns".into())
        .spawn(move || {
            let outcome = setns(&file, CloneFlags::CLONE_NEWNET).map(|()| job());
            // The receiver only disappears when the caller was cancelled.
            let _ = tx.send(outcome);
        })
        .map_err(|e| ctx.error(ErrorKind::Other, format!("cannot spawn netns thread: {e}")))?;
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(errno)) => Err(setns_failure(ctx, errno)),
        Err(_) => Err(ctx.error(ErrorKind::Other, "netns thread died")),
    }
}
