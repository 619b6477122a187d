//! Which `plexus-ipam` binary the process-level tests run (shared by `common` and `fault`).

use std::path::PathBuf;

/// Path of the plugin binary under test: `PLEXUS_TEST_PLUGIN` when set (the release
/// build, which links against musl: `.ci/run` runs the process-level tests on it too),
/// else the one cargo built for these tests.
pub fn plugin_binary() -> PathBuf {
    match std::env::var_os("PLEXUS_TEST_PLUGIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_plexus-ipam")),
    }
}
