//! Error classification, secret handling and the retry deadline.

use std::io::Write;

use super::*;

fn connector_with_password(password: &str) -> Connector {
    let mut cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()]);
    cfg.username = Some("plexus".into());
    cfg.password = Some(Secret::new(password));
    Connector::new(&cfg).unwrap()
}

fn temp_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

#[test]
fn status_codes_are_classified() {
    let conn = connector_with_password("pw-123456");
    let class = |code, message: &str| classify_status(code, message.into(), "E", &conn);
    assert!(matches!(
        class(OUT_OF_RANGE, "mvcc: required revision has been compacted"),
        Failure::Conflict(_)
    ));
    for code in [UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN, ABORTED] {
        assert!(
            matches!(
                class(code, "etcdserver: leader changed"),
                Failure::Transient(_)
            ),
            "{code}"
        );
    }
    let auth = class(
        INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    );
    let Failure::Fatal(StoreError::Unavailable { reason }) = auth else {
        panic!("{auth:?}")
    };
    assert!(reason.contains("credentials of user plexus"), "{reason}");
    assert!(matches!(
        class(PERMISSION_DENIED, "etcdserver: permission denied"),
        Failure::Fatal(StoreError::Unavailable { .. })
    ));
    assert!(matches!(
        class(
            RESOURCE_EXHAUSTED,
            "etcdserver: mvcc: database space exceeded"
        ),
        Failure::Fatal(StoreError::Unavailable { .. })
    ));
    assert!(matches!(
        class(UNAVAILABLE, "invalid peer certificate: UnknownIssuer"),
        Failure::Fatal(StoreError::Unavailable { .. })
    ));
    assert!(matches!(
        class(RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
        Failure::Transient(_)
    ));
    assert!(matches!(
        class(
            INVALID_ARGUMENT,
            "etcdserver: too many operations in txn request"
        ),
        Failure::Fatal(StoreError::Internal { .. })
    ));
}

#[test]
fn scrub_removes_the_password() {
    let conn = connector_with_password("pw-123456");
    let scrubbed = conn.scrub("server said pw-123456 twice: pw-123456".into());
    assert_eq!(scrubbed, "server said <redacted> twice: <redacted>");
    let shown = format!("{conn:?}");
    assert!(!shown.contains("pw-123456"), "{shown}");
}

#[test]
fn password_file_drops_one_trailing_newline() {
    for (contents, expected) in [
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        ("pw", "pw"),
        ("pw \n\n", "pw \n"),
    ] {
        let file = temp_file(contents);
        assert_eq!(read_password(file.path()).unwrap().expose(), expected);
    }
    let empty = temp_file("\n");
    let err = read_password(empty.path()).unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    let missing = read_password(Path::new("/nonexistent/plexus-pw")).unwrap_err();
    let StoreError::Unavailable { reason } = missing else {
        panic!("{missing:?}")
    };
    assert!(reason.contains("/nonexistent/plexus-pw"), "{reason}");
}

#[test]
fn password_file_wins_and_is_never_shown() {
    let file = temp_file("from-the-file-42\n");
    let mut cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()]);
    cfg.username = Some("plexus".into());
    cfg.password_file = Some(file.path().to_path_buf());
    let conn = Connector::new(&cfg).unwrap();
    assert_eq!(
        conn.password.as_ref().map(Secret::expose),
        Some("from-the-file-42")
    );
    assert!(!format!("{conn:?} {cfg:?}").contains("from-the-file-42"));
}

#[test]
fn pem_files_are_checked() {
    let not_pem = temp_file("hello");
    let err = read_pem("ca_file", not_pem.path(), "CERTIFICATE-----").unwrap_err();
    let StoreError::Config { field, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(field, "ipam.store.ca_file");
    let pem = temp_file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(read_pem("ca_file", pem.path(), "CERTIFICATE-----").is_ok());
    let key = temp_file("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
    assert!(read_pem("key_file", key.path(), "PRIVATE KEY-----").is_ok());
    assert!(read_pem("key_file", pem.path(), "PRIVATE KEY-----").is_err());
}

#[tokio::test]
async fn conflicts_past_the_deadline_are_busy() {
    let mut attempts = Attempts::new(Duration::from_millis(60));
    let started = Instant::now();
    let err = loop {
        if let Err(err) = attempts
            .retry_after(Failure::Conflict("compare failed".into()), "E")
            .await
        {
            break err;
        }
    };
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(err.is_transient());
    // Never sleeps past the deadline; the slack is for a loaded machine's scheduler.
    assert!(
        started.elapsed() < Duration::from_millis(60 + 1000),
        "gave up at the deadline"
    );
    assert!(attempts.backoff.failures() > 2, "retried before giving up");
}

#[tokio::test]
async fn transient_failures_past_the_deadline_are_unavailable() {
    let mut attempts = Attempts::new(Duration::from_millis(30));
    let err = loop {
        if let Err(err) = attempts
            .retry_after(
                Failure::Transient("connection refused".into()),
                "http://x:1",
            )
            .await
        {
            break err;
        }
    };
    let StoreError::Unavailable { reason } = err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("http://x:1") && reason.contains("connection refused"),
        "{reason}"
    );
}

#[tokio::test]
async fn fatal_failures_end_the_call_at_once() {
    let mut attempts = Attempts::new(Duration::from_secs(10));
    let err = attempts
        .retry_after(
            Failure::Fatal(StoreError::Internal { reason: "x".into() }),
            "E",
        )
        .await;
    assert_eq!(err, Err(StoreError::Internal { reason: "x".into() }));
}

#[tokio::test]
async fn bounded_cuts_a_hanging_step_at_the_deadline() {
    let attempts = Attempts::new(Duration::from_millis(20));
    let started = Instant::now();
    let result: Result<(), Failure> = attempts.bounded(std::future::pending()).await;
    assert!(matches!(result, Err(Failure::Transient(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}
