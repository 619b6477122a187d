//! whereabouts' storage keys in an `ipam` section, and what whereabouts left in etcd.
//!
//! - [`datastore`]: which plexus store a section names — its `store` object, else the
//!   plexus etcd store built from whereabouts' `datastore` / `etcd_*` keys, else the
//!   node-local SQLite default; whereabouts' Kubernetes datastore is refused (plexus has no
//!   Kubernetes store yet, and a node-local file would hand out one address on two nodes).
//! - [`flatfile`]: whereabouts' `whereabouts.conf`, whose settings fill what a
//!   whereabouts-style section leaves empty (the datastore keys, typically).
//! - [`reservations`]: the ranges whereabouts ≤ 0.5.4 kept in etcd (one key per range,
//!   `/whereabouts/<range>`, lines of `<ip> <container id>`), which a claim requires
//!   absent until `plexusctl import --from whereabouts-etcd` took them over.

mod datastore;
mod flatfile;
mod reservations;

pub use self::datastore::{
    DATASTORE_KEYS, SectionStore, StoreOrigin, etcd_of_section, names_kubernetes, store_of_section,
};
pub use self::flatfile::{
    FLAT_FILE_DIRS, FLAT_FILE_DIRS_ENV, FLAT_FILE_KEYS, FLAT_FILE_NAME, Merged, find_flat_file,
    flat_file_dirs, is_whereabouts_style, merge_flat_file, read_flat_file, with_flat_file,
};
pub use self::reservations::{
    LEGACY_PREFIX, RETIRED_PREFIX, Reservation, ReservationError, key_range, not_imported,
    parse_reservations, range_keys, retired_key,
};
