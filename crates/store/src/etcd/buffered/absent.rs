//! Keys a commit requires absent ([`BufferedTxn::require_absent`]): the ranges whereabouts
//! ≤ 0.5.4 kept in the same etcd, until they are imported.
//!
//! The check is one `version == 0` compare per key in the commit the claim makes anyway,
//! so it costs no round trip. When the commit fails, its failure branch reads the keys
//! (with the layout key it reads already), so the caller learns in the same round trip
//! whether a key is the cause: that ends the call with the import to run, where a
//! concurrent writer would only mean "try again".

use etcd_client::{Compare, CompareOp, GetOptions, TxnOp, TxnOpResponse};

use super::BufferedTxn;
use crate::etcd::conn::Failure;

impl BufferedTxn {
    /// Makes the commit succeed only while none of `keys` exists.
    pub(crate) fn require_absent(&mut self, keys: &[String]) {
        self.absent = keys.to_vec();
    }

    /// One compare per required-absent key.
    pub(super) fn absent_compares(&self) -> impl Iterator<Item = Compare> + '_ {
        self.absent
            .iter()
            .map(|key| Compare::version(key.as_str(), CompareOp::Equal, 0))
    }

    /// Reads of the required-absent keys for the failure branch (keys only).
    pub(super) fn absent_probes(&self) -> impl Iterator<Item = TxnOp> + '_ {
        self.absent
            .iter()
            .map(|key| TxnOp::get(key.as_str(), Some(GetOptions::new().with_keys_only())))
    }

    /// The failure when one of the probes (the responses after the first, which read the
    /// layout key) found its key: the caller must import it first.
    pub(super) fn absent_found(&self, responses: &[TxnOpResponse]) -> Option<Failure> {
        let found =
            responses.iter().skip(1).zip(&self.absent).find_map(
                |(response, key)| match response {
                    TxnOpResponse::Get(get) if !get.kvs().is_empty() => Some(key),
                    _ => None,
                },
            )?;
        Some(Failure::Fatal(crate::whereabouts::not_imported(found)))
    }
}
