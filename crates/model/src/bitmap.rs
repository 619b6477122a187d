//! DANM's allocation bitmaps, `spec.Options.alloc` (IPv4) and `alloc6` (IPv6).
//!
//! The format, from DANM's `pkg/bitarray` and `pkg/ipam`:
//! - standard base64 with padding (Go's `base64.StdEncoding`);
//! - bit `p` lives in byte `p / 8` under mask `0x80 >> (p % 8)` (most significant bit first);
//! - bit index = address − base of the *allocation CIDR*: `cidr` for IPv4,
//!   `allocation_pool_v6.cidr` (not `net6`) for IPv6;
//! - a CIDR with `h` host bits has `2^h` bits, rounded up to whole bytes (a /30 is one byte);
//! - a fresh bitmap has bit 0 (network address), the last bit ("broadcast", IPv6 too) and the
//!   bit of every route gateway set.
//!
//! Sizes are bounded: at most [`MAX_BITMAP_BYTES`] (2 MiB, an IPv4 /8; DANM itself stopped at
//! 1 MiB, a /9), and the length of the text is checked before anything is decoded, so a
//! hostile string costs at most its own size.

use std::net::IpAddr;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ipnet::IpNet;
use plexus_ipam_core::addr::{checked_add, first_key, key, net_contains};

/// Largest bitmap accepted or built: 2^24 bits, one bit per address of an IPv4 /8.
pub const MAX_BITMAP_BYTES: usize = 1 << 21;
/// Most host bits an allocation CIDR may have to get a bitmap (2^24 bits = [`MAX_BITMAP_BYTES`]).
pub const MAX_HOST_BITS: u8 = 24;
/// Longest base64 text of a [`MAX_BITMAP_BYTES`] bitmap.
const MAX_ENCODED_LEN: usize = MAX_BITMAP_BYTES.div_ceil(3) * 4;

/// Go's `StdEncoding`: padded, and (not being `Strict`) tolerant of non-zero trailing bits.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Why a bitmap could not be decoded or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    /// The text is longer than any accepted bitmap could encode to.
    #[error(
        "allocation bitmap is {len} characters of base64; at most {MAX_ENCODED_LEN} \
         ({MAX_BITMAP_BYTES} bytes, an IPv4 /8) are accepted"
    )]
    TooLong {
        /// Length of the text.
        len: usize,
    },
    /// Not standard, padded base64.
    #[error("allocation bitmap is not standard padded base64: {detail}")]
    NotBase64 {
        /// What the decoder found.
        detail: String,
    },
    /// Decodes fine but does not have the length the allocation CIDR implies.
    #[error(
        "allocation bitmap holds {bytes} bytes but allocation CIDR {cidr} needs {expected}; \
         it belongs to another network or is damaged"
    )]
    WrongLength {
        /// Decoded length.
        bytes: usize,
        /// Length for `cidr`.
        expected: usize,
        /// The allocation CIDR.
        cidr: IpNet,
    },
    /// The allocation CIDR is too large for a bitmap.
    #[error(
        "allocation CIDR {cidr} has 2^{host_bits} addresses; bitmaps stop at 2^{MAX_HOST_BITS}"
    )]
    CidrTooLarge {
        /// The CIDR.
        cidr: IpNet,
        /// Its host bits.
        host_bits: u8,
    },
}

/// A DANM allocation bitmap: one bit per address of the allocation CIDR, MSB first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocBitmap {
    /// The bits, MSB first within each byte.
    bytes: Vec<u8>,
}

/// Bytes of the bitmap for `cidr` (`2^host_bits` bits rounded up to whole bytes).
pub fn bitmap_bytes(cidr: &IpNet) -> Result<usize, BitmapError> {
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    if host_bits > MAX_HOST_BITS {
        return Err(BitmapError::CidrTooLarge {
            cidr: *cidr,
            host_bits,
        });
    }
    Ok((1usize << host_bits).div_ceil(8))
}

/// Number of addresses of `cidr` if it fits a bitmap.
fn address_count(cidr: &IpNet) -> Result<u32, BitmapError> {
    bitmap_bytes(cidr)?;
    Ok(1u32 << (cidr.max_prefix_len() - cidr.prefix_len()))
}

/// The bit index of `ip` in the bitmap of `cidr` (`ip − base`), if `ip` lies inside it.
pub fn index_of(cidr: &IpNet, ip: IpAddr) -> Option<u32> {
    let cidr = cidr.trunc();
    if !net_contains(&cidr, ip) {
        return None;
    }
    u32::try_from(key(ip) - first_key(&cidr)).ok()
}

/// The address at bit `index` of the bitmap of `cidr` (`base + index`), if inside it.
pub fn address_at(cidr: &IpNet, index: u32) -> Option<IpAddr> {
    let cidr = cidr.trunc();
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    if host_bits < 32 && u64::from(index) >= 1u64 << host_bits {
        return None;
    }
    checked_add(cidr.network(), u128::from(index))
}

impl AllocBitmap {
    /// An all-clear bitmap for `cidr`.
    pub fn empty_for(cidr: &IpNet) -> Result<AllocBitmap, BitmapError> {
        Ok(AllocBitmap {
            bytes: vec![0; bitmap_bytes(cidr)?],
        })
    }

    /// The bitmap DANM's webhook creates for a new network: network address, last address
    /// and every gateway inside `cidr` set.
    pub fn fresh(
        cidr: &IpNet,
        gateways: impl IntoIterator<Item = IpAddr>,
    ) -> Result<AllocBitmap, BitmapError> {
        let mut bitmap = AllocBitmap::empty_for(cidr)?;
        let count = address_count(cidr)?;
        bitmap.set(0);
        bitmap.set(count - 1);
        for gw in gateways {
            if let Some(index) = index_of(cidr, gw) {
                bitmap.set(index);
            }
        }
        Ok(bitmap)
    }

    /// Decode base64 text of any accepted length (up to [`MAX_BITMAP_BYTES`]). Line breaks
    /// and other ASCII whitespace are skipped, as Go's decoder skips `\r` and `\n`.
    pub fn decode(text: &str) -> Result<AllocBitmap, BitmapError> {
        // Check before copying or decoding: the cost of a hostile string stays linear.
        if text.len() > MAX_ENCODED_LEN.saturating_mul(2) {
            return Err(BitmapError::TooLong { len: text.len() });
        }
        let compact: std::borrow::Cow<'_, str> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
            text.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect::<String>()
                .into()
        } else {
            text.into()
        };
        if compact.len() > MAX_ENCODED_LEN {
            return Err(BitmapError::TooLong { len: compact.len() });
        }
        let bytes = GO_STD
            .decode(compact.as_bytes())
            .map_err(|e| BitmapError::NotBase64 {
                detail: e.to_string(),
            })?;
        Ok(AllocBitmap { bytes })
    }

    /// Decode the bitmap of `cidr`, refusing one whose length does not match it.
    pub fn decode_for(text: &str, cidr: &IpNet) -> Result<AllocBitmap, BitmapError> {
        let expected = bitmap_bytes(cidr)?;
        // Refuse a text too long for `cidr` before decoding it: the decoded size is capped
        // by the CIDR, not by the 2 MiB limit of any bitmap.
        let chars = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
        if chars > expected.div_ceil(3) * 4 {
            let padding = text
                .trim_end()
                .bytes()
                .rev()
                .take_while(|b| *b == b'=')
                .count();
            return Err(BitmapError::WrongLength {
                bytes: (chars / 4 * 3).saturating_sub(padding),
                expected,
                cidr: cidr.trunc(),
            });
        }
        let bitmap = AllocBitmap::decode(text)?;
        if bitmap.bytes.len() != expected {
            return Err(BitmapError::WrongLength {
                bytes: bitmap.bytes.len(),
                expected,
                cidr: cidr.trunc(),
            });
        }
        Ok(bitmap)
    }

    /// Standard padded base64, as DANM stores it.
    pub fn encode(&self) -> String {
        GO_STD.encode(&self.bytes)
    }

    /// The raw bytes, MSB first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of bits (`bytes × 8`).
    pub fn len_bits(&self) -> u64 {
        self.bytes.len() as u64 * 8
    }

    /// Whether bit `index` is set (bits past the end read as clear).
    pub fn get(&self, index: u32) -> bool {
        let (byte, mask) = locate(index);
        self.bytes.get(byte).is_some_and(|b| b & mask != 0)
    }

    /// Set bit `index`; returns false (and changes nothing) past the end.
    pub fn set(&mut self, index: u32) -> bool {
        let (byte, mask) = locate(index);
        match self.bytes.get_mut(byte) {
            Some(b) => {
                *b |= mask;
                true
            }
            None => false,
        }
    }

    /// Clear bit `index`; returns false (and changes nothing) past the end.
    pub fn clear(&mut self, index: u32) -> bool {
        let (byte, mask) = locate(index);
        match self.bytes.get_mut(byte) {
            Some(b) => {
                *b &= !mask;
                true
            }
            None => false,
        }
    }

    /// Number of set bits.
    pub fn count_set(&self) -> u64 {
        self.bytes.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    /// Indices of the set bits, ascending; runs of zero bytes are skipped eight at a time.
    pub fn set_bits(&self) -> SetBits<'_> {
        SetBits {
            bytes: &self.bytes,
            next_byte: 0,
            current: 0,
            current_base: 0,
        }
    }

    /// Addresses of the set bits inside `cidr` (`base + index`), ascending. Bits past the
    /// end of `cidr` (the padding of a /30 or longer) are skipped.
    pub fn addresses<'a>(&'a self, cidr: &IpNet) -> impl Iterator<Item = IpAddr> + 'a {
        let cidr = cidr.trunc();
        self.set_bits().map_while(move |i| address_at(&cidr, i))
    }
}

/// Byte offset and mask of bit `index`.
fn locate(index: u32) -> (usize, u8) {
    ((index / 8) as usize, 0x80 >> (index % 8))
}

/// Iterator over the set bits of an [`AllocBitmap`]; see [`AllocBitmap::set_bits`].
#[derive(Debug, Clone)]
pub struct SetBits<'a> {
    /// The bitmap.
    bytes: &'a [u8],
    /// The next byte to load.
    next_byte: usize,
    /// Bits of the current byte not yet yielded.
    current: u8,
    /// Index of the current byte's first bit.
    current_base: u32,
}

impl Iterator for SetBits<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            if self.current != 0 {
                let offset = self.current.leading_zeros();
                self.current &= !(0x80 >> offset);
                return Some(self.current_base + offset);
            }
            // Skip empty stretches a word at a time: a mostly free /9 is 1 MiB of zeros.
            while let Some(word) = self.bytes.get(self.next_byte..self.next_byte + 8) {
                if word.iter().any(|b| *b != 0) {
                    break;
                }
                self.next_byte += 8;
            }
            let byte = *self.bytes.get(self.next_byte)?;
            // Bitmaps are at most MAX_BITMAP_BYTES long, so bit indices fit in u32.
            self.current_base = u32::try_from(self.next_byte * 8).ok()?;
            self.current = byte;
            self.next_byte += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The /24 examples of DANM's documentation, built by hand from the format.
    const FRESH_24: &str = "gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";
    const FRESH_24_GW1: &str = "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";

    #[test]
    fn golden_fresh_slash_24() -> Result<(), BitmapError> {
        let cidr = net("10.100.100.0/24");
        let mut bytes = [0u8; 32];
        bytes[0] = 0x80;
        bytes[31] = 0x01;
        let bitmap = AllocBitmap::fresh(&cidr, [])?;
        assert_eq!(bitmap.as_bytes(), &bytes[..]);
        assert_eq!(bitmap.encode(), FRESH_24);
        let decoded = AllocBitmap::decode_for(FRESH_24, &cidr)?;
        assert_eq!(decoded, bitmap);
        let addrs: Vec<IpAddr> = decoded.addresses(&cidr).collect();
        assert_eq!(addrs, vec![ip("10.100.100.0"), ip("10.100.100.255")]);
        Ok(())
    }

    #[test]
    fn golden_fresh_slash_24_with_gateway() -> Result<(), BitmapError> {
        let cidr = net("10.100.100.0/24");
        let bitmap = AllocBitmap::fresh(&cidr, [ip("10.100.100.1"), ip("192.168.0.1")])?;
        assert_eq!(bitmap.as_bytes()[0], 0xc0);
        assert_eq!(bitmap.encode(), FRESH_24_GW1);
        let addrs: Vec<IpAddr> = AllocBitmap::decode(FRESH_24_GW1)?
            .addresses(&cidr)
            .collect();
        assert_eq!(
            addrs,
            vec![ip("10.100.100.0"), ip("10.100.100.1"), ip("10.100.100.255")]
        );
        Ok(())
    }

    #[test]
    fn msb_first_indexing() -> Result<(), BitmapError> {
        let cidr = net("10.0.0.0/24");
        let mut bitmap = AllocBitmap::empty_for(&cidr)?;
        assert!(bitmap.set(9)); // .9 → byte 1, mask 0x40
        assert_eq!(bitmap.as_bytes()[1], 0x40);
        assert!(bitmap.get(9) && !bitmap.get(8) && !bitmap.get(10));
        assert!(!bitmap.set(256));
        assert!(bitmap.clear(9));
        assert_eq!(bitmap.count_set(), 0);
        assert_eq!(index_of(&cidr, ip("10.0.0.9")), Some(9));
        assert_eq!(index_of(&cidr, ip("10.0.1.9")), None);
        assert_eq!(address_at(&cidr, 9), Some(ip("10.0.0.9")));
        assert_eq!(address_at(&cidr, 256), None);
        Ok(())
    }

    #[test]
    fn ipv6_bitmaps_index_from_the_pool_cidr() -> Result<(), BitmapError> {
        let pool6 = net("2001:db8::/120");
        let mut bitmap = AllocBitmap::fresh(&pool6, [ip("2001:db8::1")])?;
        bitmap.set(index_of(&pool6, ip("2001:db8::a")).unwrap_or(u32::MAX));
        let addrs: Vec<IpAddr> = bitmap.addresses(&pool6).collect();
        assert_eq!(
            addrs,
            vec![
                ip("2001:db8::"),
                ip("2001:db8::1"),
                ip("2001:db8::a"),
                ip("2001:db8::ff")
            ]
        );
        Ok(())
    }

    #[test]
    fn small_cidrs_round_up_to_a_byte_and_skip_padding_bits() -> Result<(), BitmapError> {
        let cidr = net("10.0.0.4/30");
        let bitmap = AllocBitmap::fresh(&cidr, [])?;
        assert_eq!(bitmap.as_bytes(), &[0x90]);
        assert_eq!(bitmap.len_bits(), 8);
        // A damaged bitmap with padding bits set yields only addresses of the /30.
        let damaged = AllocBitmap::decode("/w==")?;
        let addrs: Vec<IpAddr> = damaged.addresses(&cidr).collect();
        assert_eq!(addrs.len(), 4);
        Ok(())
    }

    #[test]
    fn garbage_is_refused_clearly() {
        assert!(matches!(
            AllocBitmap::decode("not base64!"),
            Err(BitmapError::NotBase64 { .. })
        ));
        assert!(matches!(
            AllocBitmap::decode("gAA"),
            Err(BitmapError::NotBase64 { .. })
        ));
        let err = AllocBitmap::decode_for(FRESH_24, &net("10.0.0.0/23"));
        assert!(matches!(
            err,
            Err(BitmapError::WrongLength {
                bytes: 32,
                expected: 64,
                ..
            })
        ));
        let msg = err.map(|_| ()).unwrap_err().to_string();
        assert!(
            msg.contains("10.0.0.0/23") && msg.contains("32 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn a_bitmap_longer_than_its_cidr_is_refused_before_decoding() {
        // A /16's bitmap (8 KiB) given for a /24: refused by length, and the decoded size
        // reported exactly; garbage of that length is refused the same way (not decoded).
        let long = GO_STD.encode([0xffu8; 8192]);
        let err = AllocBitmap::decode_for(&long, &net("10.0.0.0/24"));
        assert!(
            matches!(
                err,
                Err(BitmapError::WrongLength {
                    bytes: 8192,
                    expected: 32,
                    ..
                })
            ),
            "{err:?}"
        );
        let garbage = "*".repeat(long.len());
        assert!(matches!(
            AllocBitmap::decode_for(&garbage, &net("10.0.0.0/24")),
            Err(BitmapError::WrongLength { .. })
        ));
        // One byte too many (33 = 44 characters with padding) is refused too.
        let one_more = GO_STD.encode([0u8; 33]);
        assert!(matches!(
            AllocBitmap::decode_for(&one_more, &net("10.0.0.0/24")),
            Err(BitmapError::WrongLength { bytes: 33, .. })
        ));
    }

    #[test]
    fn line_breaks_are_skipped() -> Result<(), BitmapError> {
        let wrapped = format!("{}\n{}\r\n", &FRESH_24[..20], &FRESH_24[20..]);
        assert_eq!(AllocBitmap::decode(&wrapped)?.encode(), FRESH_24);
        Ok(())
    }

    #[test]
    fn sizes_are_bounded_before_decoding() {
        let huge = "A".repeat(MAX_ENCODED_LEN + 4);
        assert!(matches!(
            AllocBitmap::decode(&huge),
            Err(BitmapError::TooLong { .. })
        ));
        let spaced = " ".repeat(MAX_ENCODED_LEN * 2 + 1);
        assert!(matches!(
            AllocBitmap::decode(&spaced),
            Err(BitmapError::TooLong { .. })
        ));
        assert!(matches!(
            AllocBitmap::empty_for(&net("10.0.0.0/7")),
            Err(BitmapError::CidrTooLarge { host_bits: 25, .. })
        ));
        assert!(AllocBitmap::empty_for(&net("2001:db8::/64")).is_err());
    }

    #[test]
    fn a_slash_8_bitmap_is_walked_quickly() -> Result<(), BitmapError> {
        let cidr = net("10.0.0.0/8");
        let mut bitmap = AllocBitmap::fresh(&cidr, [ip("10.0.0.1")])?;
        bitmap.set(index_of(&cidr, ip("10.200.3.4")).unwrap_or(0));
        let text = bitmap.encode();
        let decoded = AllocBitmap::decode_for(&text, &cidr)?;
        let addrs: Vec<IpAddr> = decoded.addresses(&cidr).collect();
        assert_eq!(
            addrs,
            vec![
                ip("10.0.0.0"),
                ip("10.0.0.1"),
                ip("10.200.3.4"),
                ip("10.255.255.255")
            ]
        );
        Ok(())
    }
}
