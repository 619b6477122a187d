//! Allocations of an address range, in address order, a page at a time.
//!
//! `showalloc` must print its first line at once even when a network holds a million
//! addresses, so it never loads a whole network: [`Pager`] asks the store for ordered pages
//! (`Store::list_between`, one indexed range read of at most [`PAGE`] rows each) and starts
//! the next page just above the last address returned.

use std::net::IpAddr;

use plexus_ipam_core::addr::{checked_add, from_key, key};
use plexus_store::{Allocation, Store, StoreError};

/// Allocations per page.
pub const PAGE: usize = 1000;

/// Streams the allocations of one network within `[lo, hi]`, ascending.
pub struct Pager<'s> {
    store: &'s dyn Store,
    network: String,
    /// Next address not yet examined; `None` once the range is exhausted.
    next: Option<IpAddr>,
    hi: IpAddr,
    /// Queries sent, for `-v` diagnostics and tests.
    pub queries: u64,
}

impl<'s> Pager<'s> {
    /// A pager over `[lo, hi]` (addresses of one family) of `network`.
    pub fn new(store: &'s dyn Store, network: &str, lo: IpAddr, hi: IpAddr) -> Self {
        Pager {
            store,
            network: network.to_string(),
            next: (key(lo) <= key(hi)).then_some(lo),
            hi,
            queries: 0,
        }
    }

    /// The next page: at least one allocation unless the range is exhausted (then empty).
    pub async fn next_page(&mut self) -> Result<Vec<Allocation>, StoreError> {
        let Some(lo) = self.next else {
            return Ok(Vec::new());
        };
        self.queries += 1;
        let page = self
            .store
            .list_between(&self.network, lo, self.hi, PAGE)
            .await?;
        self.next = match page.last() {
            Some(last) if page.len() == PAGE => checked_add(last.ip, 1)
                .filter(|next| key(*next) <= key(self.hi))
                .map(|next| from_key(key(next))),
            _ => None,
        };
        Ok(page)
    }
}
