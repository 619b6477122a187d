//! THE list of conformance checks, and how a backend runs it.
//!
//! `with_every_check!` is the one place that names the checks: [`CHECKS`] (what
//! [`super::run_all`] runs) and every backend's test module (`conformance_tests!`, one
//! `#[tokio::test]` per check) are both expanded from it, so adding a check is one line
//! there. A backend that cannot do what a check needs says so in its [`Backend::lacks`]
//! (the capability, why, and how the check fails there); its test of that check then
//! proves the failure instead of skipping it, and fails once the backend can do it after
//! all.
//! `conformance::tests::every_backend_runs_every_check` counts the generated tests of each
//! backend in the test binary against [`CHECKS`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Store;

/// The future of one check on one store.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// What a check needs of a backend beyond the [`Store`] trait's plain contract; only a
/// backend with a documented limitation lacks one (today: PostgreSQL's `ips-table`
/// layout, `docs/stores.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Several networks in one store (also to read one while another holds addresses).
    ManyNetworks,
    /// More than one address per container: dual-stack, several interfaces or range sets.
    ManyAddressesPerContainer,
    /// Per-node blocks.
    Blocks,
    /// Stored network definitions and the history of claims and releases.
    RecordsAndHistory,
    /// An allocation reads back with the range set id, owner and node it was claimed with.
    AllocationDetails,
}

/// One conformance check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// The check function's name.
    pub name: &'static str,
    /// What it needs of a backend.
    pub needs: &'static [Capability],
    /// Runs it on a fresh, empty store; panics with what differed.
    pub run: for<'a> fn(&'a dyn Store) -> CheckFuture<'a>,
}

/// How a check that needs what a backend lacks fails there.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// The backend refuses the call with an error whose message holds these words.
    Says(&'static str),
    /// The backend accepts the calls but answers otherwise than the check expects (the
    /// check's own assertion fails).
    Differs,
}

/// A capability a backend lacks: why, and how checks that need it fail there.
#[derive(Debug, Clone, Copy)]
pub struct Lack {
    /// The capability.
    pub capability: Capability,
    /// Why the backend lacks it, for the reader of the list.
    pub reason: &'static str,
    /// How a check that needs it fails there.
    pub refusal: Refusal,
}

impl Lack {
    /// Whether a check's panic `message` is this lack showing.
    fn explains(&self, message: &str) -> bool {
        match self.refusal {
            Refusal::Says(words) => message.contains(words),
            Refusal::Differs => true,
        }
    }
}

/// Fresh, empty stores for one check, and what must outlive them (the fields drop in
/// this order: the stores, then the guard).
pub struct Fresh {
    /// The check runs on each of them (e.g. a new connection and a warm pool).
    pub stores: Vec<Box<dyn Store>>,
    /// Dropped after the check: temporary directories, a running agent.
    pub guard: Box<dyn std::any::Any>,
}

impl Fresh {
    /// One store that needs nothing kept alive.
    pub fn one(store: impl Store + 'static) -> Fresh {
        Fresh {
            stores: vec![Box::new(store)],
            guard: Box::new(()),
        }
    }
}

/// A backend (or a layout or wrapper of one) the suite runs on.
pub struct Backend {
    /// Its name in messages.
    pub name: &'static str,
    /// What it cannot do, each with the reason and its refusal.
    pub lacks: &'static [Lack],
    /// Fresh stores for the check named, or `None` when its server is not configured
    /// (after printing `SKIPPED`; under `PLEXUS_REQUIRE_SERVERS=1` it panics instead).
    pub fresh: fn(check: &str) -> Option<Fresh>,
}

impl Backend {
    /// What of `check`'s needs this backend lacks.
    pub fn lacking(&self, check: &Check) -> Vec<&'static Lack> {
        self.lacks
            .iter()
            .filter(|lack| check.needs.contains(&lack.capability))
            .collect()
    }
}

/// Runs the check named `name` on fresh stores of `backend`: it must pass, or, when the
/// backend lacks something the check needs, fail there as that lack says ([`Refusal`]).
pub async fn run_check(backend: &Backend, name: &str) {
    let check = CHECKS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} is not in conformance::CHECKS"));
    let Some(fresh) = (backend.fresh)(name) else {
        return;
    };
    assert!(
        !fresh.stores.is_empty(),
        "{}: no store to run on",
        backend.name
    );
    let lacking = backend.lacking(check);
    for store in &fresh.stores {
        if lacking.is_empty() {
            (check.run)(&**store).await;
            continue;
        }
        let refused = catch_panic((check.run)(&**store)).await;
        let reasons: Vec<&str> = lacking.iter().map(|l| l.reason).collect();
        match refused {
            Ok(()) => panic!(
                "{name} passes on {}, which is listed as lacking what it needs ({}): drop \
                 the lack or the need",
                backend.name,
                reasons.join("; ")
            ),
            Err(message) => assert!(
                lacking.iter().any(|l| l.explains(&message)),
                "{name} on {} failed, but not with the refusal of what it lacks ({}): \
                 {message}",
                backend.name,
                reasons.join("; ")
            ),
        }
    }
}

/// Runs `future` to its end; a panic while polling it becomes `Err(its message)`.
pub(crate) async fn catch_panic(future: CheckFuture<'_>) -> Result<(), String> {
    CatchUnwind(future).await
}

/// Turns a panic while polling the inner future into `Err(message)`.
struct CatchUnwind<'a>(CheckFuture<'a>);

impl Future for CatchUnwind<'_> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(payload) => Poll::Ready(Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned()))),
        }
    }
}

/// Calls `$then! { ($args) name => [needs], ... }` with every check: THE list. A new check
/// is one line here, `name => [Capability, ...],`, for its function
/// `pub async fn name(store: &dyn Store) {` in a module of `conformance` (a test finds
/// every such function and fails on one missing here). The needs are what it uses of the
/// [`Capability`]s (none for most), so that a backend lacking one proves the check cannot
/// pass there instead of skipping it.
macro_rules! with_every_check {
    ([$($then:tt)*] $args:tt) => {
        $($then)*! { $args
            claim_then_release => [ManyNetworks, AllocationDetails],
            reclaim_is_idempotent => [ManyAddressesPerContainer],
            static_claim => [AllocationDetails],
            static_conflict_names_holder => [ManyNetworks],
            dynamic_skips_held_addresses => [],
            multi_claim_is_atomic => [ManyAddressesPerContainer],
            exhaustion_at_exact_capacity => [],
            next_fit_does_not_reuse_at_once => [],
            networks_are_independent => [ManyNetworks],
            gc_releases_only_stale_of_one_network => [ManyNetworks, ManyAddressesPerContainer],
            gc_of_a_node_spares_other_nodes => [],
            gc_scoped_to_range_sets => [AllocationDetails],
            gc_of_a_node_releases_only_its_blocks => [Blocks],
            count_between_counts_a_window => [ManyNetworks],
            probe_succeeds => [],
            blocks_two_nodes_get_different_blocks =>
                [Blocks, ManyNetworks, ManyAddressesPerContainer],
            blocks_fill_then_claim_another => [Blocks],
            blocks_borrow_when_all_claimed => [Blocks],
            blocks_released_only_after_grace => [Blocks],
            blocks_never_released_while_holding => [Blocks],
            owner_details_are_kept => [AllocationDetails, ManyAddressesPerContainer],
            list_between_pages_in_order => [ManyNetworks, ManyAddressesPerContainer],
            networks_are_stored_with_revisions => [RecordsAndHistory],
            allocated_networks_outlive_their_definitions =>
                [ManyNetworks, ManyAddressesPerContainer, RecordsAndHistory],
            history_records_claims_and_releases => [RecordsAndHistory],
            history_is_atomic_with_claims => [RecordsAndHistory, ManyAddressesPerContainer],
            recorded_history_is_kept => [RecordsAndHistory, ManyNetworks],
            claim_batch_answers_each_request => [RecordsAndHistory],
            claim_batch_with_blocks_until_exhaustion => [Blocks],
        }
    };
}
// Used by name (through this path) only by the test modules' `conformance_tests!`.
#[cfg(test)]
pub(crate) use with_every_check;

/// Expands [`CHECKS`] from the list.
macro_rules! check_table {
    (() $($name:ident => [$($need:ident),* $(,)?]),* $(,)?) => {
        /// Every conformance check, in the order [`super::run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(
            Check {
                name: stringify!($name),
                needs: &[$(Capability::$need),*],
                run: {
                    fn run(store: &dyn Store) -> CheckFuture<'_> {
                        Box::pin(super::$name(store))
                    }
                    run
                },
            },
        )*];
    };
}

with_every_check!([check_table]());

#[cfg(test)]
/// One `#[tokio::test]` per check of the list, each running it on fresh stores of the
/// [`Backend`] given (an expression). Expand it in a module of its own: the tests are named
/// after the checks.
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance::list::with_every_check!([
            $crate::conformance::list::conformance_test_fns
        ]($backend));
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

#[cfg(test)]
/// The tests of [`conformance_tests!`].
macro_rules! conformance_test_fns {
    (($backend:expr) $($name:ident => [$($need:ident),* $(,)?]),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::list::run_check(&$backend, stringify!($name)).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use conformance_test_fns;
