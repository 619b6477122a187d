//! Which networks exist: those with a definition (the [`Catalog`]) and those the store
//! still holds addresses of without one ("orphaned": after `network delete --force`, or a
//! definition file taken away). A name that is neither is an error suggesting the nearest
//! known name, the way a mistyped subcommand is; it never reads as "nothing here".

use plexus_store::Store;

use crate::error::CtlResult;
use crate::netdef::{Catalog, NetworkDef};

/// What a network name refers to.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    /// A defined network.
    Defined(&'a NetworkDef),
    /// No definition, but the store holds addresses of it.
    Orphaned,
}

/// Looks `name` up among the defined networks, then among those the store holds addresses
/// of; an unknown name is [`crate::error::CtlError::UnknownNetwork`] with the nearest known name.
pub async fn find<'a>(catalog: &'a Catalog, store: &dyn Store, name: &str) -> CtlResult<Found<'a>> {
    if let Some(def) = catalog.get(name) {
        return Ok(Found::Defined(def));
    }
    let held = store.allocated_networks().await?;
    if held.iter().any(|n| n == name) {
        return Ok(Found::Orphaned);
    }
    Err(catalog.unknown(name, &held))
}

/// Checks that `name` is a defined network or one the store holds addresses of.
pub async fn require(catalog: &Catalog, store: &dyn Store, name: &str) -> CtlResult<()> {
    find(catalog, store, name).await.map(|_| ())
}

/// The networks the store holds addresses of that no definition names, by name.
pub async fn orphans(catalog: &Catalog, store: &dyn Store) -> CtlResult<Vec<String>> {
    Ok(store
        .allocated_networks()
        .await?
        .into_iter()
        .filter(|n| catalog.get(n).is_none())
        .collect())
}

/// The candidate closest to `name`, if one is close enough to be a likely typo: within an
/// edit distance (a swap of two neighbours counting once) of a third of the name, at least 2.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// adjacent characters, each costing one.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn typos_find_their_network_and_strangers_find_none() {
        let names = ["blue", "red", "prod/internal", "green"];
        assert_eq!(nearest("bleu", names), Some("blue"));
        assert_eq!(nearest("bule", names), Some("blue"));
        assert_eq!(nearest("rde", names), Some("red"));
        assert_eq!(nearest("prod/internl", names), Some("prod/internal"));
        assert_eq!(nearest("nosuch", names), None);
        assert_eq!(
            nearest("blue", ["blue"]),
            None,
            "never suggests the name itself"
        );
        assert_eq!(nearest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn distance_counts_swaps_once() {
        assert_eq!(distance("bleu", "blue"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    proptest! {
        #[test]
        fn distance_is_a_symmetric_bound(a in "[a-c]{0,6}", b in "[a-c]{0,6}") {
            let d = distance(&a, &b);
            prop_assert_eq!(d, distance(&b, &a));
            prop_assert!(d <= a.chars().count().max(b.chars().count()));
            prop_assert_eq!(d == 0, a == b);
        }
    }
}
