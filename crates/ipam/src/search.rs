//! Next-fit free-address search, driven window by window by the caller's store.
//!
//! The search never touches storage: it proposes a window `[lo, hi]` of candidate addresses,
//! the caller asks its store which addresses inside it are held, and [`FreeSearch::first_free`]
//! picks the first one that is not. Windows skip reserved and excluded stretches by
//! arithmetic, so the cost depends on how many addresses are held near the cursor, never on
//! the size of the pool.

use std::net::IpAddr;

use crate::addr::{Family, canonical, from_key, key};
use crate::range::RangeSet;

/// A contiguous stretch of one range, visited in ascending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    /// Index of the range in the set.
    range: usize,
    /// First key of the stretch.
    lo: u128,
    /// Last key of the stretch.
    hi: u128,
}

/// A next-fit walk over the allocatable addresses of a [`RangeSet`].
#[derive(Debug, Clone)]
pub struct FreeSearch<'a> {
    /// The set being searched.
    set: &'a RangeSet,
    /// Key of the last address handed out, if any.
    cursor: Option<u128>,
    /// Merged blocked spans (reserved, excluded) per range, sorted.
    blocked: Vec<Vec<(u128, u128)>>,
    /// The stretches to visit, in search order.
    pieces: Vec<Piece>,
    /// Index of the piece being visited.
    piece: usize,
    /// Next key to visit in the current piece; `None` once the piece is used up.
    next: Option<u128>,
    /// The window handed out last.
    last: Option<(u128, u128)>,
}

impl<'a> FreeSearch<'a> {
    /// Maximum number of addresses per window.
    pub const WINDOW: u128 = 1024;

    /// Start just after `cursor` (the last address handed out in this set, if any and if it
    /// lies within the start..end of one of its ranges); otherwise at the start of the first
    /// range. Visits every allocatable address of the set exactly once, in order, wrapping
    /// around at the end of the last range to the first range, and ends with the cursor.
    pub fn new(set: &'a RangeSet, cursor: Option<IpAddr>) -> Self {
        let family = set.family();
        let cursor = cursor
            .map(canonical)
            .filter(|ip| Family::of(*ip) == family)
            .map(key);
        let blocked = set.ranges.iter().map(|r| r.blocked_spans()).collect();
        let mut search = FreeSearch {
            set,
            cursor,
            blocked,
            pieces: Vec::new(),
            piece: 0,
            next: None,
            last: None,
        };
        search.plan(family.key_bounds());
        search
    }

    /// Restrict the search to `[lo, hi]` (e.g. a per-node address block), with the same
    /// wrap rules inside it. Bounds of the wrong family, or `lo > hi`, leave nothing to visit.
    pub fn within(mut self, lo: IpAddr, hi: IpAddr) -> Self {
        let (lo, hi) = (canonical(lo), canonical(hi));
        let family = self.set.family();
        let bounds = if Family::of(lo) == family && Family::of(hi) == family {
            (key(lo), key(hi))
        } else {
            (1, 0)
        };
        self.plan(bounds);
        self
    }

    /// Next window `[lo, hi]` (inclusive) to ask the store about, or `None` when the whole
    /// set has been visited. Windows hold only allocatable addresses of a single range.
    pub fn next_window(&mut self) -> Option<(IpAddr, IpAddr)> {
        loop {
            let piece = *self.pieces.get(self.piece)?;
            let Some(pos) = self.next else {
                self.advance_piece();
                continue;
            };
            let blocked = &self.blocked[piece.range];
            // First blocked span that ends at or after `pos`.
            let idx = blocked.partition_point(|&(_, hi)| hi < pos);
            let upcoming = blocked.get(idx).copied();
            if let Some((b_lo, b_hi)) = upcoming
                && b_lo <= pos
            {
                // Inside a blocked span: jump over it in one step.
                self.next = b_hi.checked_add(1).filter(|k| *k <= piece.hi);
                continue;
            }
            let mut end = piece.hi.min(pos.saturating_add(Self::WINDOW - 1));
            if let Some((b_lo, _)) = upcoming {
                // b_lo > pos here, so this cannot underflow.
                end = end.min(b_lo - 1);
            }
            self.next = end.checked_add(1).filter(|k| *k <= piece.hi);
            self.last = Some((pos, end));
            return Some((from_key(pos), from_key(end)));
        }
    }

    /// The first unheld address of the last window, in search order. `held` is what the
    /// store holds in that window, in any order; addresses outside the window are ignored.
    pub fn first_free(&self, held: &[IpAddr]) -> Option<IpAddr> {
        let (lo, hi) = self.last?;
        let family = self.set.family();
        let mut inside: Vec<u128> = held
            .iter()
            .map(|ip| canonical(*ip))
            .filter(|ip| Family::of(*ip) == family)
            .map(key)
            .filter(|k| (lo..=hi).contains(k))
            .collect();
        inside.sort_unstable();
        let mut candidate = lo;
        for k in inside {
            if k > candidate {
                break;
            }
            if k == candidate {
                candidate = candidate.checked_add(1)?;
            }
        }
        (candidate <= hi).then(|| from_key(candidate))
    }

    /// Lay out the stretches to visit inside `bounds`, rotated to start after the cursor.
    fn plan(&mut self, (b_lo, b_hi): (u128, u128)) {
        let segments: Vec<Piece> = self
            .set
            .ranges
            .iter()
            .enumerate()
            .filter_map(|(range, r)| {
                let lo = key(r.start).max(b_lo);
                let hi = key(r.end).min(b_hi);
                (lo <= hi && Family::of(r.start) == self.set.family()).then_some(Piece {
                    range,
                    lo,
                    hi,
                })
            })
            .collect();
        let at_cursor = self.cursor.and_then(|c| {
            segments
                .iter()
                .position(|s| (s.lo..=s.hi).contains(&c))
                .map(|i| (i, c))
        });
        self.pieces = match at_cursor {
            Some((i, c)) => {
                let seg = segments[i];
                let mut pieces = Vec::with_capacity(segments.len() + 1);
                if c < seg.hi {
                    pieces.push(Piece { lo: c + 1, ..seg });
                }
                pieces.extend_from_slice(&segments[i + 1..]);
                pieces.extend_from_slice(&segments[..i]);
                pieces.push(Piece { hi: c, ..seg });
                pieces
            }
            None => segments,
        };
        self.piece = 0;
        self.next = self.pieces.first().map(|p| p.lo);
        self.last = None;
    }

    /// Move on to the next stretch.
    fn advance_piece(&mut self) {
        self.piece += 1;
        self.next = self.pieces.get(self.piece).map(|p| p.lo);
    }
}

/// Run a [`FreeSearch`] against `held_between(lo, hi)`, which returns the held addresses in
/// `[lo, hi]`. Returns the first free address in next-fit order, or `None` when all are held.
pub fn find_free<E>(
    set: &RangeSet,
    cursor: Option<IpAddr>,
    mut held_between: impl FnMut(IpAddr, IpAddr) -> Result<Vec<IpAddr>, E>,
) -> Result<Option<IpAddr>, E> {
    let mut search = FreeSearch::new(set, cursor);
    while let Some((lo, hi)) = search.next_window() {
        let held = held_between(lo, hi)?;
        if let Some(ip) = search.first_free(&held) {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}
