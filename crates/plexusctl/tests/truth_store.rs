//! Issue 23, "the tools tell the truth" — the store and the command line: read-only
//! commands never create a store, `--store` takes the URL forms people type and names what
//! is wrong with a file that is no store, exit statuses follow one documented scheme, an
//! error says each thing once, and `--help` lists a subcommand's own options first.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::backends::backends;
use common::stored::{BLUE, claim, object};
use common::{Run, binary, run};

/// Every entry below `dir` with its size: what a command may have created or changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((path.clone(), meta.len()));
        if meta.is_dir() {
            out.extend(snapshot(&path));
        }
    }
    out.sort();
    out
}

/// plexusctl in `cwd` with a clean environment plus `env`.
fn ctl_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("PLEXUS_STORE")
        .env_remove("PLEXUSCTL_CONFIG")
        .env_remove("PLEXUS_CNI_CONF_DIR")
        .env_remove("PLEXUS_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, "")
}

#[test]
fn read_only_commands_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let nets = root.join("nets.yaml");
    std::fs::write(&nets, BLUE).unwrap();
    let valid = root.join("valid.json");
    std::fs::write(&valid, "[]").unwrap();
    let export = root.join("export.json");
    std::fs::write(&export, common::export_doc("blue", "10.9.0.0/24", &[])).unwrap();
    std::fs::create_dir(root.join("net.d")).unwrap();
    let (nets, valid, export) = (
        nets.to_str().unwrap(),
        valid.to_str().unwrap(),
        export.to_str().unwrap(),
    );
    let before = snapshot(root);
    for store in [root.join("missing.db"), root.join("no/such/dir/plexus.db")] {
        let store = store.to_str().unwrap();
        let url = format!("sqlite://{store}");
        for store_arg in [store, url.as_str()] {
            let read_only: Vec<Vec<&str>> = vec![
                vec!["network", "list"],
                vec!["network", "show", "blue"],
                vec!["network", "delete", "blue"],
                vec!["showalloc", "blue"],
                vec!["usage"],
                vec!["check"],
                vec!["export"],
                vec!["why", "10.9.0.1"],
                vec!["why", "ns/pod"],
                vec!["gc", "blue", "--valid", valid, "--allow-empty"],
                vec!["gc", "blue", "--orphaned"],
            ];
            for args in read_only {
                let mut full = vec!["--store", store_arg, "--cni-conf-dir", "net.d"];
                full.extend(&args);
                let out = ctl_in(root, &[], &full);
                let err = out.fails(2);
                assert!(
                    err.contains(store) && err.contains("does not exist"),
                    "{args:?} names the store: {out:#?}"
                );
                assert_eq!(
                    snapshot(root),
                    before,
                    "{store_arg} {args:?} changed the filesystem"
                );
            }
            // Dry runs of writers answer without creating the store either.
            for args in [
                vec!["network", "create", "--dry-run", "-f", nets],
                vec!["network", "apply", "--dry-run", "-f", nets],
                vec!["import", "--dry-run", export],
            ] {
                let mut full = vec!["--store", store_arg];
                full.extend(&args);
                ctl_in(root, &[], &full).ok();
                assert_eq!(
                    snapshot(root),
                    before,
                    "{store_arg} {args:?} changed the filesystem"
                );
            }
        }
    }
    // No --store: the default database is not created by a read-only command either.
    let default = Path::new(plexus_store::DEFAULT_SQLITE_PATH);
    if !default.exists() {
        let out = ctl_in(root, &[], &["showalloc", "blue"]);
        assert!(out.fails(2).contains("does not exist"), "{out:#?}");
        assert!(!default.exists(), "showalloc created {}", default.display());
        assert!(
            !default.parent().unwrap().exists() || default.parent().unwrap().read_dir().is_ok()
        );
    }
    // A write creates it.
    let db = root.join("new/plexus.db");
    let out = ctl_in(
        root,
        &[],
        &[
            "--store",
            db.to_str().unwrap(),
            "network",
            "create",
            "-f",
            nets,
        ],
    );
    assert!(out.ok().contains("created"), "{out:#?}");
    assert!(db.exists());
}

#[test]
fn store_urls_work_and_files_that_are_no_store_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let nets = root.join("nets.yaml");
    std::fs::write(&nets, BLUE).unwrap();
    let nets = nets.to_str().unwrap();
    let db = root.join("p.db");
    let url = format!("sqlite://{}", db.display());
    ctl_in(
        root,
        &[],
        &["--store", &url, "network", "create", "-f", nets],
    )
    .ok();
    assert!(db.exists(), "sqlite:///abs is the file /abs");
    assert!(!root.join("sqlite:").exists(), "no ./sqlite: directory");
    let out = ctl_in(root, &[], &["--store", "sqlite:p.db", "network", "list"]);
    assert!(
        out.ok().contains("blue"),
        "sqlite:rel is relative: {out:#?}"
    );
    let out = ctl_in(root, &[], &["--store", "sqlite://p.db", "network", "list"]);
    assert!(out.ok().contains("blue"), "{out:#?}");

    // A directory says so, not something about its parent.
    let out = ctl_in(
        root,
        &[],
        &["--store", root.to_str().unwrap(), "network", "list"],
    );
    assert!(out.fails(2).contains("is a directory"), "{out:#?}");
    let out = ctl_in(
        root,
        &[],
        &[
            "--store",
            root.to_str().unwrap(),
            "network",
            "create",
            "-f",
            nets,
        ],
    );
    assert!(out.fails(2).contains("is a directory"), "{out:#?}");
    // An export or a network file is no store, whatever its name.
    let export = root.join("backup.json");
    ctl_in(
        root,
        &[],
        &["--store", &url, "export", "-f", export.to_str().unwrap()],
    )
    .ok();
    let renamed = root.join("backup.db");
    std::fs::copy(&export, &renamed).unwrap();
    for file in [&export, &renamed] {
        let out = ctl_in(
            root,
            &[],
            &["--store", file.to_str().unwrap(), "network", "list"],
        );
        let err = out.fails(2);
        assert!(
            err.contains("PlexusExport document, not a store") && err.contains("plexusctl import"),
            "{out:#?}"
        );
    }
    let out = ctl_in(root, &[], &["--store", nets, "network", "list"]);
    assert!(
        out.fails(2)
            .contains("ClusterNetwork document, not a store"),
        "{out:#?}"
    );
    // Schemes that are no store are refused with the forms that work.
    let out = ctl_in(root, &[], &["--store", "mysql://db/x", "network", "list"]);
    assert!(out.fails(2).contains("postgres://"), "{out:#?}");
    let out = ctl_in(
        root,
        &[],
        &["--store", "postgres://u:url-s3cret@db/x", "network", "list"],
    );
    let err = out.fails(2);
    assert!(
        err.contains("password_file") && !err.contains("url-s3cret"),
        "{out:#?}"
    );

    // PostgreSQL and etcd by URL, under scripts/with-servers.
    for b in backends("truth_urls") {
        let store = b.store_json();
        let url = match b.label {
            "postgres" => format!(
                "postgres://{}@{}:{}/{}?sslmode=disable&password_file={}",
                store["user"].as_str().unwrap(),
                store["host"].as_str().unwrap(),
                store["port"],
                store["dbname"].as_str().unwrap(),
                store["password_file"].as_str().unwrap()
            ),
            "etcd" => {
                let hosts: Vec<&str> = store["endpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().trim_start_matches("http://"))
                    .collect();
                format!(
                    "etcd://{}{}",
                    hosts.join(","),
                    store["prefix"].as_str().unwrap()
                )
            }
            _ => continue,
        };
        let file = b.file("blue.yaml", BLUE);
        b.ctl(&["network", "create", "-f", file.to_str().unwrap()])
            .ok();
        let out = ctl_in(
            root,
            &[],
            &["--store", &url, "-o", "json", "network", "list"],
        );
        assert!(
            out.ok().contains("\"blue\""),
            "{}: {url}: {out:#?}",
            b.label
        );
    }
}

#[test]
fn exit_statuses_follow_one_documented_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let db = root.join("p.db");
    let store = db.to_str().unwrap();
    let nets = root.join("nets.yaml");
    std::fs::write(&nets, BLUE).unwrap();
    let nets = nets.to_str().unwrap();
    let broken = root.join("broken.yaml");
    std::fs::write(
        &broken,
        BLUE.replace("cidr: 10.91.0.0/24", "cidr: 10.91.0.0/33"),
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let man = ctl_in(root, &[], &["man"]);
    let page = man.ok();
    let section = page
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no EXIT STATUS section"));
    for code in ["0", "1", "2", "3"] {
        assert!(section.contains(&format!("\\fB{code}\\fR")), "{section}");
    }
    assert!(
        page.contains(".SH STORE") && page.contains("postgres://"),
        "store forms"
    );
    let help = ctl_in(root, &[], &["--help"]);
    assert!(help.ok().contains("Exit status:"), "{help:#?}");
    // The README's plexusctl section states the same scheme and the store forms.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split("## plexusctl").nth(1).unwrap();
    for (code, words) in [
        ("0", "success"),
        ("1", "problems found"),
        ("2", "the command could not run"),
        ("3", "the store is unreachable"),
    ] {
        assert!(
            section.contains(&format!("| {code} | {words}")),
            "README: status {code}"
        );
    }
    for form in ["sqlite:///", "postgres://", "etcd://"] {
        assert!(section.contains(form), "README: {form}");
    }

    let s = ["--store", store];
    let code = |args: &[&str]| ctl_in(root, &[], &[&s[..], args].concat()).code;
    assert_eq!(code(&["network", "create", "-f", nets]), 0);
    claim(
        &common::stored::sqlite(&db),
        "blue",
        &object(BLUE),
        &["c1"],
        "n",
    );
    // 1: the answer is "problems found".
    assert_eq!(code(&["network", "validate", "-f", broken]), 1);
    assert_eq!(code(&["network", "create", "-f", broken]), 1);
    assert_eq!(
        code(&["network", "create", "-f", nets]),
        1,
        "exists already"
    );
    assert_eq!(code(&["network", "delete", "blue"]), 1, "in use");
    ctl_in(
        root,
        &[],
        &[&s[..], &["network", "delete", "blue", "--force"]].concat(),
    )
    .ok();
    assert_eq!(code(&["check"]), 1);
    // 2: the command could not run.
    assert_eq!(code(&["showalloc", "nosuch"]), 2);
    assert_eq!(code(&["network", "validate", "-f", "/nonexistent.yaml"]), 2);
    assert_eq!(code(&["--bogus-flag"]), 2);
    assert_eq!(
        ctl_in(root, &[], &["--store", "/nonexistent/p.db", "check"]).code,
        2
    );
    // 3: the store cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let etcd = format!("etcd://127.0.0.1:{port}?timeout_ms=500");
    let out = ctl_in(root, &[], &["--store", &etcd, "network", "list"]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "names the endpoint: {out:#?}"
    );
}

#[test]
fn errors_say_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let db = root.join("p.db");
    let store = db.to_str().unwrap();
    let nets = root.join("nets.yaml");
    std::fs::write(&nets, BLUE).unwrap();
    ctl_in(
        root,
        &[],
        &[
            "--store",
            store,
            "network",
            "create",
            "-f",
            nets.to_str().unwrap(),
        ],
    )
    .ok();
    let failing: Vec<Vec<&str>> = vec![
        vec![
            "--store",
            store,
            "network",
            "validate",
            "-f",
            "/nonexistent.yaml",
        ],
        vec!["--store", store, "import", "/nonexistent.yaml"],
        vec![
            "--store",
            store,
            "gc",
            "blue",
            "--valid",
            "/nonexistent.json",
        ],
        vec!["--store", store, "export", "-f", "/nonexistent/dir/x.json"],
        vec!["--store", "", "network", "list"],
        vec!["--store", "/nonexistent/p.db", "network", "list"],
        vec!["--config", "/nonexistent.yaml", "network", "list"],
    ];
    for args in failing {
        let out = ctl_in(root, &[], &args);
        assert_ne!(out.code, 0, "{args:?}");
        let line = out.stderr.trim();
        assert!(line.starts_with("plexusctl: "), "{args:?}: {out:#?}");
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                part.len() < 12 || !parts[i + 1..].contains(part),
                "{args:?} says {part:?} twice: {line}"
            );
        }
        assert!(!line.contains(": :"), "{args:?}: {line}");
    }
}

#[test]
fn help_lists_a_subcommands_own_options_first_and_env_never_looks_required() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let help = ctl_in(root, &[], &["showalloc", "--help"]);
    let text = help.ok();
    let own = text.find("--ipv6").unwrap();
    let heading = text
        .find("Global options:")
        .unwrap_or_else(|| panic!("{text}"));
    let store = text.find("--store <STORE>").unwrap();
    assert!(own < heading && heading < store, "{text}");
    let store_env = [
        ("PLEXUS_STORE", "/tmp/plexus-test.db"),
        ("PLEXUSCTL_CONFIG", "/x.yaml"),
    ];
    for args in [vec!["showalloc"], vec!["gc"], vec!["network", "show"]] {
        let out = ctl_in(root, &store_env, &args);
        let err = out.fails(2);
        let usage = err
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_else(|| panic!("{out:#?}"));
        assert!(
            !usage.contains("--store") && !usage.contains("--config"),
            "{args:?}: {usage}"
        );
    }
    // The variables still work.
    let db = root.join("p.db");
    let nets = root.join("nets.yaml");
    std::fs::write(&nets, BLUE).unwrap();
    let env = [("PLEXUS_STORE", db.to_str().unwrap())];
    ctl_in(
        root,
        &env,
        &["network", "create", "-f", nets.to_str().unwrap()],
    )
    .ok();
    assert!(
        ctl_in(root, &env, &["network", "list"])
            .ok()
            .contains("blue")
    );
}
