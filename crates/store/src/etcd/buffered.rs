//! [`BufferedTxn`]: an optimistic transaction over etcd's key-value API.
//!
//! Reads go to the server at one snapshot revision (the revision of the first read) and are
//! remembered; writes are buffered and overlay later reads (read-your-writes). The commit
//! is ONE etcd transaction whose compares re-check everything the reads relied on:
//!
//! - a key read as present: `mod_revision == seen`, so it was neither changed nor deleted;
//! - a key read as absent (this includes every key the transaction creates):
//!   `create_revision == 0`, so it still does not exist (create-if-absent);
//! - a key range read: `mod_revision < snapshot + 1` over the range, so no key in it was
//!   created or changed since the snapshot (a deletion there only frees an address, and
//!   committing as if it came later is still serializable);
//! - the layout-version key still holds the layout this build writes;
//! - every key the caller requires absent ([`absent`]) still does not exist.
//!
//! If any compare fails, nothing is written and the caller re-runs the whole transaction on
//! a fresh snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};

use super::conn::{Connector, Failure};
use crate::error::StoreError;

mod absent;
mod start;

pub(crate) use self::start::{ReadBack, ReadBackSink};

/// Keys per page of a range read: bounded responses however large a network grows.
const PAGE: i64 = 1000;

/// Above this many compares (etcd refuses more than 128 per transaction by default) the
/// range compares of one directory are merged into the one range that covers them all:
/// more spurious conflicts, never a missed one.
const MAX_COMPARES: usize = 100;

/// A buffered write.
#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>),
    Delete,
}

/// One optimistic read-write transaction (see the module docs).
pub(crate) struct BufferedTxn {
    kv: KvClient,
    conn: Arc<Connector>,
    layout_key: String,
    layout_value: String,
    snapshot: Option<i64>,
    /// Point reads: key → `mod_revision` seen (0 when absent).
    reads: BTreeMap<Vec<u8>, i64>,
    /// Range reads (and counts): `[start, end)`, each checked by a range compare.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// The range reads that listed their keys: a key inside one that the read did not
    /// return is known to be absent at the snapshot, and a later read inside one is
    /// answered from [`known`](Self::known) without a server call.
    listed: Vec<Listing>,
    /// Keys seen present at the snapshot (by any read): `mod_revision` and, unless only
    /// a keys-only range read saw them, the value. Spares a second round trip for a key
    /// already read, and any for a key inside a range read that returned no such key.
    known: BTreeMap<Vec<u8>, Seen>,
    writes: BTreeMap<Vec<u8>, Write>,
    /// The first failure of a server call, which decides whether the call is retried.
    failure: Option<Failure>,
    /// Read requests sent so far (tests check what a claim costs).
    reads_sent: usize,
    /// Whether [`prefetch`](Self::prefetch) may be answered from the member's local state
    /// (a serializable read, see [`read_prefetch_locally`](Self::read_prefetch_locally)).
    local_prefetch: bool,
    /// Whether the reads may be older than the request (a local prefetch, a seeded view):
    /// the commit must then check them even when there is nothing to write.
    maybe_stale: bool,
    /// Ranges a successful commit reads back, and where they go (see [`start`]).
    read_back: Option<(Vec<PrefetchRange>, start::ReadBackSink)>,
    /// Keys the commit requires absent (see [`absent`]).
    absent: Vec<String>,
}

/// What a read saw of a present key.
#[derive(Debug, Clone)]
struct Seen {
    mod_revision: i64,
    /// `None` when only a keys-only read saw the key.
    value: Option<Vec<u8>>,
}

/// A range `[start, end)` whose keys (and, when `values`, their values) are all in
/// [`BufferedTxn::known`].
#[derive(Debug, Clone)]
struct Listing {
    start: Vec<u8>,
    end: Vec<u8>,
    values: bool,
}

impl Listing {
    fn covers(&self, start: &[u8], end: &[u8]) -> bool {
        self.start.as_slice() <= start && end <= self.end.as_slice()
    }
}

/// A range for [`BufferedTxn::prefetch`]: `[start, end)`, with values or keys only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PrefetchRange {
    pub(crate) start: String,
    pub(crate) end: Vec<u8>,
    pub(crate) keys_only: bool,
}

/// What [`BufferedTxn::savepoint`] remembers: the buffered writes at that moment.
pub(crate) struct Savepoint(BTreeMap<Vec<u8>, Write>);

/// One key and its value from a range read.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

impl BufferedTxn {
    /// A transaction that commits only while `layout_key` holds `layout_value`.
    pub(crate) fn new(
        kv: KvClient,
        conn: Arc<Connector>,
        layout_key: String,
        layout_value: String,
    ) -> Self {
        BufferedTxn {
            kv,
            conn,
            layout_key,
            layout_value,
            snapshot: None,
            reads: BTreeMap::new(),
            ranges: Vec::new(),
            listed: Vec::new(),
            known: BTreeMap::new(),
            writes: BTreeMap::new(),
            failure: None,
            reads_sent: 0,
            local_prefetch: false,
            maybe_stale: false,
            read_back: None,
            absent: Vec::new(),
        }
    }

    /// The read requests this transaction has sent to the server so far.
    #[cfg(test)]
    pub(crate) fn reads_sent(&self) -> usize {
        self.reads_sent
    }

    /// Whether a server call of this transaction failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The failure of a server call made by this transaction, if any (taken once).
    pub(crate) fn take_failure(&mut self) -> Option<Failure> {
        self.failure.take()
    }

    /// Remembers `err` as this transaction's failure and returns the error the engine sees.
    fn fail(&mut self, err: etcd_client::Error) -> StoreError {
        let failure = self.conn.classify(err);
        let shown = match &failure {
            Failure::Conflict(reason) => StoreError::Busy {
                reason: reason.clone(),
            },
            Failure::Transient(reason) => StoreError::Unavailable {
                reason: reason.clone(),
            },
            Failure::Fatal(err) => err.clone(),
        };
        self.failure.get_or_insert(failure);
        shown
    }

    fn options(&self) -> GetOptions {
        match self.snapshot {
            Some(revision) => GetOptions::new().with_revision(revision),
            None => GetOptions::new(),
        }
    }

    fn pin(&mut self, header_revision: Option<i64>) {
        if self.snapshot.is_none() {
            self.snapshot = header_revision;
        }
    }

    /// The value of `key`: this transaction's own write, else the snapshot's.
    pub(crate) async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.as_bytes();
        if let Some(write) = self.writes.get(key) {
            return Ok(match write {
                Write::Put(value) => Some(value.clone()),
                Write::Delete => None,
            });
        }
        // Every read is at the snapshot, so what was seen once stays true in here; the
        // point compare recorded makes the commit check it all the same.
        if let Some(seen) = self.known.get(key) {
            if let Some(value) = &seen.value {
                self.reads.insert(key.to_vec(), seen.mod_revision);
                return Ok(Some(value.clone()));
            }
        } else if self.reads.get(key) == Some(&0) || self.in_range_read(key) {
            self.reads.insert(key.to_vec(), 0);
            return Ok(None);
        }
        let options = self.options();
        self.reads_sent += 1;
        let mut response = match self.kv.get(key, Some(options)).await {
            Ok(response) => response,
            Err(err) => return Err(self.fail(err)),
        };
        self.pin(response.header().map(|h| h.revision()));
        let found = response.take_kvs().into_iter().next();
        let seen = found.as_ref().map_or(0, |kv| kv.mod_revision());
        self.reads.entry(key.to_vec()).or_insert(seen);
        let value = found.map(|kv| kv.into_key_value().1);
        if let Some(value) = &value {
            let seen = Seen {
                mod_revision: seen,
                value: Some(value.clone()),
            };
            self.known.insert(key.to_vec(), seen);
        }
        Ok(value)
    }

    /// Like [`get`](Self::get), but the commit does not require the key unchanged: for
    /// hints (next-fit cursors) whose staleness costs a longer search, never uniqueness.
    /// Guarding them made every claim conflict with every other claim of its node.
    pub(crate) async fn get_unguarded(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let guarded_before = self.reads.contains_key(key.as_bytes());
        let value = self.get(key).await?;
        if !guarded_before {
            self.reads.remove(key.as_bytes());
        }
        Ok(value)
    }

    fn in_range_read(&self, key: &[u8]) -> bool {
        self.listed
            .iter()
            .any(|l| l.start.as_slice() <= key && key < l.end.as_slice())
    }

    /// The snapshot's entries of `[start, end)` from an earlier listing that covers it,
    /// without a server call; `None` when no listing does (or none with values, when
    /// values are asked for).
    fn listed_entries(
        &self,
        start: &[u8],
        end: &[u8],
        keys_only: bool,
    ) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.listed
            .iter()
            .any(|l| (keys_only || l.values) && l.covers(start, end))
            .then(|| {
                self.known
                    .range(start.to_vec()..end.to_vec())
                    .map(|(key, seen)| {
                        let value = match (&seen.value, keys_only) {
                            (Some(value), false) => value.clone(),
                            _ => Vec::new(),
                        };
                        (key.clone(), value)
                    })
                    .collect()
            })
    }

    /// The buffered writes as they are now, for [`rollback_to`](Self::rollback_to).
    pub(crate) fn savepoint(&self) -> Savepoint {
        Savepoint(self.writes.clone())
    }

    /// Drops every write buffered since `savepoint`. The reads made since stay guarded: at
    /// worst a spurious conflict, never a missed one.
    pub(crate) fn rollback_to(&mut self, savepoint: Savepoint) {
        self.writes = savepoint.0;
    }

    /// The entries of `[start, end)` in key order, with this transaction's writes applied;
    /// values are empty when `keys_only`.
    pub(crate) async fn range(
        &mut self,
        start: &str,
        end: &[u8],
        keys_only: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let listed = self.listed_entries(start.as_bytes(), end, keys_only);
        let cached = listed.is_some();
        let mut found = match listed {
            Some(entries) => entries,
            None => self.fetch_range(start, end, keys_only).await?,
        };
        if !cached {
            self.listed.push(Listing {
                start: start.as_bytes().to_vec(),
                end: end.to_vec(),
                values: !keys_only,
            });
        }
        self.ranges.push((start.as_bytes().to_vec(), end.to_vec()));
        let own = self.writes.range(start.as_bytes().to_vec()..end.to_vec());
        for (key, write) in own {
            match write {
                Write::Put(value) => {
                    let value = if keys_only { Vec::new() } else { value.clone() };
                    found.insert(key.clone(), value);
                }
                Write::Delete => {
                    found.remove(key);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every entry of `[start, end)` at the snapshot, page by page, remembered in
    /// [`known`](Self::known).
    async fn fetch_range(
        &mut self,
        start: &str,
        end: &[u8],
        keys_only: bool,
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut found = BTreeMap::new();
        let mut from = start.as_bytes().to_vec();
        loop {
            let mut options = self.options().with_range(end.to_vec()).with_limit(PAGE);
            if keys_only {
                options = options.with_keys_only();
            }
            self.reads_sent += 1;
            let mut response = match self.kv.get(from.clone(), Some(options)).await {
                Ok(response) => response,
                Err(err) => return Err(self.fail(err)),
            };
            self.pin(response.header().map(|h| h.revision()));
            let more = response.more();
            let page = response.take_kvs();
            let last = page.last().map(|kv| kv.key().to_vec());
            for kv in page {
                let mod_revision = kv.mod_revision();
                let (key, value) = kv.into_key_value();
                let seen = self.known.entry(key.clone()).or_insert(Seen {
                    mod_revision,
                    value: None,
                });
                if !keys_only {
                    seen.value = Some(value.clone());
                }
                found.insert(key, value);
            }
            match (more, last) {
                (true, Some(mut last)) => {
                    // The next page starts right after the last key of this one.
                    last.push(0);
                    from = last;
                }
                _ => break,
            }
        }
        Ok(found)
    }

    /// Like [`range`](Self::range), but the commit does not require the range unchanged.
    ///
    /// For reads that only propose candidates, like the free-address window: the candidate
    /// chosen is then read as a point (and created only if still absent), which alone keeps
    /// it unique. Guarding the whole window made every concurrent claim in it abort this
    /// one, and 32 writers on one small pool livelocked.
    pub(crate) async fn range_unguarded(
        &mut self,
        start: &str,
        end: &[u8],
        keys_only: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let entries = self.range(start, end, keys_only).await?;
        // `range` pushed exactly one guard, last.
        self.ranges.pop();
        Ok(entries)
    }

    /// At most `limit` entries of `[start, end)` in key order, at the snapshot, in one
    /// request, not guarded at commit and without this transaction's writes: for
    /// read-only pages (listing a network's allocations page by page).
    pub(crate) async fn page(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let options = self.options().with_range(end.to_vec()).with_limit(limit);
        self.reads_sent += 1;
        let mut response = match self.kv.get(start.to_vec(), Some(options)).await {
            Ok(response) => response,
            Err(err) => return Err(self.fail(err)),
        };
        self.pin(response.header().map(|h| h.revision()));
        Ok(response
            .take_kvs()
            .into_iter()
            .map(|kv| kv.into_key_value())
            .collect())
    }

    /// The number of keys in `[start, end)`, with this transaction's writes applied.
    pub(crate) async fn count(&mut self, start: &str, end: &[u8]) -> Result<u64, StoreError> {
        let touched = self
            .writes
            .range(start.as_bytes().to_vec()..end.to_vec())
            .next()
            .is_some();
        if touched {
            // Own writes may or may not replace existing keys: count the merged key list.
            let entries = self.range(start, end, true).await?;
            return Ok(u64::try_from(entries.len()).unwrap_or(u64::MAX));
        }
        let options = self.options().with_range(end.to_vec()).with_count_only();
        self.reads_sent += 1;
        let response = match self.kv.get(start, Some(options)).await {
            Ok(response) => response,
            Err(err) => return Err(self.fail(err)),
        };
        self.pin(response.header().map(|h| h.revision()));
        self.ranges.push((start.as_bytes().to_vec(), end.to_vec()));
        Ok(u64::try_from(response.count()).unwrap_or(0))
    }

    /// Like [`count`](Self::count), but the commit does not require the range unchanged:
    /// for decisions that are checked again before anything depends on them.
    pub(crate) async fn count_unguarded(
        &mut self,
        start: &str,
        end: &[u8],
    ) -> Result<u64, StoreError> {
        let count = self.count(start, end).await?;
        // `count` pushed exactly one guard, last.
        self.ranges.pop();
        Ok(count)
    }

    /// Buffers a put of `value` at `key`.
    pub(crate) fn put(&mut self, key: &str, value: Vec<u8>) {
        self.writes
            .insert(key.as_bytes().to_vec(), Write::Put(value));
    }

    /// Buffers a delete of `key`.
    pub(crate) fn delete(&mut self, key: &str) {
        self.writes.insert(key.as_bytes().to_vec(), Write::Delete);
    }

    /// Commits the buffered writes in one etcd transaction guarded by the compares of the
    /// module docs. A read-only transaction commits without a server call.
    pub(crate) async fn commit(mut self) -> Result<(), Failure> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        if self.writes.is_empty() && !self.maybe_stale {
            // Linearizable reads and nothing to write: what was read was true when read.
            return Ok(());
        }
        // With writes, the compares make them depend on what was read. Without (an
        // idempotent re-claim), the compares alone check that a local read was not stale:
        // a lagging member could still show an attachment that was released meanwhile,
        // whose address may already be someone else's. Etcd runs a transaction without
        // writes as a linearizable read.
        tracing::trace!(
            reads = self.reads_sent,
            writes = self.writes.len(),
            "committing an etcd transaction"
        );
        let compares = self.compares();
        let mut ops: Vec<TxnOp> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, write)| match write {
                Write::Put(value) => TxnOp::put(key, value, None),
                Write::Delete => TxnOp::delete(key, None),
            })
            .collect();
        let writes = ops.len();
        ops.extend(self.read_back_ops(writes));
        let mut otherwise = vec![TxnOp::get(self.layout_key.clone(), None)];
        otherwise.extend(self.absent_probes());
        let txn = Txn::new().when(compares).and_then(ops).or_else(otherwise);
        let mut response = self
            .kv
            .txn(txn)
            .await
            .map_err(|err| self.conn.classify(err))?;
        if response.succeeded() {
            self.deliver_read_back(&mut response, writes);
            return Ok(());
        }
        let responses = response.op_responses();
        let layout = responses.first().and_then(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.value().to_vec())),
            _ => None,
        });
        match layout {
            Some(Some(value)) if value == self.layout_value.as_bytes() => {
                Err(self.absent_found(&responses).unwrap_or_else(|| {
                    Failure::Conflict(
                        "a concurrent writer changed keys this transaction read".into(),
                    )
                }))
            }
            _ => Err(Failure::Fatal(StoreError::Corrupt {
                reason: format!(
                    "the etcd layout version at {} changed while this call ran (another \
                     plexus version is migrating or was rolled back); retry after the \
                     upgrade completes",
                    self.layout_key
                ),
            })),
        }
    }

    /// The compares that make the commit valid only if every read still holds.
    fn compares(&mut self) -> Vec<Compare> {
        let mut compares = vec![Compare::value(
            self.layout_key.clone(),
            CompareOp::Equal,
            self.layout_value.clone(),
        )];
        compares.extend(self.absent_compares());
        for (key, seen) in &self.reads {
            compares.push(if *seen == 0 {
                Compare::create_revision(key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.clone(), CompareOp::Equal, *seen)
            });
        }
        let Some(snapshot) = self.snapshot else {
            return compares;
        };
        let mut ranges = std::mem::take(&mut self.ranges);
        if compares.len() + ranges.len() > MAX_COMPARES {
            ranges = merge_by_directory(ranges);
        }
        for (start, end) in ranges {
            compares
                .push(Compare::mod_revision(start, CompareOp::Less, snapshot + 1).with_range(end));
        }
        compares
    }
}

/// The ranges with all ranges of one directory (the key up to its last `/`) replaced by
/// the single range from their smallest start to their largest end.
pub(crate) fn merge_by_directory(ranges: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut hulls: BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for (start, end) in ranges {
        let dir_len = start.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let dir = start[..dir_len].to_vec();
        hulls
            .entry(dir)
            .and_modify(|(lo, hi)| {
                if start < *lo {
                    *lo = start.clone();
                }
                if end > *hi {
                    *hi = end.clone();
                }
            })
            .or_insert((start, end));
    }
    hulls.into_values().collect()
}

#[cfg(test)]
mod tests;
