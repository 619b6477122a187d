//! [`ForeignEtcd`]: keys another program keeps in the same etcd, outside the plexus prefix.
//!
//! `plexusctl import --from whereabouts-etcd` reads the ranges whereabouts ≤ 0.5.4 stored
//! (`/whereabouts/<range>`) and, once their addresses are held in plexus, moves each key
//! aside in one compare-and-swap on its revision, so a range whereabouts wrote again in
//! the meantime is never retired unread. Nothing here touches the plexus prefix or its
//! layout key.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::config::EtcdConfig;
use super::conn::{Attempts, Connector, Failure};
use crate::error::StoreError;
use crate::io_thread::Executor;

/// A client for keys outside the plexus prefix.
#[derive(Debug)]
pub struct ForeignEtcd {
    conn: Arc<Connector>,
    timeout: Duration,
    executor: Executor,
}

/// One key as read: its value and the revision that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignValue {
    /// The value.
    pub value: Vec<u8>,
    /// The key's `mod_revision`, which [`ForeignEtcd::retire`] compares.
    pub mod_revision: i64,
}

impl ForeignEtcd {
    /// Prepares a client for `cfg` (its prefix is not used). Makes no network call.
    pub fn open(cfg: &EtcdConfig) -> Result<ForeignEtcd, StoreError> {
        Ok(ForeignEtcd {
            conn: Arc::new(Connector::new(cfg)?),
            timeout: cfg.timeout,
            executor: Executor::start("etcd")?,
        })
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<ForeignValue>, StoreError> {
        let key = key.to_string();
        self.run(move |conn| {
            let key = key.clone();
            async move {
                let mut kv = conn.connect().await?.kv_client();
                let mut response = kv
                    .get(key.as_str(), None)
                    .await
                    .map_err(|e| conn.classify(e))?;
                Ok(response.take_kvs().into_iter().next().map(|kv| {
                    let mod_revision = kv.mod_revision();
                    ForeignValue {
                        value: kv.into_key_value().1,
                        mod_revision,
                    }
                }))
            }
        })
        .await
    }

    /// Moves `key` to `to` in one transaction that commits only while `key` is still as
    /// `seen` read it (same `mod_revision`): `to` gets that value, `key` is deleted.
    /// Returns whether it moved; `false` means it changed or vanished since.
    pub async fn retire(
        &self,
        key: &str,
        seen: &ForeignValue,
        to: &str,
    ) -> Result<bool, StoreError> {
        let (key, to, seen) = (key.to_string(), to.to_string(), seen.clone());
        self.run(move |conn| {
            let (key, to, seen) = (key.clone(), to.clone(), seen.clone());
            async move {
                let mut kv = conn.connect().await?.kv_client();
                let txn = Txn::new()
                    .when(vec![Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        seen.mod_revision,
                    )])
                    .and_then(vec![
                        TxnOp::put(to.as_str(), seen.value, None),
                        TxnOp::delete(key.as_str(), None),
                    ]);
                let response = kv.txn(txn).await.map_err(|e| conn.classify(e))?;
                Ok(response.succeeded())
            }
        })
        .await
    }

    /// Runs one attempt after another of `attempt` on the I/O thread until it succeeds,
    /// fails for good, or the deadline passes.
    async fn run<T, F>(
        &self,
        attempt: impl Fn(Arc<Connector>) -> F + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Failure>> + Send,
    {
        let (conn, timeout) = (self.conn.clone(), self.timeout);
        self.executor
            .run(async move {
                let mut attempts = Attempts::new(timeout);
                loop {
                    match attempts.bounded(attempt(conn.clone())).await {
                        Ok(value) => return Ok(value),
                        Err(failure) => attempts.retry_after(failure, &conn.endpoints()).await?,
                    }
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use plexus_ipam_core::{BlockPolicy, Range, RangeSet};

    use super::super::tests::{endpoints, fresh_config};
    use super::*;
    use crate::whereabouts::{not_imported, parse_reservations};
    use crate::{AttachmentKey, Claim, ClaimContext, EtcdStore, Owner, Store};

    fn set() -> RangeSet {
        let range = Range::new("10.9.0.0/29".parse().unwrap(), None, None, None, Vec::new());
        RangeSet::new(vec![range.unwrap()]).unwrap()
    }

    async fn claim(
        store: &EtcdStore,
        container: &str,
    ) -> Result<Vec<crate::Allocation>, StoreError> {
        let set = set();
        let key = AttachmentKey::new("guarded", container, "net1");
        let ctx = ClaimContext::new("node-a", BlockPolicy::disabled());
        store
            .claim(&key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx)
            .await
    }

    /// A claim commits only while whereabouts' range key is absent, refusing with the
    /// import to run (not "try again") while it exists; the import's retire moves it
    /// aside only if it is unchanged; a key whereabouts writes again blocks claims again.
    #[tokio::test]
    async fn claims_wait_for_whereabouts_ranges_to_be_retired() {
        let Some(endpoints) = endpoints("claims_wait_for_whereabouts_ranges") else {
            return;
        };
        let mut cfg = fresh_config(&endpoints, "whereabouts_guard");
        let legacy = format!("{}-whereabouts/10.9.0.0/29", cfg.prefix);
        let retired = format!("{}-retired/10.9.0.0/29", cfg.prefix);
        cfg.require_absent = vec![legacy.clone()];
        let store = EtcdStore::open(&cfg).unwrap();
        let foreign = ForeignEtcd::open(&cfg).unwrap();
        let mut other = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();

        assert!(foreign.get(&legacy).await.unwrap().is_none());
        assert_eq!(
            claim(&store, "c0").await.unwrap().len(),
            1,
            "no key: claims work"
        );

        other
            .put(legacy.as_str(), "10.9.0.2 old-a\n10.9.0.3 old-b ns/p", None)
            .await
            .unwrap();
        assert_eq!(claim(&store, "c1").await, Err(not_imported(&legacy)));

        let seen = foreign.get(&legacy).await.unwrap().unwrap();
        let held = parse_reservations(&seen.value).unwrap();
        assert_eq!(held.len(), 2);
        other
            .put(legacy.as_str(), "10.9.0.2 old-a", None)
            .await
            .unwrap();
        assert!(
            !foreign.retire(&legacy, &seen, &retired).await.unwrap(),
            "changed since read"
        );
        let seen = foreign.get(&legacy).await.unwrap().unwrap();
        assert!(foreign.retire(&legacy, &seen, &retired).await.unwrap());
        assert!(foreign.get(&legacy).await.unwrap().is_none());
        let moved = foreign.get(&retired).await.unwrap().unwrap();
        assert_eq!(moved.value, b"10.9.0.2 old-a");
        assert_eq!(
            claim(&store, "c1").await.unwrap().len(),
            1,
            "retired: claims work"
        );

        // whereabouts (still running somewhere) writes the range again.
        other
            .put(legacy.as_str(), "10.9.0.6 late", None)
            .await
            .unwrap();
        assert_eq!(claim(&store, "c2").await, Err(not_imported(&legacy)));
        let _ = other.delete(legacy.as_str(), None).await;
        let _ = other.delete(retired.as_str(), None).await;
    }
}
