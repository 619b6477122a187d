//! Fuzz target: DANM `alloc` / `alloc6` bitmaps as imported (`AllocBitmap::decode_for`).
//!
//! The first input byte picks the CIDR (bit 7: IPv6; the rest, modulo 27, the host bits,
//! so CIDRs too large for a bitmap are tried as well); the rest is the base64 text.
//!
//! Invariants: errors have a non-empty, bounded message; a decoded bitmap has exactly the
//! CIDR's bit count, encodes back to text that decodes equal, and (up to a /16) its set
//! bits map to distinct addresses inside the CIDR, in order.

#![no_main]

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use plexus_fuzz::check_message;
use plexus_model::AllocBitmap;
use plexus_model::bitmap::{address_at, index_of};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let host_bits = selector & 0x7f;
    let host_bits = host_bits % 27;
    let cidr: IpNet = if selector & 0x80 == 0 {
        format!("10.0.0.0/{}", 32 - host_bits)
    } else {
        format!("2001:db8::/{}", 128 - host_bits)
    }
    .parse::<IpNet>()
    .expect("valid CIDR")
    .trunc();

    if let Err(err) = AllocBitmap::decode(text) {
        check_message(&err.to_string(), data.len());
    }
    let bitmap = match AllocBitmap::decode_for(text, &cidr) {
        Ok(bitmap) => bitmap,
        Err(err) => return check_message(&err.to_string(), data.len()),
    };
    assert_eq!(bitmap.len_bits(), (1u64 << host_bits).max(8));
    let again = AllocBitmap::decode_for(&bitmap.encode(), &cidr).expect("encoded bitmap decodes");
    assert_eq!(again, bitmap);
    assert!(bitmap.count_set() <= bitmap.len_bits());
    if host_bits > 16 {
        // Walking millions of addresses per input would only slow the fuzzer down.
        return;
    }
    let mut seen = 0u64;
    let mut last = None;
    for ip in bitmap.addresses(&cidr) {
        assert!(cidr.contains(&ip), "{ip} outside {cidr}");
        let index = index_of(&cidr, ip).expect("inside");
        assert!(bitmap.get(index));
        assert_eq!(address_at(&cidr, index), Some(ip));
        assert!(last < Some(ip), "addresses out of order");
        last = Some(ip);
        seen += 1;
    }
    assert!(seen <= bitmap.count_set());
});
