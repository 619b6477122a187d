//! `docs/errors.md` against the code constants: every code of `plexus_cni::codes` (the
//! specification's and plexus' own) is documented exactly once, with its number, and the
//! document lists no code that does not exist.
//!
//! A code row is a table row whose first cell is a number and whose second cell is the
//! constant's name in backticks: ``| 100 | `plexus::POOL_EXHAUSTED` | ... |``.

use std::collections::BTreeMap;

use plexus_cni::codes::{self, Code};

/// The document as committed.
const ERRORS_MD: &str = include_str!("../../../docs/errors.md");

/// Every code row of `doc`: (number, constant name, line number).
fn code_rows(doc: &str) -> Vec<(u32, String, usize)> {
    doc.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let number = cells.first()?.trim().parse::<u32>().ok()?;
            let name = cells.get(1).map_or("", |c| c.trim());
            Some((number, name.trim_matches('`').to_string(), n + 1))
        })
        .collect()
}

/// What is wrong between `doc` and `defined`, one line each; empty when they agree.
fn mismatches(doc: &str, defined: &[Code]) -> Vec<String> {
    let by_name: BTreeMap<&str, u32> = defined.iter().map(|c| (c.name, c.value)).collect();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (number, name, line) in code_rows(doc) {
        match by_name.get(name.as_str()) {
            None => problems.push(format!(
                "line {line}: code {number} `{name}` is documented but no such constant exists"
            )),
            Some(&value) if value != number => problems.push(format!(
                "line {line}: `{name}` is documented as {number} but is {value}"
            )),
            Some(_) => {}
        }
        if let Some(first) = seen.insert(name.clone(), line) {
            problems.push(format!(
                "line {line}: `{name}` is documented twice (first on line {first})"
            ));
        }
    }
    for code in defined {
        if !seen.contains_key(code.name) {
            problems.push(format!(
                "`{}` ({}) is not documented",
                code.name, code.value
            ));
        }
    }
    problems
}

fn every_code() -> Vec<Code> {
    codes::SPEC
        .iter()
        .chain(codes::plexus::ALL)
        .copied()
        .collect()
}

#[test]
fn errors_md_documents_every_code_with_its_number() {
    let problems = mismatches(ERRORS_MD, &every_code());
    assert!(
        problems.is_empty(),
        "docs/errors.md disagrees with plexus_cni::codes:\n{}",
        problems.join("\n")
    );
    assert_eq!(code_rows(ERRORS_MD).len(), every_code().len());
}

#[test]
fn the_comparison_catches_each_kind_of_drift() {
    let defined = [
        Code {
            name: "INVALID_CONFIG",
            value: 7,
        },
        Code {
            name: "plexus::POOL_EXHAUSTED",
            value: 100,
        },
    ];
    let good = "| code | constant | meaning |\n|---|---|---|\n\
                | 7 | `INVALID_CONFIG` | bad config |\n\
                | 100 | `plexus::POOL_EXHAUSTED` | full |\n";
    assert_eq!(mismatches(good, &defined), Vec::<String>::new());

    let missing = "| 7 | `INVALID_CONFIG` | bad config |\n";
    let problems = mismatches(missing, &defined);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("`plexus::POOL_EXHAUSTED` (100) is not documented"));

    let renumbered = "| 7 | `INVALID_CONFIG` | x |\n| 101 | `plexus::POOL_EXHAUSTED` | x |\n";
    let problems = mismatches(renumbered, &defined);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("documented as 101 but is 100"));

    let extra = format!("{good}| 120 | `plexus::GONE` | removed long ago |\n");
    let problems = mismatches(&extra, &defined);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("code 120 `plexus::GONE` is documented but no such"));

    let unnamed = format!("{good}| 999 | internal error |\n");
    let problems = mismatches(&unnamed, &defined);
    assert!(
        problems[0].contains("code 999 `internal error`"),
        "{problems:?}"
    );

    let twice = format!("{good}| 7 | `INVALID_CONFIG` | again |\n");
    let problems = mismatches(&twice, &defined);
    assert!(problems[0].contains("documented twice"), "{problems:?}");
}
