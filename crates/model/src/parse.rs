//! Strict CIDR parsing: `address/prefix` with the address in the standard library's strict
//! syntax (no leading zeros, which some tools read as octal) and a decimal prefix.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parse `address/prefix`; host bits are kept (callers clear them where DANM does).
///
/// `ipnet`'s own parser accepts `010.0.0.0/24`; Go's `net.ParseCIDR`, which DANM used,
/// refuses it, and so does this.
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    let (addr, prefix) = text.split_once('/')?;
    let addr = addr.parse::<IpAddr>().ok()?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix = prefix.parse::<u8>().ok()?;
    IpNet::new(addr, prefix).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn strict_cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/24").map(|n| n.to_string()),
            Some("10.0.0.0/24".into())
        );
        assert_eq!(
            parse_cidr("10.0.0.7/24").map(|n| n.to_string()),
            Some("10.0.0.7/24".into())
        );
        assert_eq!(
            parse_cidr("2001:db8::/64").map(|n| n.prefix_len()),
            Some(64)
        );
        for bad in [
            "010.0.0.0/24",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            " 10.0.0.0/8",
            "10.0.0.0/8/8",
            "2001:db8::/129",
            "",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }
}
