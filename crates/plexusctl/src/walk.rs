//! The address walk behind `showalloc`: what each address of a pool is, in address order,
//! merged with the pool's allocations as they stream in.
//!
//! Pure and lazy: the walker never builds a list of the pool's addresses. Without
//! `--all` it only visits the reserved addresses and the allocations; with `--all` it
//! visits every address, one line at a time, so a /8 (16 M lines) streams in constant
//! memory.

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::addr::{Family, first_key, from_key, key, last_key, net_contains};
use plexus_store::Allocation;

use crate::netdef::Pool;

/// What one address of a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// The first address of the subnet.
    NetworkBase,
    /// The last address of an IPv4 subnet, or of any subnet of a network object (DANM's
    /// rule, which plexus-model follows for IPv6 too).
    Broadcast,
    /// A gateway of the pool.
    Gateway,
    /// Held by an attachment.
    Allocated(&'a Allocation),
    /// Inside start..end, not reserved, not held.
    Free,
    /// Inside an exclusion.
    Excluded,
    /// In the subnet but outside start..end.
    OutOfPool,
}

impl Status<'_> {
    /// Whether the line is printed only with `--all` (as DANM's `free` and
    /// `out of pool range`).
    pub fn only_with_all(&self) -> bool {
        matches!(self, Status::Free | Status::Excluded | Status::OutOfPool)
    }

    /// The short machine name (`-o json`).
    pub fn name(&self) -> &'static str {
        match self {
            Status::NetworkBase => "network_base",
            Status::Broadcast => "broadcast",
            Status::Gateway => "gateway",
            Status::Allocated(_) => "allocated",
            Status::Free => "free",
            Status::Excluded => "excluded",
            Status::OutOfPool => "out_of_pool",
        }
    }
}

/// Walks one pool's addresses within `[lo, hi]` in order.
///
/// Feed allocations in ascending address order with [`Walker::allocation`], then call
/// [`Walker::finish`]; each call emits, through the callback, every line up to and
/// including that point. The callback returns `false` to stop early (closed stdout).
#[derive(Debug)]
pub struct Walker<'p> {
    pool: &'p Pool,
    all: bool,
    broadcast_reserved: bool,
    /// The next address key not yet emitted.
    next: u128,
    /// The last key of the walk.
    hi: u128,
    /// Reserved keys of the pool inside the walk, ascending, with their status.
    reserved: Vec<(u128, Status<'static>)>,
    /// Index of the first reserved key not yet emitted.
    reserved_at: usize,
    /// Set once the walk passed `hi` or the callback asked to stop.
    done: bool,
}

impl<'p> Walker<'p> {
    /// A walk over `pool`, limited to `filter` when given (DANM's `-showCIDR`).
    ///
    /// `broadcast_reserved` marks the last address as the broadcast address: for IPv4, and
    /// for the IPv6 pools of network objects (plexus-model reserves it as DANM does).
    pub fn new(
        pool: &'p Pool,
        filter: Option<&IpNet>,
        all: bool,
        broadcast_reserved: bool,
    ) -> Self {
        let (mut lo, mut hi) = (first_key(&pool.cidr), last_key(&pool.cidr));
        let mut done = false;
        if let Some(filter) = filter {
            if Family::of_net(filter) == pool.family() {
                lo = lo.max(first_key(filter));
                hi = hi.min(last_key(filter));
            }
            done = Family::of_net(filter) != pool.family() || lo > hi;
        }
        let base = first_key(&pool.cidr);
        let last = last_key(&pool.cidr);
        let mut reserved: Vec<(u128, Status<'static>)> = vec![(base, Status::NetworkBase)];
        if broadcast_reserved && last != base {
            reserved.push((last, Status::Broadcast));
        }
        for gw in &pool.gateways {
            let k = key(*gw);
            if net_contains(&pool.cidr, *gw) && !reserved.iter().any(|(r, _)| *r == k) {
                reserved.push((k, Status::Gateway));
            }
        }
        reserved.retain(|(k, _)| (lo..=hi).contains(k));
        reserved.sort_by_key(|(k, _)| *k);
        Walker {
            pool,
            all,
            broadcast_reserved,
            next: lo,
            hi,
            reserved,
            reserved_at: 0,
            done,
        }
    }

    /// The bounds of the walk as addresses (`None` when the filter leaves nothing).
    pub fn bounds(&self) -> Option<(IpAddr, IpAddr)> {
        (!self.done).then(|| (from_key(self.next), from_key(self.hi)))
    }

    /// Whether the walk is over (past its end, or stopped by the callback).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Emits the lines before `allocation`, then its own line. Allocations outside the
    /// walk's bounds or behind the walk (duplicates, out of order) are ignored.
    pub fn allocation<'a>(
        &mut self,
        allocation: &'a Allocation,
        emit: &mut impl FnMut(IpAddr, Status<'a>) -> bool,
    ) {
        let k = key(allocation.ip);
        if self.done || k < self.next || k > self.hi {
            return;
        }
        self.emit_until(k, emit);
        if self.done {
            return;
        }
        if !emit(allocation.ip, Status::Allocated(allocation)) {
            self.done = true;
            return;
        }
        while self
            .reserved
            .get(self.reserved_at)
            .is_some_and(|(r, _)| *r <= k)
        {
            self.reserved_at += 1;
        }
        self.advance_past(k);
    }

    /// Emits every remaining line of the walk.
    pub fn finish<'a>(&mut self, emit: &mut impl FnMut(IpAddr, Status<'a>) -> bool) {
        if !self.done {
            // `hi + 1` may overflow for the very last IPv6 address: emit through `hi`.
            self.emit_until_inclusive(self.hi, emit);
            self.done = true;
        }
    }

    /// Emits lines for keys in `[next, until)`.
    fn emit_until<'a>(&mut self, until: u128, emit: &mut impl FnMut(IpAddr, Status<'a>) -> bool) {
        if until > self.next {
            self.emit_until_inclusive(until - 1, emit);
        }
    }

    /// Emits lines for keys in `[next, until]` and moves `next` past `until`.
    fn emit_until_inclusive<'a>(
        &mut self,
        until: u128,
        emit: &mut impl FnMut(IpAddr, Status<'a>) -> bool,
    ) {
        if self.all {
            let mut k = self.next;
            loop {
                if k > until {
                    break;
                }
                let status = self.classify(k);
                if !emit(from_key(k), status) {
                    self.done = true;
                    return;
                }
                if k == until {
                    break;
                }
                k += 1;
            }
            while self
                .reserved
                .get(self.reserved_at)
                .is_some_and(|(r, _)| *r <= until)
            {
                self.reserved_at += 1;
            }
        } else {
            while let Some(&(k, status)) = self.reserved.get(self.reserved_at) {
                if k > until {
                    break;
                }
                self.reserved_at += 1;
                if k >= self.next && !emit(from_key(k), status) {
                    self.done = true;
                    return;
                }
            }
        }
        self.advance_past(until);
    }

    fn advance_past(&mut self, k: u128) {
        match k.checked_add(1) {
            Some(next) if next <= self.hi => self.next = next,
            _ => self.done = true,
        }
    }

    /// The status of an address no allocation holds.
    fn classify(&self, k: u128) -> Status<'static> {
        if let Some(&(_, status)) = self.reserved.iter().find(|(r, _)| *r == k) {
            return status;
        }
        let ip = from_key(k);
        if self.pool.exclude.iter().any(|net| net_contains(net, ip)) {
            Status::Excluded
        } else if (key(self.pool.start)..=key(self.pool.end)).contains(&k) {
            Status::Free
        } else {
            Status::OutOfPool
        }
    }

    /// Whether the last address is treated as the broadcast address.
    pub fn broadcast_reserved(&self) -> bool {
        self.broadcast_reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_store::Owner;
    use proptest::prelude::*;

    fn alloc(ip: IpAddr) -> Allocation {
        Allocation {
            network: "n".into(),
            container_id: format!("c-{ip}"),
            ifname: "eth0".into(),
            ip,
            range_set: String::new(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        }
    }

    fn pool(cidr: &str, start: &str, end: &str, gw: &[&str], exclude: &[&str]) -> Pool {
        Pool {
            cidr: cidr.parse().unwrap(),
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            gateways: gw.iter().map(|g| g.parse().unwrap()).collect(),
            exclude: exclude.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    fn run(p: &Pool, filter: Option<&IpNet>, all: bool, allocs: &[Allocation]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut w = Walker::new(p, filter, all, p.family() == Family::V4);
        let mut emit = |ip: IpAddr, s: Status<'_>| {
            lines.push(format!("{ip} {}", s.name()));
            true
        };
        for a in allocs {
            w.allocation(a, &mut emit);
        }
        w.finish(&mut emit);
        lines
    }

    #[test]
    fn without_all_only_reserved_and_allocated() {
        let p = pool("10.0.0.0/29", "10.0.0.2", "10.0.0.6", &["10.0.0.1"], &[]);
        let allocs = [alloc("10.0.0.3".parse().unwrap())];
        assert_eq!(
            run(&p, None, false, &allocs),
            [
                "10.0.0.0 network_base",
                "10.0.0.1 gateway",
                "10.0.0.3 allocated",
                "10.0.0.7 broadcast"
            ]
        );
    }

    #[test]
    fn with_all_every_address_in_order() {
        let p = pool("10.0.0.0/29", "10.0.0.2", "10.0.0.5", &[], &["10.0.0.4/32"]);
        let allocs = [alloc("10.0.0.6".parse().unwrap())];
        assert_eq!(
            run(&p, None, true, &allocs),
            [
                "10.0.0.0 network_base",
                "10.0.0.1 out_of_pool",
                "10.0.0.2 free",
                "10.0.0.3 free",
                "10.0.0.4 excluded",
                "10.0.0.5 free",
                "10.0.0.6 allocated",
                "10.0.0.7 broadcast"
            ]
        );
    }

    #[test]
    fn filter_limits_the_walk() {
        let p = pool("10.0.0.0/24", "10.0.0.1", "10.0.0.254", &[], &[]);
        let filter: IpNet = "10.0.0.4/30".parse().unwrap();
        let allocs = [
            alloc("10.0.0.2".parse().unwrap()),
            alloc("10.0.0.5".parse().unwrap()),
        ];
        assert_eq!(
            run(&p, Some(&filter), true, &allocs),
            [
                "10.0.0.4 free",
                "10.0.0.5 allocated",
                "10.0.0.6 free",
                "10.0.0.7 free"
            ]
        );
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert!(run(&p, Some(&v6), true, &allocs).is_empty());
    }

    #[test]
    fn ipv6_end_of_space_does_not_overflow() {
        let p = pool(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            &[],
            &[],
        );
        let last = alloc("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap());
        let lines = run(&p, None, true, &[last]);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[3].ends_with("allocated"));
    }

    #[test]
    fn callback_stop_ends_the_walk() {
        let p = pool("10.0.0.0/16", "10.0.0.1", "10.0.255.254", &[], &[]);
        let mut w = Walker::new(&p, None, true, true);
        let mut seen = 0;
        w.finish(&mut |_, _| {
            seen += 1;
            seen < 3
        });
        assert_eq!(seen, 3);
        assert!(w.is_done());
    }

    /// The naive classification of every address, for comparison.
    fn naive(p: &Pool, filter: Option<&IpNet>, all: bool, held: &[Allocation]) -> Vec<String> {
        let (lo, hi) = (first_key(&p.cidr), last_key(&p.cidr));
        let w = Walker::new(p, None, true, true);
        (lo..=hi)
            .filter(|k| filter.is_none_or(|f| net_contains(f, from_key(*k))))
            .filter_map(|k| {
                let ip = from_key(k);
                let status = if held.iter().any(|a| a.ip == ip) {
                    "allocated"
                } else {
                    w.classify(k).name()
                };
                let hidden = matches!(status, "free" | "excluded" | "out_of_pool");
                (all || !hidden).then(|| format!("{ip} {status}"))
            })
            .collect()
    }

    proptest! {
        /// The streaming walk equals classifying every address of a small pool one by one.
        #[test]
        fn walk_matches_naive(
            prefix in 24u8..=30,
            start_off in 0u32..8,
            end_off in 0u32..8,
            held in proptest::collection::btree_set(0u32..256, 0..20),
            gw in proptest::option::of(1u32..255),
            filter_prefix in proptest::option::of(24u8..=32),
            filter_off in 0u32..256,
            all in any::<bool>(),
        ) {
            let size = 1u32 << (32 - prefix);
            let base = u32::from(std::net::Ipv4Addr::new(10, 1, 2, 0));
            let ip = |off: u32| IpAddr::from(std::net::Ipv4Addr::from(base + off % size));
            let start = 1 + start_off % (size - 2);
            let end = (size - 2 - end_off % (size - 2)).max(start);
            let p = Pool {
                cidr: IpNet::new(ip(0), prefix).unwrap(),
                start: ip(start),
                end: ip(end),
                gateways: gw.map(|g| ip(g % size)).into_iter().collect(),
                exclude: vec![IpNet::new(ip(start), 32).unwrap()],
            };
            let filter = filter_prefix.map(|fp| IpNet::new(ip(filter_off), fp).unwrap().trunc());
            // Held addresses never include the network base or broadcast, as in a real store.
            let allocs: Vec<Allocation> = held
                .iter()
                .map(|h| h % size)
                .filter(|h| *h != 0 && *h != size - 1)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|h| alloc(ip(h)))
                .collect();
            prop_assert_eq!(
                run(&p, filter.as_ref(), all, &allocs),
                naive(&p, filter.as_ref(), all, &allocs)
            );
        }
    }
}
