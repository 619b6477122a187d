//! Runs every conformance check against [`MemoryStore`] and [`SqliteStore`], and proves
//! that every backend of the crate runs every check of the list.

use std::collections::{BTreeMap, BTreeSet};

use super::list::{catch_panic, conformance_tests};
use super::*;
use crate::{MemoryStore, SqliteConfig, SqliteStore};

/// The modules that expand `conformance_tests!`, one per backend, layout or wrapper. A new
/// backend is added here as well as given its module.
const BACKEND_MODULES: &[&str] = &[
    "conformance::tests::memory",
    "conformance::tests::sqlite",
    "etcd::tests::conformance",
    "postgres::server_tests::conformance",
    "postgres::server_tests::conformance_ips_table",
    "remote::tests::conformance",
];

mod memory {
    use super::*;

    const MEMORY: Backend = Backend {
        name: "memory",
        lacks: &[],
        fresh: |_| Some(Fresh::one(MemoryStore::new())),
    };

    conformance_tests!(MEMORY);
}

mod sqlite {
    use super::*;

    /// A fresh SQLite file in its own temporary directory.
    fn fresh(check: &str) -> Option<Fresh> {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&SqliteConfig::new(dir.path().join(format!("{check}.db")))).unwrap();
        Some(Fresh {
            stores: vec![Box::new(store)],
            guard: Box::new(dir),
        })
    }

    const SQLITE: Backend = Backend {
        name: "sqlite",
        lacks: &[],
        fresh,
    };

    conformance_tests!(SQLITE);
}

#[tokio::test]
async fn history_is_bounded_in_memory() {
    history_is_bounded(&MemoryStore::with_history_limit(5), 5).await;
}

#[tokio::test]
async fn history_is_bounded_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::new(dir.path().join("bounded.db"));
    cfg.history_limit = 5;
    history_is_bounded(&SqliteStore::open(&cfg).unwrap(), 5).await;
}

/// The tests of this binary, by module: `a::b::test` is `test` in `a::b`.
fn tests_by_module() -> BTreeMap<String, BTreeSet<String>> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(&exe)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap_or_else(|e| panic!("{} --list: {e}", exe.display()));
    assert!(out.status.success(), "{} --list failed", exe.display());
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(path) = line.strip_suffix(": test") else {
            continue;
        };
        if let Some((module, test)) = path.rsplit_once("::") {
            modules
                .entry(module.to_owned())
                .or_default()
                .insert(test.to_owned());
        }
    }
    modules
}

/// Every backend module holds one test per check of the list, no more, no fewer, and no
/// other module runs a check under its name (a hand-kept list of some checks).
#[test]
fn every_backend_runs_every_check() {
    let checks: BTreeSet<String> = CHECKS.iter().map(|c| c.name.to_owned()).collect();
    assert_eq!(checks.len(), CHECKS.len(), "a check listed twice");
    let modules = tests_by_module();
    for backend in BACKEND_MODULES {
        let tests = modules.get(*backend).cloned().unwrap_or_default();
        let missing: Vec<_> = checks.difference(&tests).collect();
        let extra: Vec<_> = tests.difference(&checks).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{backend} runs {} tests for {} checks; missing {missing:?}, not checks {extra:?}",
            tests.len(),
            CHECKS.len()
        );
    }
    for (module, tests) in &modules {
        let named_after_checks: Vec<_> = tests.intersection(&checks).collect();
        assert!(
            named_after_checks.is_empty() || BACKEND_MODULES.contains(&module.as_str()),
            "{module} runs {named_after_checks:?} by hand: expand conformance_tests! there \
             and add it to BACKEND_MODULES"
        );
    }
}

/// Every check function of the suite (`pub async fn NAME(store: &dyn Store) {` in
/// `src/conformance/`) is in the list, and the list names no other.
#[test]
fn every_check_function_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conformance");
    let mut defined = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(name) = line
                .strip_prefix("pub async fn ")
                .and_then(|rest| rest.strip_suffix("(store: &dyn Store) {"))
            {
                defined.insert(name.to_owned());
            }
        }
    }
    let listed: BTreeSet<String> = CHECKS.iter().map(|c| c.name.to_owned()).collect();
    let unlisted: Vec<_> = defined.difference(&listed).collect();
    let undefined: Vec<_> = listed.difference(&defined).collect();
    assert!(
        unlisted.is_empty() && undefined.is_empty(),
        "add {unlisted:?} to with_every_check! in conformance/list.rs; {undefined:?} are \
         listed there but not found as `pub async fn NAME(store: &dyn Store) {{`"
    );
}

/// A backend listed as lacking what a check needs must refuse it with the lack's words:
/// a check that passes there anyway, or fails for another reason, fails its test.
#[tokio::test]
async fn a_listed_lack_must_be_real() {
    const PRETENDER: Backend = Backend {
        name: "pretender",
        lacks: &[Lack {
            capability: Capability::AllocationDetails,
            reason: "pretends to keep no owner details",
            refusal: Refusal::Says("the words of a refusal"),
        }],
        fresh: |_| Some(Fresh::one(MemoryStore::new())),
    };
    // owner_details_are_kept needs AllocationDetails, and the memory store has them: the check
    // passes, so the listed lack is false and the backend's test fails.
    let outcome = catch_panic(Box::pin(run_check(&PRETENDER, "owner_details_are_kept"))).await;
    let message = outcome.expect_err("a false lack must fail the test");
    assert!(message.contains("passes on pretender"), "{message}");
    // Without the lack, the same check passes there.
    const HONEST: Backend = Backend {
        name: "honest",
        lacks: &[],
        fresh: PRETENDER.fresh,
    };
    run_check(&HONEST, "owner_details_are_kept").await;
}
