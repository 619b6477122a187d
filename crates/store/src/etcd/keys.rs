//! The etcd key layout (see `docs/stores.md`, etcd section).
//!
//! ```text
//! <prefix>/layout                                         → layout version, decimal
//! <prefix>/alloc/<network>/<32 hex digits of the key>     → the allocation, JSON
//! <prefix>/attach/<network>/<container>/<ifname>/<set>    → its address, text
//! <prefix>/cursor/<network>/<set>                         → next-fit cursor address, text
//! <prefix>/block/<network>/<32 hex digits of the base>    → the per-node block, JSON
//! <prefix>/node-block/<network>/<set>/<node>/<32 hex>     → the same block, JSON (by node)
//! <prefix>/block-cursor/<network>/<set>/<node>/<32 hex>   → the block's cursor, text (hint)
//! <prefix>/emptied/<network>/<16 hex of emptied_at>/<32 hex> → "" (empty blocks by time)
//! <prefix>/network/<network>                              → the stored network, JSON
//! <prefix>/history/<network>/<16 hex seq>-<8 hex tag>     → one history event, JSON
//! ```
//! `<set>` is the range set id. Every name segment is escaped ([`escape`]) so that no
//! network, container id, interface or range set id can contain the `/` separator:
//! the keys of one network (or one attachment) are exactly one prefix range. Address keys
//! are fixed-width lowercase hex, so key order is address order and the addresses in
//! `[lo, hi]` are one range read.

use std::net::IpAddr;

use plexus_ipam_core::addr::{from_key, key as addr_key};

/// Characters kept as they are in a key segment; everything else is `%XX`-escaped.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b':')
}

/// `segment` with every byte outside `[A-Za-z0-9._:-]` written as `%XX` (uppercase hex),
/// so the result never contains `/` and [`unescape`] restores the input exactly.
pub(crate) fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &byte in segment.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16)
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('0')
}

/// The inverse of [`escape`]; `None` for text [`escape`] never produces (so every key has
/// exactly one reading). Reads the network names of allocation keys back.
pub(crate) fn unescape(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if is_plain(value) || hex.bytes().any(|b| b.is_ascii_lowercase()) {
                return None;
            }
            out.push(value);
            i += 3;
        } else if is_plain(byte) {
            out.push(byte);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The first key after every key that starts with `prefix` (etcd's `range_end` of a prefix
/// read). Only used on prefixes ending in `/`, whose successor is `0`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// The first key after `key` itself (etcd's `range_end` for a range that includes `key`).
fn after(key: &str) -> Vec<u8> {
    let mut end = key.as_bytes().to_vec();
    end.push(0);
    end
}

/// The address of a key's last segment: exactly 32 lowercase hex digits, as written.
fn address_hex(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(from_key)
}

/// `at` as 16 hex digits whose text order is the numeric order (sign bit flipped).
fn time_hex(at: i64) -> String {
    format!("{:016x}", at.cast_unsigned() ^ (1 << 63))
}

/// The keys of one store, under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` (validated by the configuration: `/x...`, no trailing `/`).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The layout-version key.
    pub(crate) fn layout(&self) -> String {
        format!("{}/layout", self.prefix)
    }

    /// A key no plexus version ever writes, target of the write probe of STATUS.
    pub(crate) fn probe(&self) -> String {
        format!("{}/probe", self.prefix)
    }

    /// Every key of this store: the prefix range `<prefix>/`.
    pub(crate) fn everything(&self) -> (String, Vec<u8>) {
        let start = format!("{}/", self.prefix);
        let end = prefix_end(&start);
        (start, end)
    }

    /// The range of every allocation key of every network.
    pub(crate) fn alloc_every(&self) -> (String, Vec<u8>) {
        let root = format!("{}/alloc/", self.prefix);
        let end = prefix_end(&root);
        (root, end)
    }

    /// The network of an allocation key and the first key after that network's keys;
    /// `None` for a key outside the allocations or a segment [`escape`] never writes.
    pub(crate) fn alloc_network(&self, key: &[u8]) -> Option<(String, Vec<u8>)> {
        let root = format!("{}/alloc/", self.prefix);
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&root)?;
        let (segment, _) = rest.split_once('/')?;
        let name = unescape(segment)?;
        Some((name, prefix_end(&format!("{root}{segment}/"))))
    }

    fn alloc_dir(&self, network: &str) -> String {
        format!("{}/alloc/{}/", self.prefix, escape(network))
    }

    /// The allocation key of `ip` in `network`.
    pub(crate) fn alloc(&self, network: &str, ip: IpAddr) -> String {
        self.alloc_at(network, addr_key(ip))
    }

    fn alloc_at(&self, network: &str, key: u128) -> String {
        format!("{}{key:032x}", self.alloc_dir(network))
    }

    /// The range of allocation keys of `network` with address keys in `[lo, hi]`.
    pub(crate) fn alloc_range(&self, network: &str, lo: u128, hi: u128) -> (String, Vec<u8>) {
        (
            self.alloc_at(network, lo),
            after(&self.alloc_at(network, hi)),
        )
    }

    /// The range of every allocation key of `network`.
    pub(crate) fn alloc_all(&self, network: &str) -> (String, Vec<u8>) {
        let dir = self.alloc_dir(network);
        let end = prefix_end(&dir);
        (dir, end)
    }

    /// The address of an allocation key of `network` (`None` for a foreign key).
    pub(crate) fn alloc_ip(&self, network: &str, key: &[u8]) -> Option<IpAddr> {
        let hex = std::str::from_utf8(key)
            .ok()?
            .strip_prefix(&self.alloc_dir(network))?;
        address_hex(hex)
    }

    fn network_attach_dir(&self, network: &str) -> String {
        format!("{}/attach/{}/", self.prefix, escape(network))
    }

    fn attach_dir(&self, network: &str, container_id: &str, ifname: &str) -> String {
        format!(
            "{}{}/{}/",
            self.network_attach_dir(network),
            escape(container_id),
            escape(ifname)
        )
    }

    /// The index key of the allocation of one attachment in one range set.
    pub(crate) fn attach(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        range_set: &str,
    ) -> String {
        format!(
            "{}{}",
            self.attach_dir(network, container_id, ifname),
            escape(range_set)
        )
    }

    /// The range of the index keys of one attachment (all its range sets).
    pub(crate) fn attach_all(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> (String, Vec<u8>) {
        let dir = self.attach_dir(network, container_id, ifname);
        let end = prefix_end(&dir);
        (dir, end)
    }

    fn block_dir(&self, network: &str) -> String {
        format!("{}/block/{}/", self.prefix, escape(network))
    }

    /// The key of the block of `network` based at `base`.
    pub(crate) fn block(&self, network: &str, base: IpAddr) -> String {
        format!("{}{:032x}", self.block_dir(network), addr_key(base))
    }

    /// The range of the block keys of `network` with bases in `[lo, hi]` (address keys).
    pub(crate) fn block_range(&self, network: &str, lo: u128, hi: u128) -> (String, Vec<u8>) {
        let dir = self.block_dir(network);
        (format!("{dir}{lo:032x}"), after(&format!("{dir}{hi:032x}")))
    }

    /// The range of every block key of `network`.
    pub(crate) fn block_all(&self, network: &str) -> (String, Vec<u8>) {
        let dir = self.block_dir(network);
        let end = prefix_end(&dir);
        (dir, end)
    }

    fn node_block_dir(&self, network: &str, range_set: &str, node: &str) -> String {
        format!(
            "{}/node-block/{}/{}/{}/",
            self.prefix,
            escape(network),
            escape(range_set),
            escape(node)
        )
    }

    /// The by-node index key of a block.
    pub(crate) fn node_block(
        &self,
        network: &str,
        range_set: &str,
        node: &str,
        base: IpAddr,
    ) -> String {
        format!(
            "{}{:032x}",
            self.node_block_dir(network, range_set, node),
            addr_key(base)
        )
    }

    /// The range of the by-node index keys of `node` in `(network, range_set)`.
    pub(crate) fn node_blocks(
        &self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> (String, Vec<u8>) {
        let dir = self.node_block_dir(network, range_set, node);
        let end = prefix_end(&dir);
        (dir, end)
    }

    fn block_cursor_network_dir(&self, network: &str) -> String {
        format!("{}/block-cursor/{}/", self.prefix, escape(network))
    }

    fn block_cursor_dir(&self, network: &str, range_set: &str, node: &str) -> String {
        format!(
            "{}{}/{}/",
            self.block_cursor_network_dir(network),
            escape(range_set),
            escape(node)
        )
    }

    /// The cursor-hint key of a block: written without a compare by every claim in the
    /// block, so that claims do not rewrite (and conflict on) the block record itself.
    pub(crate) fn block_cursor(
        &self,
        network: &str,
        range_set: &str,
        node: &str,
        base: IpAddr,
    ) -> String {
        format!(
            "{}{:032x}",
            self.block_cursor_dir(network, range_set, node),
            addr_key(base)
        )
    }

    /// The range of the cursor-hint keys of `node`'s blocks in `(network, range_set)`.
    pub(crate) fn block_cursors(
        &self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> (String, Vec<u8>) {
        let dir = self.block_cursor_dir(network, range_set, node);
        let end = prefix_end(&dir);
        (dir, end)
    }

    /// The block base of a cursor-hint key (its last segment).
    pub(crate) fn block_cursor_base(key: &[u8]) -> Option<IpAddr> {
        let key = std::str::from_utf8(key).ok()?;
        let (_, hex) = key.rsplit_once('/')?;
        address_hex(hex)
    }

    /// The range of every cursor-hint key of `network`.
    pub(crate) fn block_cursors_all(&self, network: &str) -> (String, Vec<u8>) {
        let dir = self.block_cursor_network_dir(network);
        let end = prefix_end(&dir);
        (dir, end)
    }

    fn emptied_dir(&self, network: &str) -> String {
        format!("{}/emptied/{}/", self.prefix, escape(network))
    }

    /// The emptied-index key of the block of `network` at `base`, empty since `at`.
    pub(crate) fn emptied(&self, network: &str, at: i64, base: IpAddr) -> String {
        format!(
            "{}{}/{:032x}",
            self.emptied_dir(network),
            time_hex(at),
            addr_key(base)
        )
    }

    /// The range of the emptied-index keys of `network` with `emptied_at <= by`.
    pub(crate) fn emptied_until(&self, network: &str, by: i64) -> (String, Vec<u8>) {
        let dir = self.emptied_dir(network);
        let end = prefix_end(&format!("{dir}{}/", time_hex(by)));
        (dir, end)
    }

    /// The block base of an emptied-index key of `network`.
    pub(crate) fn emptied_base(&self, network: &str, key: &[u8]) -> Option<IpAddr> {
        let rest = std::str::from_utf8(key)
            .ok()?
            .strip_prefix(&self.emptied_dir(network))?;
        let (time, hex) = rest.split_once('/')?;
        if time.len() != 16 || hex.len() != 32 {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(from_key)
    }

    /// The key of the stored network `name`.
    pub(crate) fn network(&self, name: &str) -> String {
        format!("{}/network/{}", self.prefix, escape(name))
    }

    /// The range of every stored network key.
    pub(crate) fn network_all(&self) -> (String, Vec<u8>) {
        let dir = format!("{}/network/", self.prefix);
        let end = prefix_end(&dir);
        (dir, end)
    }

    fn history_dir(&self, network: &str) -> String {
        format!("{}/history/{}/", self.prefix, escape(network))
    }

    /// The key of the history event of `network` at position `seq`, made unique by `tag`
    /// (events of several writers may share a microsecond).
    pub(crate) fn history(&self, network: &str, seq: u64, tag: u32) -> String {
        format!("{}{seq:016x}-{tag:08x}", self.history_dir(network))
    }

    /// The range of the history keys of `network` (oldest first).
    pub(crate) fn history_network(&self, network: &str) -> (String, Vec<u8>) {
        let dir = self.history_dir(network);
        let end = prefix_end(&dir);
        (dir, end)
    }

    /// The range of the history keys of every network.
    pub(crate) fn history_all(&self) -> (String, Vec<u8>) {
        let dir = format!("{}/history/", self.prefix);
        let end = prefix_end(&dir);
        (dir, end)
    }

    /// The first key after `key` (the end of a range that ends with `key`).
    pub(crate) fn after(key: &[u8]) -> Vec<u8> {
        let mut end = key.to_vec();
        end.push(0);
        end
    }

    /// The next-fit cursor key of (network, range set).
    pub(crate) fn cursor(&self, network: &str, range_set: &str) -> String {
        format!(
            "{}/cursor/{}/{}",
            self.prefix,
            escape(network),
            escape(range_set)
        )
    }
}

#[cfg(test)]
mod tests;
