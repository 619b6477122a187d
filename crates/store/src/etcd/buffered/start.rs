//! How a transaction starts: with one read-only request for what it will read first
//! ([`BufferedTxn::prefetch`]), or from a view instead of reads, what the previous commit
//! read back.
//!
//! A commit can read ranges back after its writes, in the same etcd transaction (its
//! success branch): their state at the commit's revision, this transaction's writes
//! included, at no extra round trip ([`BufferedTxn::read_back_at_commit`]). The next
//! transaction can start from that [`ReadBack`] instead of reading ([`BufferedTxn::seed`]):
//! its snapshot is the view's revision, the ranges are listed as if read then. Nothing is
//! trusted blindly: every read the engine makes from the view is guarded at commit like a
//! read from the server (a stale view makes the commit fail as a conflict), a key assumed
//! absent ([`BufferedTxn::assume_absent`]) is checked to still not exist, and a seeded
//! transaction is [`maybe_stale`](BufferedTxn::maybe_stale), so its commit checks its reads
//! even with nothing to write and its callers re-check refusals on a fresh snapshot.

use std::sync::{Arc, Mutex};

use etcd_client::{GetOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::{BufferedTxn, Listing, PAGE, PrefetchRange, Seen};
use crate::error::StoreError;

/// Ranges as a commit read them back, at its revision.
#[derive(Debug, Clone)]
pub(crate) struct ReadBack {
    /// The commit's revision: the snapshot of a transaction seeded from this.
    pub(crate) revision: i64,
    /// Each complete range with its keys: (key, mod revision, value; empty when keys only).
    ranges: Vec<(PrefetchRange, Vec<ViewEntry>)>,
}

/// A key of a [`ReadBack`] range: key, mod revision, value (empty when keys only).
type ViewEntry = (Vec<u8>, i64, Vec<u8>);

/// Where a commit delivers its [`ReadBack`].
pub(crate) type ReadBackSink = Arc<Mutex<Option<ReadBack>>>;

/// etcd refuses transactions of more operations than this (`--max-txn-ops`, default
/// 128): a commit that would pass it reads nothing back.
const MAX_TXN_OPS: usize = 128;

impl BufferedTxn {
    /// Lets the prefetch be a serializable read: the member answers from its own state
    /// without a round of consensus (a linearizable read costs the server a raft read-index
    /// round per request). Safe because every read is re-checked by the commit's compares:
    /// a member that lags makes the commit fail as a conflict, never commit on stale data
    /// (a transaction that read locally checks its reads even with nothing to write, see
    /// [`commit`](Self::commit)). Only a first attempt does this, so a retry after a conflict reads linearizably and
    /// cannot meet the same stale state again.
    pub(crate) fn read_prefetch_locally(&mut self) {
        self.local_prefetch = true;
    }

    /// Reads the given keys and ranges in ONE read-only etcd transaction, before any other
    /// read: it pins the snapshot, and the reads that follow inside them are answered
    /// without a server call (guarded or not as those reads ask). Nothing is guarded by the
    /// prefetch itself. A range with more keys than a page is left to its own read.
    pub(crate) async fn prefetch(
        &mut self,
        points: &[String],
        ranges: &[PrefetchRange],
    ) -> Result<(), StoreError> {
        if self.snapshot.is_some() || (points.is_empty() && ranges.is_empty()) {
            return Ok(());
        }
        let local = self.local_prefetch;
        let options = move || {
            let options = GetOptions::new();
            if local {
                options.with_serializable()
            } else {
                options
            }
        };
        let mut ops: Vec<TxnOp> = points
            .iter()
            .map(|key| TxnOp::get(key.as_str(), Some(options())))
            .collect();
        ops.extend(ranges.iter().map(|range| {
            let mut options = options().with_range(range.end.clone()).with_limit(PAGE);
            if range.keys_only {
                options = options.with_keys_only();
            }
            TxnOp::get(range.start.as_str(), Some(options))
        }));
        self.reads_sent += 1;
        self.maybe_stale |= local;
        let response = match self.kv.txn(Txn::new().and_then(ops)).await {
            Ok(response) => response,
            Err(err) => return Err(self.fail(err)),
        };
        self.pin(response.header().map(|h| h.revision()));
        let requested = points
            .iter()
            .map(|key| {
                let mut end = key.as_bytes().to_vec();
                end.push(0);
                (key.as_bytes().to_vec(), end, true)
            })
            .chain(
                ranges
                    .iter()
                    .map(|r| (r.start.as_bytes().to_vec(), r.end.clone(), !r.keys_only)),
            );
        for ((start, end, values), op) in requested.zip(response.op_responses()) {
            let TxnOpResponse::Get(mut get) = op else {
                continue;
            };
            let complete = !get.more();
            for kv in get.take_kvs() {
                let mod_revision = kv.mod_revision();
                let (key, value) = kv.into_key_value();
                let seen = self.known.entry(key).or_insert(Seen {
                    mod_revision,
                    value: None,
                });
                if values {
                    seen.value = Some(value);
                }
            }
            if complete {
                self.listed.push(Listing { start, end, values });
            }
        }
        Ok(())
    }

    /// Starts this transaction from `view` instead of reading: must come before any read.
    pub(crate) fn seed(&mut self, view: &ReadBack) {
        debug_assert!(self.snapshot.is_none(), "seeded after a read");
        self.snapshot = Some(view.revision);
        self.maybe_stale = true;
        for (range, entries) in &view.ranges {
            for (key, mod_revision, value) in entries {
                let value = (!range.keys_only).then(|| value.clone());
                self.known.insert(
                    key.clone(),
                    Seen {
                        mod_revision: *mod_revision,
                        value,
                    },
                );
            }
            self.listed.push(Listing {
                start: range.start.as_bytes().to_vec(),
                end: range.end.clone(),
                values: !range.keys_only,
            });
        }
    }

    /// Treats `key` as absent at the snapshot without reading it: a read of it answers
    /// "absent" and the commit requires it still absent (`create_revision == 0`), so a key
    /// that does exist makes the commit fail as a conflict, never pass unnoticed.
    pub(crate) fn assume_absent(&mut self, key: &str) {
        let mut end = key.as_bytes().to_vec();
        end.push(0);
        self.listed.push(Listing {
            start: key.as_bytes().to_vec(),
            end,
            values: true,
        });
    }

    /// Whether the prefetch may be a local read (set on a first attempt): only then may the
    /// transaction start from a view instead.
    pub(crate) fn may_read_locally(&self) -> bool {
        self.local_prefetch
    }

    /// Whether this transaction's reads may be older than the request: a serializable
    /// prefetch or a seeded view. A refusal (an exhausted pool, a taken address) found on
    /// such reads must be re-checked on a fresh snapshot before it is answered.
    pub(crate) fn maybe_stale(&self) -> bool {
        self.maybe_stale
    }

    /// Makes a successful commit read `ranges` back and deliver them to `sink`.
    pub(crate) fn read_back_at_commit(&mut self, ranges: Vec<PrefetchRange>, sink: ReadBackSink) {
        self.read_back = Some((ranges, sink));
    }

    /// The read-back operations to append to a commit of `writes` operations.
    pub(super) fn read_back_ops(&self, writes: usize) -> Vec<TxnOp> {
        let Some((ranges, _)) = &self.read_back else {
            return Vec::new();
        };
        if writes + ranges.len() > MAX_TXN_OPS {
            return Vec::new();
        }
        ranges
            .iter()
            .map(|range| {
                let mut options = GetOptions::new()
                    .with_range(range.end.clone())
                    .with_limit(PAGE);
                if range.keys_only {
                    options = options.with_keys_only();
                }
                TxnOp::get(range.start.as_str(), Some(options))
            })
            .collect()
    }

    /// Hands a successful commit's read-back (the responses after its `writes`) to the
    /// sink; a range with more keys than a page is left out (not listed completely).
    pub(super) fn deliver_read_back(&mut self, response: &mut TxnResponse, writes: usize) {
        let Some((ranges, sink)) = self.read_back.take() else {
            return;
        };
        let Some(revision) = response.header().map(|h| h.revision()) else {
            return;
        };
        let responses = response.op_responses();
        if responses.len() != writes + ranges.len() {
            return;
        }
        let mut view = ReadBack {
            revision,
            ranges: Vec::new(),
        };
        for (range, op) in ranges.into_iter().zip(responses.into_iter().skip(writes)) {
            let TxnOpResponse::Get(mut get) = op else {
                continue;
            };
            if get.more() {
                continue;
            }
            let entries = get
                .take_kvs()
                .into_iter()
                .map(|kv| {
                    let mod_revision = kv.mod_revision();
                    let (key, value) = kv.into_key_value();
                    (key, mod_revision, value)
                })
                .collect();
            view.ranges.push((range, entries));
        }
        *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(view);
    }
}
