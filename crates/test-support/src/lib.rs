//! Dev-only helpers shared by the tests of plexus' crates (never published, only ever a
//! dev-dependency):
//!
//! - [`privileged`]: the privileged-test gate (`PLEXUS_REQUIRE_PRIVILEGED`), unique names,
//!   running commands, named network namespaces and host links removed on drop;
//! - [`servers`]: the servers gate (`PLEXUS_REQUIRE_SERVERS`), the shared PostgreSQL and etcd
//!   of `scripts/with-servers`, and private servers a test may stop, pause and restart;
//! - `kube` (feature `kube`): the test cluster of `scripts/with-kube` (`PLEXUS_REQUIRE_KUBE`):
//!   its client, CRDs, namespaces and pods.
//!
//! Every gate prints `SKIPPED <test>: <reason>` on stderr and lets the test pass, unless its
//! `PLEXUS_REQUIRE_…=1` variable is set (as CI does), where the skip is a failure.

#[cfg(feature = "kube")]
pub mod kube;
pub mod privileged;
pub mod servers;
