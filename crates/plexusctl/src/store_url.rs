//! Store URLs as people type them: `sqlite:///var/lib/plexus/plexus.db`,
//! `postgres://user@host:5432/dbname?sslmode=disable`, `etcd://h1:2379,h2:2379/prefix`,
//! `https://h1:2379`. Each becomes the JSON `"store"` object the IPAM configuration would
//! hold, so one parser ([`plexus_store::StoreConfig::from_json`]) checks every key.
//!
//! A password in a URL is refused without being echoed: the command line is visible to
//! every user of the machine. Any other scheme is refused with the forms that work, so a
//! URL is never taken for a relative file name.

use serde_json::{Map, Value};

use crate::error::{CtlError, CtlResult};

/// The schemes accepted, for messages.
const SCHEMES: &str = "sqlite://, postgres://, postgresql://, etcd://, etcds://, http(s):// (etcd)";

/// The `"store"` object `text` stands for when it is a URL (`None` when it is not one: a
/// path or JSON).
pub fn parse(what: &str, text: &str) -> CtlResult<Option<Value>> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("sqlite:") {
        return sqlite(what, rest).map(Some);
    }
    let Some((scheme, rest)) = split_scheme(text) else {
        return Ok(None);
    };
    let bad = |reason: String| CtlError::invalid(what, reason);
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let mut object = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => postgres(what, rest)?,
        "etcd" => etcd(what, "http", rest)?,
        "etcds" => etcd(what, "https", rest)?,
        "http" | "https" => etcd(what, &scheme.to_ascii_lowercase(), rest)?,
        "file" => {
            return Err(bad(format!(
                "file:// is not a store URL; for a SQLite database give its path ({}) or \
                 sqlite://{}",
                decode(rest),
                decode(rest)
            )));
        }
        other => {
            return Err(bad(format!(
                "unsupported store URL scheme {other:?}; use {SCHEMES}, a database file, a \
                 store config file or inline JSON"
            )));
        }
    };
    if let Some(query) = query {
        add_query(what, &mut object, query)?;
    }
    Ok(Some(Value::Object(object)))
}

/// `scheme` and what follows `scheme://`, when `text` starts with a URL scheme.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// `sqlite:` followed by `//path` or `path`: `sqlite:///abs.db` is `/abs.db`,
/// `sqlite://rel.db` and `sqlite:rel.db` are relative to the working directory.
fn sqlite(what: &str, rest: &str) -> CtlResult<Value> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = decode(path);
    if path.is_empty() {
        return Err(CtlError::invalid(
            what,
            "sqlite:// names no database file (e.g. sqlite:///var/lib/plexus/plexus.db)",
        ));
    }
    let Some(query) = query else {
        return Ok(Value::String(path));
    };
    let mut object = Map::new();
    object.insert("type".into(), "sqlite".into());
    object.insert("path".into(), Value::String(path));
    add_query(what, &mut object, query)?;
    Ok(Value::Object(object))
}

/// `[user[:password]@]host[:port][/dbname]`.
fn postgres(what: &str, rest: &str) -> CtlResult<Map<String, Value>> {
    let bad = |reason: &str| CtlError::invalid(what, reason.to_string());
    let (authority, dbname) = match rest.split_once('/') {
        Some((authority, dbname)) => (authority, Some(dbname)),
        None => (rest, None),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    let mut object = Map::new();
    object.insert("type".into(), "postgres".into());
    if let Some(user) = user {
        if user.contains(':') {
            // Never echo it: what follows ':' is a password.
            return Err(bad(
                "a password in the URL is refused because the command line is visible to \
                 every user (ps, /proc/PID/cmdline); add password_file=/path to the URL, or \
                 pass --store a config file",
            ));
        }
        if !user.is_empty() {
            object.insert("user".into(), Value::String(decode(user)));
        }
    }
    let (host, port) = host_port(what, hostport)?;
    if host.is_empty() {
        return Err(bad(
            "the PostgreSQL URL names no host (postgres://user@host:5432/dbname)",
        ));
    }
    object.insert("host".into(), Value::String(host));
    if let Some(port) = port {
        object.insert("port".into(), Value::from(port));
    }
    if let Some(dbname) = dbname.map(decode).filter(|d| !d.is_empty()) {
        object.insert("dbname".into(), Value::String(dbname));
    }
    Ok(object)
}

/// `host[:port]` with an IPv6 host in brackets.
fn host_port(what: &str, text: &str) -> CtlResult<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| CtlError::invalid(what, format!("unclosed '[' in {text:?}")))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| CtlError::invalid(what, format!("port {p:?} is not a number")))
        })
        .transpose()?;
    Ok((decode(host), port))
}

/// `host:port[,host:port...][/prefix]` as etcd endpoints under `scheme`; an endpoint
/// after the first may repeat the scheme (`https://a:2379,https://b:2379`).
fn etcd(what: &str, scheme: &str, rest: &str) -> CtlResult<Map<String, Value>> {
    let mut hosts: Vec<&str> = rest
        .split(',')
        .map(|h| {
            h.trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://")
        })
        .collect();
    let mut prefix = None;
    if let Some(last) = hosts.last_mut()
        && let Some((host, path)) = last.split_once('/')
    {
        *last = host;
        prefix = Some(path);
    }
    if hosts.iter().any(|h| h.contains('@')) {
        return Err(CtlError::invalid(
            what,
            "credentials in an etcd URL are refused; add username=NAME&password_file=/path \
             to the URL, or pass --store a config file",
        ));
    }
    let endpoints: Vec<Value> = hosts
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| Value::String(format!("{scheme}://{h}")))
        .collect();
    if endpoints.is_empty() {
        return Err(CtlError::invalid(
            what,
            "the etcd URL names no endpoint (etcd://host:2379)",
        ));
    }
    let mut object = Map::new();
    object.insert("type".into(), "etcd".into());
    object.insert("endpoints".into(), Value::Array(endpoints));
    if let Some(prefix) = prefix.map(decode).filter(|p| !p.is_empty()) {
        let prefix = format!("/{}", prefix.trim_end_matches('/'));
        object.insert("prefix".into(), Value::String(prefix));
    }
    Ok(object)
}

/// `key=value&...` as keys of the store object; all-digit values become numbers.
fn add_query(what: &str, object: &mut Map<String, Value>, query: &str) -> CtlResult<()> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key);
        if key == "password" {
            return Err(CtlError::invalid(
                what,
                "a password in the URL is refused because the command line is visible to \
                 every user (ps, /proc/PID/cmdline); use password_file=/path instead",
            ));
        }
        let value = decode(value);
        let value = match value.parse::<u64>() {
            Ok(n) if !value.starts_with('0') || value == "0" => Value::from(n),
            _ => Value::String(value),
        };
        object.insert(key, value);
    }
    Ok(())
}

/// `%XX` decoded (invalid escapes are kept as written).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn url(text: &str) -> Value {
        parse("--store", text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .unwrap_or_else(|| panic!("{text}: not a URL"))
    }

    fn refused(text: &str) -> String {
        parse("--store", text)
            .err()
            .unwrap_or_else(|| panic!("{text} accepted"))
            .to_string()
    }

    #[test]
    fn paths_and_json_are_not_urls() {
        for text in [
            "/var/lib/plexus/p.db",
            "p.db",
            "./a:b.db",
            r#"{"type":"sqlite"}"#,
        ] {
            assert_eq!(parse("--store", text).unwrap(), None, "{text}");
        }
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(url("sqlite:///tmp/p.db"), json!("/tmp/p.db"));
        assert_eq!(url("sqlite:////tmp/p.db"), json!("//tmp/p.db"));
        assert_eq!(url("sqlite://rel.db"), json!("rel.db"));
        assert_eq!(url("sqlite:rel%20x.db"), json!("rel x.db"));
        assert_eq!(
            url("sqlite:///tmp/p.db?busy_timeout_ms=2000&synchronous=full"),
            json!({"type": "sqlite", "path": "/tmp/p.db", "busy_timeout_ms": 2000,
                   "synchronous": "full"})
        );
        assert!(refused("sqlite://").contains("names no database"));
    }

    #[test]
    fn postgres_urls() {
        assert_eq!(
            url("postgres://plexus@db.example:5433/ipam?sslmode=disable&password_file=/etc/pw"),
            json!({"type": "postgres", "user": "plexus", "host": "db.example", "port": 5433,
                   "dbname": "ipam", "sslmode": "disable", "password_file": "/etc/pw"})
        );
        assert_eq!(
            url("postgresql://[fd00::5]/plexus"),
            json!({"type": "postgres", "host": "fd00::5", "dbname": "plexus"})
        );
        for leaky in [
            "postgres://u:hunter2-url@db/x",
            "postgres://db/x?password=hunter2-url",
        ] {
            let text = refused(leaky);
            assert!(text.contains("password_file"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(refused("postgres://u@:5432/x").contains("no host"));
        assert!(refused("postgres://db:x/y").contains("port"));
    }

    #[test]
    fn etcd_urls() {
        assert_eq!(
            url("etcd://10.0.0.1:2379,10.0.0.2:2379/plexus/"),
            json!({"type": "etcd", "endpoints": ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
                   "prefix": "/plexus"})
        );
        assert_eq!(
            url("etcds://e:2379?ca_file=/ca.pem&timeout_ms=700"),
            json!({"type": "etcd", "endpoints": ["https://e:2379"], "ca_file": "/ca.pem",
                   "timeout_ms": 700})
        );
        assert_eq!(
            url("https://a:2379,https://b:2379"),
            json!({"type": "etcd", "endpoints": ["https://a:2379", "https://b:2379"]})
        );
        assert!(!refused("etcd://user:hunter2@e:2379").contains("hunter2"));
    }

    #[test]
    fn other_schemes_are_refused_with_what_works() {
        let text = refused("mysql://db/x");
        assert!(
            text.contains("\"mysql\"") && text.contains("postgres://"),
            "{text}"
        );
        let text = refused("file:///tmp/p.db");
        assert!(
            text.contains("/tmp/p.db") && text.contains("sqlite://"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn sqlite_url_paths_round_trip(path in "/[a-z0-9._-]{1,12}(/[a-z0-9._-]{1,12}){0,3}") {
            prop_assert_eq!(url(&format!("sqlite://{path}")), Value::String(path));
        }
    }
}
