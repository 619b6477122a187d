//! The ranges whereabouts ≤ 0.5.4 kept in etcd.
//!
//! One key per range, `/whereabouts/<range>`: the range as whereabouts normalised it (the
//! network CIDR, e.g. `10.0.0.0/24` for `10.0.0.7/24` or `10.0.0.5-10.0.0.50/24`); the
//! oldest releases used the text as written, so both are covered. The value is one line
//! per held address, `<ip> <container id>`, joined by `\n`; some versions append the pod
//! reference (`<namespace>/<name>`) after another space. whereabouts' own lock lives in
//! keys *below* the range key (`/whereabouts/<range>/<lease>`), never the key itself.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::StoreError;

/// The key prefix of whereabouts' etcd datastore.
pub const LEGACY_PREFIX: &str = "/whereabouts";

/// Where `plexusctl import --from whereabouts-etcd` moves a range key it imported (the
/// value unchanged): out of whereabouts' way, kept for an operator who wants it back.
pub const RETIRED_PREFIX: &str = "/plexus-imported/whereabouts";

/// The whereabouts etcd keys of the ranges of `ipam` (`range`, `ipRanges[].range`): as
/// written and as whereabouts normalised them, without repeats.
pub fn range_keys(ipam: &Map<String, Value>) -> Vec<String> {
    let mut texts: Vec<&str> = Vec::new();
    if let Some(Value::String(range)) = ipam.get("range") {
        texts.push(range);
    }
    if let Some(Value::Array(entries)) = ipam.get("ipRanges") {
        texts.extend(
            entries
                .iter()
                .filter_map(|e| e.get("range").and_then(Value::as_str)),
        );
    }
    let mut keys = Vec::new();
    // A text no range parser accepts cannot name a key whereabouts wrote (and a key with
    // control characters is refused by the etcd configuration, which DEL must not be).
    let usable = |t: &&str| !t.is_empty() && !t.chars().any(char::is_control);
    for text in texts.into_iter().map(str::trim).filter(usable) {
        for range in [Some(text.to_string()), normalised(text)]
            .into_iter()
            .flatten()
        {
            let key = format!("{LEGACY_PREFIX}/{range}");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The network CIDR whereabouts stored a range under: for `start-end/prefix` the network
/// of `end/prefix`, else the network of the CIDR; `None` when it is neither.
fn normalised(text: &str) -> Option<String> {
    let cidr = text.split_once('-').map_or(text, |(_, rest)| rest);
    cidr.trim()
        .parse::<IpNet>()
        .ok()
        .map(|net| net.trunc().to_string())
}

/// The network CIDR of a range key (`/whereabouts/10.0.0.5-10.0.0.50/24` → `10.0.0.0/24`).
pub fn key_range(key: &str) -> Option<IpNet> {
    let text = key.strip_prefix(LEGACY_PREFIX)?.strip_prefix('/')?;
    normalised(text)?.parse().ok()
}

/// Where an imported range key is moved ([`RETIRED_PREFIX`] instead of [`LEGACY_PREFIX`]).
pub fn retired_key(key: &str) -> String {
    match key.strip_prefix(LEGACY_PREFIX) {
        Some(rest) => format!("{RETIRED_PREFIX}{rest}"),
        None => format!("{RETIRED_PREFIX}/{}", key.trim_start_matches('/')),
    }
}

/// One address whereabouts holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The address.
    pub ip: IpAddr,
    /// The container it was handed to (`CNI_CONTAINERID`).
    pub container_id: String,
    /// `<namespace>/<name>` of the pod, when the line has it.
    pub pod_ref: Option<String>,
}

/// A line of a range value that is not `<ip> <container id> [<pod ref>]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ReservationError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The reservations of a range value. Empty lines are skipped (an emptied range is an
/// empty value); any other line must parse, since skipping one would hand its address out
/// again.
pub fn parse_reservations(value: &[u8]) -> Result<Vec<Reservation>, ReservationError> {
    let text = std::str::from_utf8(value).map_err(|e| ReservationError {
        line: 1 + value[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        reason: "is not UTF-8".into(),
    })?;
    let mut found = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let fail = |reason: String| ReservationError {
            line: index + 1,
            reason,
        };
        let mut tokens = line.split_whitespace();
        let Some(ip) = tokens.next() else { continue };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| fail(format!("{ip:?} is not an IP address")))?;
        let container_id = tokens
            .next()
            .ok_or_else(|| fail(format!("{ip} has no container id")))?
            .to_string();
        found.push(Reservation {
            ip,
            container_id,
            pod_ref: tokens.next().map(str::to_string),
        });
    }
    Ok(found)
}

/// The error of a claim that found a whereabouts range `key` not yet imported.
pub fn not_imported(key: &str) -> StoreError {
    StoreError::config(
        "ipam.etcd_host",
        format!(
            "this etcd still holds the addresses whereabouts handed out in the range (key \
             {key}), which plexus has not imported, so it hands out none there: run \
             `plexusctl import --from whereabouts-etcd --conf <this network's configuration> \
             --default-ifname <the pods' interface name>` (again whenever whereabouts wrote \
             the key since), then retry (docs/whereabouts.md)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn keys(ipam: Value) -> Vec<String> {
        range_keys(ipam.as_object().unwrap())
    }

    #[test]
    fn keys_cover_the_text_and_its_network() {
        assert_eq!(
            keys(json!({"range": "10.0.0.0/24"})),
            ["/whereabouts/10.0.0.0/24"]
        );
        assert_eq!(
            keys(json!({"range": "10.0.0.7/24", "ipRanges": [{"range": "2001::0/116"}]})),
            [
                "/whereabouts/10.0.0.7/24",
                "/whereabouts/10.0.0.0/24",
                "/whereabouts/2001::0/116",
                "/whereabouts/2001::/116"
            ]
        );
        assert_eq!(
            keys(json!({"range": "10.0.0.5-10.0.0.50/24"})),
            [
                "/whereabouts/10.0.0.5-10.0.0.50/24",
                "/whereabouts/10.0.0.0/24"
            ]
        );
        assert!(keys(json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]})).is_empty());
        assert!(
            keys(json!({"range": "10.0.0.0/24\n"})).len() == 1,
            "trimmed"
        );
        assert!(keys(json!({"range": "10.0.\u{7}0.0/24"})).is_empty());
        assert_eq!(
            key_range("/whereabouts/10.0.0.5-10.0.0.50/24"),
            Some("10.0.0.0/24".parse().unwrap())
        );
        assert_eq!(key_range("/elsewhere/10.0.0.0/24"), None);
        assert_eq!(
            retired_key("/whereabouts/10.0.0.0/24"),
            "/plexus-imported/whereabouts/10.0.0.0/24"
        );
    }

    #[test]
    fn lines_with_and_without_pod_refs() {
        let value = b"10.0.0.1 abc\n10.0.0.2 def default/pod-1\n\n2001::5 ghi ns/p extra\n";
        let got = parse_reservations(value).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(got[0].container_id, "abc");
        assert_eq!(got[0].pod_ref, None);
        assert_eq!(got[1].pod_ref.as_deref(), Some("default/pod-1"));
        assert_eq!(got[2].container_id, "ghi");
        assert!(parse_reservations(b"").unwrap().is_empty());
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let err = parse_reservations(b"10.0.0.1 a\n10.0.0.300 b").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_reservations(b"10.0.0.1").unwrap_err();
        assert_eq!(
            (err.line, err.reason.as_str()),
            (1, "10.0.0.1 has no container id")
        );
        assert_eq!(parse_reservations(b"10.0.0.1 a\n\xff").unwrap_err().line, 2);
    }

    proptest! {
        /// Whatever whereabouts wrote (its own join of `ip id` lines) parses back to the
        /// same addresses and container ids.
        #[test]
        fn whereabouts_values_round_trip(entries in proptest::collection::vec((any::<u32>(), "[a-f0-9]{1,64}"), 0..50)) {
            let lines: Vec<String> = entries
                .iter()
                .map(|(ip, id)| format!("{} {id}", std::net::Ipv4Addr::from(*ip)))
                .collect();
            let got = parse_reservations(lines.join("\n").as_bytes()).unwrap();
            prop_assert_eq!(got.len(), entries.len());
            for (r, (ip, id)) in got.iter().zip(&entries) {
                prop_assert_eq!(r.ip, IpAddr::from(std::net::Ipv4Addr::from(*ip)));
                prop_assert_eq!(&r.container_id, id);
            }
        }
    }
}
