//! Allocations of an address range, in address order, a page at a time.
//!
//! `showalloc` must print its first line at once even when a network holds a million
//! addresses, so it never loads a whole network. The store answers two cheap indexed
//! questions, "how many are held in [lo, hi]" and "who holds ip"; [`Pager`] narrows
//! windows with the first until they are dense enough to probe address by address with the
//! second. Empty stretches cost one count each, however large (windows grow while empty).

use std::net::IpAddr;

use plexus_ipam_core::addr::{from_key, key};
use plexus_store::{Allocation, Store, StoreError};

/// Smallest window probed address by address.
const MIN_WINDOW: u128 = 16;
/// First window tried.
const FIRST_WINDOW: u128 = 256;
/// Largest window counted at once (grows by 4x per empty window).
const MAX_WINDOW: u128 = 1 << 40;
/// Largest window probed address by address (bounds a page's size).
const PROBE_MAX: u128 = 1024;

/// Streams the allocations of one network within `[lo, hi]`, ascending.
pub struct Pager<'s> {
    store: &'s dyn Store,
    network: String,
    /// Next key not yet examined; `None` once the range is exhausted.
    next: Option<u128>,
    hi: u128,
    window: u128,
    /// Queries sent, for `-v` diagnostics and tests.
    pub queries: u64,
}

impl<'s> Pager<'s> {
    /// A pager over `[lo, hi]` (addresses of one family) of `network`.
    pub fn new(store: &'s dyn Store, network: &str, lo: IpAddr, hi: IpAddr) -> Self {
        let (lo, hi) = (key(lo), key(hi));
        Pager {
            store,
            network: network.to_string(),
            next: (lo <= hi).then_some(lo),
            hi,
            window: FIRST_WINDOW,
            queries: 0,
        }
    }

    /// The next page: at least one allocation unless the range is exhausted (then empty).
    pub async fn next_page(&mut self) -> Result<Vec<Allocation>, StoreError> {
        let mut page = Vec::new();
        while let Some(lo) = self.next {
            let width = self.window.min(self.hi - lo + 1);
            let whi = lo + (width - 1);
            self.queries += 1;
            let held = self
                .store
                .count_between(&self.network, from_key(lo), from_key(whi))
                .await?;
            if held == 0 {
                self.window = (self.window * 4).min(MAX_WINDOW);
                self.skip_to(whi);
                if !page.is_empty() {
                    break;
                }
                continue;
            }
            let dense = u128::from(held) * 4 >= width;
            if (!dense && width > MIN_WINDOW) || width > PROBE_MAX {
                // Sparse or large: halve until the held addresses fill a quarter of a small window.
                self.window = (width / 2).max(MIN_WINDOW);
                continue;
            }
            let mut found = 0u64;
            for k in lo..=whi {
                self.queries += 1;
                if let Some(a) = self.store.holder(&self.network, from_key(k)).await? {
                    page.push(a);
                    found += 1;
                    if found == held {
                        break;
                    }
                }
            }
            self.skip_to(whi);
            break;
        }
        Ok(page)
    }

    fn skip_to(&mut self, whi: u128) {
        self.next = whi.checked_add(1).filter(|n| *n <= self.hi);
    }
}
