//! The key layout: escaping, ordering and range boundaries.

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn in_range(key: &str, (start, end): &(String, Vec<u8>)) -> bool {
    key.as_bytes() >= start.as_bytes() && key.as_bytes() < end.as_slice()
}

#[test]
fn layout_is_readable() {
    let keys = Keys::new("/plexus/v1");
    assert_eq!(keys.layout(), "/plexus/v1/layout");
    assert_eq!(
        keys.alloc("net1", ip("10.0.0.5")),
        "/plexus/v1/alloc/net1/00000000000000000000ffff0a000005"
    );
    assert_eq!(
        keys.attach("net1", "abc123", "eth0", "10.0.0.0/24[10.0.0.1-10.0.0.254]"),
        "/plexus/v1/attach/net1/abc123/eth0/10.0.0.0%2F24%5B10.0.0.1-10.0.0.254%5D"
    );
    assert_eq!(
        keys.cursor("net1", "fd00::/64[fd00::1-fd00::ffff]"),
        "/plexus/v1/cursor/net1/fd00::%2F64%5Bfd00::1-fd00::ffff%5D"
    );
}

#[test]
fn separators_and_escapes_in_names_are_escaped() {
    assert_eq!(escape("a/b"), "a%2Fb");
    assert_eq!(escape("50%"), "50%25");
    assert_eq!(escape("../x"), "..%2Fx");
    assert_eq!(escape("é"), "%C3%A9");
    assert_eq!(escape(""), "");
    assert_eq!(unescape("a%2Fb").as_deref(), Some("a/b"));
    // Spellings escape() never produces are refused, so each key has one reading.
    for bad in ["a/b", "%2f", "%41", "%4", "%zz", "a b"] {
        assert_eq!(unescape(bad), None, "{bad}");
    }
}

#[test]
fn a_network_named_like_a_path_stays_in_its_own_range() {
    let keys = Keys::new("/p");
    let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let tricky = keys.alloc("a/b", ip);
    assert!(!in_range(&tricky, &keys.alloc_all("a")));
    assert!(in_range(&tricky, &keys.alloc_all("a/b")));
    assert_eq!(keys.alloc_ip("a/b", tricky.as_bytes()), Some(ip));
    let attach = keys.attach("a/b", "c", "eth0", "s");
    assert!(!in_range(&attach, &keys.attach_all("a", "b/c", "eth0")));
    assert!(in_range(&attach, &keys.attach_all("a/b", "c", "eth0")));
}

#[test]
fn alloc_keys_decode_to_their_address() {
    let keys = Keys::new("/p");
    for addr in ["10.0.0.1", "::", "fd00::1", "255.255.255.255"] {
        let k = keys.alloc("n", ip(addr));
        assert_eq!(keys.alloc_ip("n", k.as_bytes()), Some(ip(addr)));
        assert_eq!(keys.alloc_ip("m", k.as_bytes()), None);
    }
    let mapped = keys.alloc("n", ip("::ffff:10.0.0.1"));
    assert_eq!(
        mapped,
        keys.alloc("n", ip("10.0.0.1")),
        "one key per address"
    );
    assert_eq!(keys.alloc_ip("n", b"/p/alloc/n/xyz"), None);
}

#[test]
fn block_keys() {
    let keys = Keys::new("/p");
    let base = ip("10.1.0.0");
    assert_eq!(
        keys.block("n", base),
        "/p/block/n/00000000000000000000ffff0a010000"
    );
    let node = keys.node_block("n", "s/1", "worker-1", base);
    assert_eq!(
        node,
        "/p/node-block/n/s%2F1/worker-1/00000000000000000000ffff0a010000"
    );
    assert!(in_range(&node, &keys.node_blocks("n", "s/1", "worker-1")));
    assert!(!in_range(&node, &keys.node_blocks("n", "s/1", "worker-10")));
    let hint = keys.block_cursor("n", "s/1", "worker-1", base);
    assert_eq!(
        hint,
        "/p/block-cursor/n/s%2F1/worker-1/00000000000000000000ffff0a010000"
    );
    assert_eq!(Keys::block_cursor_base(hint.as_bytes()), Some(base));
    assert!(in_range(&hint, &keys.block_cursors("n", "s/1", "worker-1")));
    assert!(!in_range(
        &hint,
        &keys.block_cursors("n", "s/1", "worker-10")
    ));
    assert!(in_range(&hint, &keys.block_cursors_all("n")));
    assert!(!in_range(&hint, &keys.block_cursors_all("n2")));
    // Claims guard the block ranges; the hints written by every claim must lie outside.
    assert!(!in_range(&hint, &keys.node_blocks("n", "s/1", "worker-1")));
    assert!(!in_range(&hint, &keys.block_all("n")));
    let emptied = keys.emptied("n", 1_700_000_000, base);
    assert_eq!(keys.emptied_base("n", emptied.as_bytes()), Some(base));
    assert!(in_range(&emptied, &keys.emptied_until("n", 1_700_000_000)));
    assert!(!in_range(&emptied, &keys.emptied_until("n", 1_699_999_999)));
}

proptest! {
    #[test]
    fn emptied_index_selects_exactly_the_old_enough(at in any::<i64>(), by in any::<i64>(), base in any::<u128>()) {
        let keys = Keys::new("/p");
        let k = keys.emptied("n", at, from_key(base));
        prop_assert_eq!(in_range(&k, &keys.emptied_until("n", by)), at <= by);
    }

    #[test]
    fn block_range_holds_exactly_the_bases(a in any::<u128>(), b in any::<u128>(), probe in any::<u128>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let keys = Keys::new("/p");
        let k = keys.block("n", from_key(probe));
        prop_assert_eq!(in_range(&k, &keys.block_range("n", lo, hi)), (lo..=hi).contains(&addr_key(from_key(probe))));
        prop_assert!(in_range(&k, &keys.block_all("n")));
    }

    #[test]
    fn escape_round_trips_without_separators(s in any::<String>()) {
        let escaped = escape(&s);
        prop_assert!(!escaped.contains('/'));
        prop_assert!(escaped.bytes().all(|b| b.is_ascii_graphic()));
        prop_assert_eq!(unescape(&escaped), Some(s));
    }

    #[test]
    fn attach_keys_lie_in_their_attachment_range(
        network in any::<String>(),
        container in any::<String>(),
        ifname in any::<String>(),
        set in any::<String>(),
    ) {
        let keys = Keys::new("/plexus/v1");
        let k = keys.attach(&network, &container, &ifname, &set);
        prop_assert!(in_range(&k, &keys.attach_all(&network, &container, &ifname)));
    }

    #[test]
    fn ranges_of_different_names_are_disjoint(a in any::<String>(), b in any::<String>(), c in any::<String>()) {
        prop_assume!(a != b);
        let keys = Keys::new("/p");
        let in_b = keys.attach(&b, &c, "eth0", "s");
        prop_assert!(!in_range(&in_b, &keys.attach_all(&a, &c, "eth0")));
        prop_assert!(!in_range(&keys.alloc(&b, ip("10.0.0.1")), &keys.alloc_all(&a)));
        prop_assert!(!in_range(&keys.attach(&a, &b, "x", "s"), &keys.attach_all(&a, &c, "x")) || b == c);
    }

    #[test]
    fn key_order_is_address_order(x in any::<u128>(), y in any::<u128>()) {
        let keys = Keys::new("/p");
        let (kx, ky) = (keys.alloc_at("n", x), keys.alloc_at("n", y));
        prop_assert_eq!(kx.cmp(&ky), x.cmp(&y));
    }

    #[test]
    fn alloc_range_holds_exactly_the_window(a in any::<u128>(), b in any::<u128>(), probe in any::<u128>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let keys = Keys::new("/p");
        let range = keys.alloc_range("n", lo, hi);
        prop_assert_eq!(in_range(&keys.alloc_at("n", probe), &range), (lo..=hi).contains(&probe));
        prop_assert!(in_range(&keys.alloc_at("n", probe), &keys.alloc_all("n")));
    }
}
