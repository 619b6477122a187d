use super::*;

/// The safety net of expiry, for backends whose reads can go stale before commit: a
/// block marked emptied that holds an address is kept and its mark cleared.
#[tokio::test]
async fn expiry_keeps_an_emptied_block_that_holds_an_address() {
    let store = MemoryStore::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let stale = Block {
        network: "n".into(),
        range_set: "s".into(),
        base: ip("10.0.0.0"),
        prefix: 28,
        node: "a".into(),
        claimed_at: 0,
        emptied_at: Some(0),
        cursor: None,
    };
    let held = Allocation {
        network: "n".into(),
        container_id: "c".into(),
        ifname: "eth0".into(),
        ip: ip("10.0.0.5"),
        range_set: "s".into(),
        owner: Owner::default(),
        created_at: 0,
        node: None,
    };
    let policy = BlockPolicy::default();
    let released = store
        .write(async |txn| {
            assert!(txn.insert_block(&stale).await?);
            assert!(!txn.insert_block(&stale).await?, "second insert refused");
            txn.insert(&held).await?;
            engine::expire_blocks(txn, "n", &GcScope::all_nodes(), &policy, 10_000).await
        })
        .await
        .unwrap();
    assert!(released.is_empty());
    let kept = store.blocks("n").await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].emptied_at, None, "the stale mark is cleared");
}

#[tokio::test]
async fn a_failed_transaction_is_undone() {
    let store = MemoryStore::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let a = Allocation {
        network: "n".into(),
        container_id: "c".into(),
        ifname: "eth0".into(),
        ip: ip("10.0.0.5"),
        range_set: "s".into(),
        owner: Owner::default(),
        created_at: 0,
        node: None,
    };
    store.write(async |txn| txn.insert(&a).await).await.unwrap();
    let block = Block {
        network: "n".into(),
        range_set: "s".into(),
        base: ip("10.0.0.0"),
        prefix: 28,
        node: "a".into(),
        claimed_at: 0,
        emptied_at: None,
        cursor: None,
    };
    let err = store
        .write(async |txn| {
            txn.delete_attachment(&a.key()).await?;
            txn.set_cursor("n", "s", ip("10.0.0.9")).await?;
            txn.insert_block(&block).await?;
            Err::<(), _>(StoreError::Busy {
                reason: "test".into(),
            })
        })
        .await;
    assert!(err.is_err());
    assert_eq!(store.list("n").await.unwrap(), vec![a]);
    assert!(store.blocks("n").await.unwrap().is_empty());
    let cursor = store
        .write(async |txn| txn.cursor("n", "s").await)
        .await
        .unwrap();
    assert_eq!(cursor, None);
}

#[tokio::test]
async fn injected_failure_fails_every_call_until_cleared() {
    let store = MemoryStore::new();
    let busy = StoreError::Busy {
        reason: "test".into(),
    };
    store.set_failure(Some(busy.clone()));
    assert_eq!(store.probe().await, Err(busy.clone()));
    assert_eq!(store.list("n").await, Err(busy.clone()));
    let key = AttachmentKey::new("n", "c", "eth0");
    assert_eq!(store.release(&key).await, Err(busy));
    store.set_failure(None);
    assert_eq!(store.probe().await, Ok(()));
    assert_eq!(store.release(&key).await, Ok(Vec::new()));
}

/// GC marks a block whose addresses went without the release's bookkeeping.
#[tokio::test]
async fn gc_marks_a_block_left_empty_unmarked() {
    let store = MemoryStore::new();
    let forgotten = crate::conformance::unmarked_block_setup(&store).await;
    for key in &forgotten {
        store
            .write(async |txn| txn.delete_attachment(key).await)
            .await
            .unwrap();
    }
    crate::conformance::unmarked_block_check(&store, &forgotten).await;
}
