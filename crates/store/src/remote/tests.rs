//! The agent and [`RemoteStore`] together, over real Unix sockets: the conformance suite
//! through the agent (per check, and `run_all` on one agent), error variants across the hop, malformed input, fallback.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::frame;
use super::protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use super::*;
use crate::{SqliteConfig, Store, StoreConfig, StoreError};

/// An agent on its own thread and runtime (the client blocks its thread on the socket).
struct RunningAgent {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningAgent {
    fn start(socket: &Path) -> RunningAgent {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let path = socket.to_path_buf();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let agent = Agent::bind(&path, 2).unwrap();
                ready_tx.send(()).unwrap();
                agent
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        ready_rx.recv().unwrap();
        RunningAgent {
            socket: socket.to_path_buf(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sqlite(dir: &Path, name: &str) -> StoreConfig {
    StoreConfig::Sqlite(SqliteConfig::new(dir.join(name)))
}

fn raw_hello(socket: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let hello = serde_json::to_vec(&ClientMessage::Hello {
        version: PROTOCOL_VERSION,
    })
    .unwrap();
    frame::write_sync(&mut stream, &hello).unwrap();
    let answer: ServerMessage =
        serde_json::from_slice(&frame::read_sync(&mut stream).unwrap()).unwrap();
    assert!(matches!(answer, ServerMessage::Hello { .. }), "{answer:?}");
    stream
}

fn read_answer(stream: &mut UnixStream) -> ServerMessage {
    serde_json::from_slice(&frame::read_sync(stream).unwrap()).unwrap()
}

fn assert_closed(stream: &mut UnixStream) {
    let mut rest = Vec::new();
    // EOF (0 bytes) or a reset: either way the agent hung up.
    let n = stream.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "agent kept talking after a protocol error");
}

/// The conformance suite through the agent, one test per check: a private agent serving a
/// fresh SQLite file.
mod conformance {
    use super::{RemoteStore, RunningAgent, sqlite};
    use crate::conformance::list::conformance_tests;
    use crate::conformance::{Backend, Fresh};

    fn fresh(_check: &str) -> Option<Fresh> {
        let dir = tempfile::tempdir().unwrap();
        let agent = RunningAgent::start(&dir.path().join("run/agent.sock"));
        let store = RemoteStore::connect(&agent.socket, &sqlite(dir.path(), "c.db")).unwrap();
        Some(Fresh {
            stores: vec![Box::new(store)],
            // The agent stops before its directory goes.
            guard: Box::new((agent, dir)),
        })
    }

    const AGENT: Backend = Backend {
        name: "RemoteStore through the node agent",
        lacks: &[],
        fresh,
    };

    conformance_tests!(AGENT);
}

/// `run_all` through one agent: every call goes through it, and its stores stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(&dir.path().join("run/agent.sock"));
    let next = AtomicUsize::new(0);
    crate::conformance::run_all(|| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let cfg = sqlite(dir.path(), &format!("c{n}.db"));
        Box::new(RemoteStore::connect(&agent.socket, &cfg).unwrap()) as Box<dyn Store>
    })
    .await;
    let probe = RemoteStore::connect(&agent.socket, &sqlite(dir.path(), "x.db")).unwrap();
    let stats = probe.stats().unwrap();
    // Every store call went through the agent, and every store stayed open there.
    assert!(stats.calls["claim"] > 50, "{stats:?}");
    assert!(
        stats.calls["release"] > 0 && stats.calls["history"] > 0,
        "{stats:?}"
    );
    assert!(stats.stores_open >= 20, "{stats:?}");
    assert!(
        stats.errors > 0,
        "conformance provokes store errors: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_private_and_a_live_agent_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("new/agent.sock");
    let mut agent = RunningAgent::start(&socket);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    assert!(matches!(
        Agent::bind(&socket, 1),
        Err(AgentError::AlreadyRunning(_))
    ));
    agent.stop();
    assert!(!socket.exists(), "shutdown removes the socket");

    // A socket file nobody listens on is stale and replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let _agent = RunningAgent::start(&socket);
    let _ = raw_hello(&socket);

    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Agent::bind(&file, 1),
        Err(AgentError::NotASocket(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_refused_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(&dir.path().join("agent.sock"));
    let cfg = sqlite(dir.path(), "s.db");
    let store = RemoteStore::connect(&agent.socket, &cfg).unwrap();

    let mut bad_json = raw_hello(&agent.socket);
    frame::write_sync(&mut bad_json, b"{not json").unwrap();
    assert!(matches!(
        read_answer(&mut bad_json),
        ServerMessage::ProtocolError { .. }
    ));
    assert_closed(&mut bad_json);

    let mut oversized = raw_hello(&agent.socket);
    oversized.write_all(&u32::MAX.to_be_bytes()).unwrap();
    match read_answer(&mut oversized) {
        ServerMessage::ProtocolError { reason } => assert!(reason.contains("exceeds"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_closed(&mut oversized);

    let mut no_hello = UnixStream::connect(&agent.socket).unwrap();
    frame::write_sync(&mut no_hello, br#"{"type":"stats"}"#).unwrap();
    assert!(matches!(
        read_answer(&mut no_hello),
        ServerMessage::ProtocolError { .. }
    ));

    // The connection opened before the garbage still works, and so does a new one.
    store.probe().await.unwrap();
    let again = RemoteStore::connect(&agent.socket, &cfg).unwrap();
    again.probe().await.unwrap();
    assert_eq!(again.stats().unwrap().protocol_errors, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_protocol_version_is_incompatible_and_open_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(&dir.path().join("agent.sock"));
    let mut stream = UnixStream::connect(&agent.socket).unwrap();
    let hello = serde_json::to_vec(&ClientMessage::Hello {
        version: PROTOCOL_VERSION + 1,
    })
    .unwrap();
    frame::write_sync(&mut stream, &hello).unwrap();
    assert!(matches!(
        read_answer(&mut stream),
        ServerMessage::ProtocolError { .. }
    ));

    // No agent at all: open_with_agent opens the store directly.
    let cfg = sqlite(dir.path(), "d.db");
    let missing = AgentSetting::Socket(dir.path().join("none.sock"));
    assert!(RemoteStore::connect(&dir.path().join("none.sock"), &cfg).is_err());
    let store = open_with_agent(&cfg, &missing).await.unwrap();
    store.probe().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_keep_their_variant_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(&dir.path().join("agent.sock"));
    // A SQLite path whose directory cannot be created: the store is unavailable.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let cfg = sqlite(dir.path(), "file/sub/x.db");
    let direct = crate::open(&cfg)
        .await
        .err()
        .expect("direct open must fail");
    let remote = RemoteStore::connect(&agent.socket, &cfg).unwrap();
    let through_agent = remote.probe().await.unwrap_err();
    assert_eq!(through_agent, direct);
    assert!(matches!(through_agent, StoreError::Unavailable { .. }));
}

/// A fake agent that greets, reads one request and hangs up without answering.
fn dying_agent(socket: &Path) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            let _hello = frame::read_sync(&mut stream).unwrap();
            let hello = serde_json::to_vec(&ServerMessage::Hello {
                version: PROTOCOL_VERSION,
                agent: "dying".into(),
            })
            .unwrap();
            frame::write_sync(&mut stream, &hello).unwrap();
            let _request = frame::read_sync(&mut stream).unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dying_mid_call_repeats_only_idempotent_calls_directly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dying.sock");
    let fake = dying_agent(&socket);
    let cfg = sqlite(dir.path(), "f.db");

    // Claims are idempotent per attachment: repeated directly, they allocate once.
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    let (key, set, ctx) = small_claim("c1");
    let claims = [crate::Claim::Dynamic(&set)];
    let first = remote
        .claim(&key, &crate::Owner::default(), &claims, &ctx)
        .await
        .unwrap();
    let direct = crate::open(&cfg).await.unwrap();
    assert_eq!(direct.attachment(&key).await.unwrap(), first);

    // Recording history is not idempotent: the unknown outcome is reported, not repeated.
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    let err = remote.record_history(&[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    fake.join().unwrap();
}

/// A claim of attachment `container` on a small dynamic range (no blocks): the arguments
/// of [`Store::claim`] the fallback tests send.
fn small_claim(
    container: &str,
) -> (
    crate::AttachmentKey,
    plexus_ipam_core::range::RangeSet,
    crate::ClaimContext,
) {
    let range = plexus_ipam_core::range::Range::new(
        "10.9.0.0/29".parse().unwrap(),
        None,
        None,
        None,
        Vec::new(),
    )
    .unwrap();
    (
        crate::AttachmentKey::new("n", container, "eth0"),
        plexus_ipam_core::range::RangeSet::new(vec![range]).unwrap(),
        crate::ClaimContext::new("node", crate::BlockPolicy::disabled()),
    )
}

/// A fake agent that accepts `connections` connections and, on each, reads until the
/// client's hello is complete, and answers with `answer` to the frames read so far: the
/// client writes its hello and a pipelined request in one write, so the request is there
/// with the hello exactly when the client sent it so (the test sees which).
fn one_read_agent(
    socket: &Path,
    connections: usize,
    answer: fn(&[Vec<u8>]) -> Vec<ServerMessage>,
) -> std::thread::JoinHandle<Vec<usize>> {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let mut frames_per_read = Vec::new();
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            let frames = loop {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "the client hung up before its hello was complete");
                received.extend_from_slice(&chunk[..n]);
                let mut rest = &received[..];
                let mut frames = Vec::new();
                while let Some((payload, used)) = frame::decode(rest).unwrap() {
                    frames.push(payload.to_vec());
                    rest = &rest[used..];
                }
                if !frames.is_empty() {
                    break frames;
                }
            };
            frames_per_read.push(frames.len());
            for message in answer(&frames) {
                frame::write_sync(&mut stream, &serde_json::to_vec(&message).unwrap()).unwrap();
            }
        }
        frames_per_read
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_travels_with_the_first_idempotent_call_only() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("one-read.sock");
    let fake = one_read_agent(&socket, 2, |frames| {
        let hello: ClientMessage = serde_json::from_slice(&frames[0]).unwrap();
        assert!(matches!(hello, ClientMessage::Hello { .. }), "{hello:?}");
        let mut answers = vec![ServerMessage::Hello {
            version: PROTOCOL_VERSION,
            agent: "fake".into(),
        }];
        if frames.len() == 2 {
            answers.push(ServerMessage::Result {
                value: serde_json::json!(null),
            });
        }
        answers
    });
    let cfg = sqlite(dir.path(), "p.db");
    // A probe may run twice: its hello and call go out in one write, one round trip.
    RemoteStore::connect(&socket, &cfg)
        .unwrap()
        .probe()
        .await
        .unwrap();
    // Recording history may not: the hello is answered before the call is sent.
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    let err = remote.record_history(&[]).await.unwrap_err();
    // (The fake hangs up after the hello: the outcome of the call is unknown.)
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(fake.join().unwrap(), vec![2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_refuses_or_ignores_the_hello_means_direct_store_access() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sqlite(dir.path(), "r.db");
    let direct = crate::open(&cfg).await.unwrap();
    let (key, set, ctx) = small_claim("c1");
    let claims = [crate::Claim::Dynamic(&set)];

    // Refused (another protocol version): the pipelined claim was never run by the agent
    // and runs directly; a call that may not run twice is also safe to run directly.
    let socket = dir.path().join("refusing.sock");
    let refusing = one_read_agent(&socket, 2, |_| {
        vec![ServerMessage::ProtocolError {
            reason: "unsupported protocol version".into(),
        }]
    });
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    let got = remote
        .claim(&key, &crate::Owner::default(), &claims, &ctx)
        .await
        .unwrap();
    assert_eq!(direct.attachment(&key).await.unwrap(), got);
    // Later calls on the same store go direct without asking the agent again.
    assert_eq!(remote.attachment(&key).await.unwrap(), got);
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    remote.record_history(&[]).await.unwrap();
    assert_eq!(refusing.join().unwrap(), vec![2, 1]);

    // Silent (wedged): after CONNECT_TIMEOUT the call runs directly.
    let socket = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let remote = RemoteStore::connect(&socket, &cfg).unwrap();
    let started = std::time::Instant::now();
    let (key, _, _) = small_claim("c2");
    let got = remote
        .claim(&key, &crate::Owner::default(), &claims, &ctx)
        .await
        .unwrap();
    assert_eq!(direct.attachment(&key).await.unwrap(), got);
    let waited = started.elapsed();
    assert!(
        waited >= CONNECT_TIMEOUT && waited < CONNECT_TIMEOUT * 10,
        "{waited:?}"
    );
    drop(listener);
}
