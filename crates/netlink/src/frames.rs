//! Ethernet frames that announce a new address to the segment: a gratuitous ARP
//! (RFC 5227 announcement) for IPv4 and an unsolicited neighbour advertisement (RFC 4861
//! §7.2.6) for IPv6; and the RFC 5227 ARP probe with the parser that recognises a
//! conflicting answer. Pure byte work, so every field is unit-tested without a kernel.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::types::MacAddr;

/// Shortest Ethernet frame without FCS; shorter ones are padded (some NICs do not).
const MIN_FRAME_LEN: usize = 60;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// NA flags word with only Override set: unsolicited, not a router.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;

/// All-nodes multicast: where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn ethernet_header(frame: &mut Vec<u8>, dst: [u8; 6], src: MacAddr, ethertype: u16) {
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < MIN_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
    frame
}

/// A broadcast ARP request with sender = target = `ip` (an ARP announcement): peers update
/// their caches, and one that holds `ip` too would notice the conflict.
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MIN_FRAME_LEN);
    ethernet_header(&mut frame, [0xff; 6], mac, ETHERTYPE_ARP);
    frame.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    frame.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    frame.push(6); // hardware address length
    frame.push(4); // protocol address length
    frame.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    frame.extend_from_slice(&mac.0);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip.octets());
    pad(frame)
}

/// An RFC 5227 ARP probe for `ip`: a broadcast request with sender IP 0.0.0.0 (so no peer
/// updates its cache from it) and target IP `ip`. A host holding `ip` answers it.
pub fn arp_probe(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = gratuitous_arp(mac, ip);
    frame[28..32].copy_from_slice(&[0; 4]);
    frame
}

/// The MAC address of another host claiming `ip` in `frame`, an Ethernet frame received
/// while probing: an ARP packet (request or reply) whose sender IP is `ip`, or another
/// prober's probe for `ip` (sender 0.0.0.0, target `ip`), sent by a MAC other than `own`.
pub fn arp_conflict(frame: &[u8], ip: Ipv4Addr, own: MacAddr) -> Option<MacAddr> {
    if frame.len() < 42 || frame[12..14] != ETHERTYPE_ARP.to_be_bytes() {
        return None;
    }
    // Ethernet / IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if frame[14..20] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&frame[22..28]);
    if sender == own.0 {
        return None;
    }
    let sender_ip = &frame[28..32];
    let target_ip = &frame[38..42];
    let holds = sender_ip == ip.octets();
    let probes_too = sender_ip == [0; 4] && target_ip == ip.octets() && frame[20..22] == [0, 1];
    (holds || probes_too).then_some(MacAddr(sender))
}

/// An unsolicited neighbour advertisement for `ip` to all nodes, with the Override flag and
/// the target link-layer address option, from `ip` itself.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.push(NEIGHBOR_ADVERTISEMENT);
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled below
    icmp.extend_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    icmp.extend_from_slice(&ip.octets());
    icmp.push(OPTION_TARGET_LINK_LAYER_ADDRESS);
    icmp.push(1); // option length in units of 8 bytes
    icmp.extend_from_slice(&mac.0);
    let checksum = icmpv6_checksum(ip, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + icmp.len());
    let group = ALL_NODES.octets();
    let dst_mac = [0x33, 0x33, group[12], group[13], group[14], group[15]];
    ethernet_header(&mut frame, dst_mac, mac, ETHERTYPE_IPV6);
    frame.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, no class/label
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.push(ICMPV6);
    frame.push(255); // hop limit: receivers drop NAs with anything else
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&group);
    frame.extend_from_slice(&icmp);
    pad(frame)
}

/// ICMPv6 checksum: one's complement sum over the pseudo-header and the message.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    !ones_complement_sum(&[&pseudo, message])
}

fn ones_complement_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for byte in chunks.iter().flat_map(|c| c.iter().copied()) {
        match odd.take() {
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
            None => odd = Some(byte),
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    #[test]
    fn arp_announcement_layout() {
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let f = gratuitous_arp(MAC, ip);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &MAC.0);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &MAC.0);
        assert_eq!(&f[28..32], &[10, 0, 0, 5]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 0, 0, 5]);
        assert!(f[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn arp_probe_has_a_zero_sender_address() {
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let f = arp_probe(MAC, ip);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[22..28], &MAC.0);
        assert_eq!(&f[28..32], &[0; 4]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 0, 0, 5]);
    }

    /// An ARP reply from `sender` saying it holds `sender_ip`, to `target_ip`.
    fn reply(sender: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
        let mut f = gratuitous_arp(sender, sender_ip);
        f[20..22].copy_from_slice(&[0, 2]);
        f[38..42].copy_from_slice(&target_ip.octets());
        f
    }

    #[test]
    fn conflicts_are_answers_or_probes_from_other_hosts() {
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let other = MacAddr([0x02, 0, 0, 0, 0, 9]);
        let zero = Ipv4Addr::UNSPECIFIED;
        // Linux answers a probe with a reply from the address, to 0.0.0.0.
        assert_eq!(arp_conflict(&reply(other, ip, zero), ip, MAC), Some(other));
        assert_eq!(
            arp_conflict(&gratuitous_arp(other, ip), ip, MAC),
            Some(other)
        );
        assert_eq!(arp_conflict(&arp_probe(other, ip), ip, MAC), Some(other));
        // Not conflicts: our own frames, other addresses, other protocols, runts.
        assert_eq!(arp_conflict(&arp_probe(MAC, ip), ip, MAC), None);
        assert_eq!(arp_conflict(&reply(MAC, ip, zero), ip, MAC), None);
        let elsewhere = Ipv4Addr::new(10, 0, 0, 6);
        assert_eq!(arp_conflict(&reply(other, elsewhere, ip), ip, MAC), None);
        assert_eq!(arp_conflict(&arp_probe(other, elsewhere), ip, MAC), None);
        let na = unsolicited_na(other, "fd00::5".parse().expect("ip"));
        assert_eq!(arp_conflict(&na, ip, MAC), None);
        assert_eq!(arp_conflict(&reply(other, ip, zero)[..41], ip, MAC), None);
    }

    #[test]
    fn neighbour_advertisement_layout() {
        let ip: Ipv6Addr = "fd00::5".parse().expect("ip");
        let f = unsolicited_na(MAC, ip);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 32);
        assert_eq!(f[20], 58);
        assert_eq!(f[21], 255);
        assert_eq!(&f[22..38], &ip.octets());
        assert_eq!(&f[38..54], &ALL_NODES.octets());
        assert_eq!(f[54], 136);
        assert_eq!(&f[58..62], &[0x20, 0, 0, 0]);
        assert_eq!(&f[62..78], &ip.octets());
        assert_eq!(&f[78..80], &[2, 1]);
        assert_eq!(&f[80..86], &MAC.0);
    }

    #[test]
    fn checksum_matches_a_known_vector() {
        // RFC 1071 example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d.
        assert_eq!(
            ones_complement_sum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0xddf2
        );
        // Odd length pads with a zero byte; chunk borders do not matter.
        assert_eq!(ones_complement_sum(&[&[0x01], &[0x02, 0x03]]), 0x0402);
    }

    proptest! {
        #[test]
        fn na_checksum_verifies(mac in any::<[u8; 6]>(), ip in any::<u128>()) {
            let ip = Ipv6Addr::from(ip);
            let f = unsolicited_na(MacAddr(mac), ip);
            let icmp = &f[54..86];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip.octets());
            pseudo.extend_from_slice(&ALL_NODES.octets());
            pseudo.extend_from_slice(&32u32.to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            // A correct checksum makes the whole sum 0xffff.
            prop_assert_eq!(ones_complement_sum(&[&pseudo, icmp]), 0xffff);
        }

        #[test]
        fn arbitrary_frames_never_panic_the_parser(frame in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = arp_conflict(&frame, Ipv4Addr::new(10, 0, 0, 5), MAC);
        }

        #[test]
        fn arp_carries_the_address_twice(mac in any::<[u8; 6]>(), ip in any::<u32>()) {
            let ip = Ipv4Addr::from(ip);
            let f = gratuitous_arp(MacAddr(mac), ip);
            prop_assert_eq!(&f[28..32], &ip.octets());
            prop_assert_eq!(&f[38..42], &ip.octets());
            prop_assert_eq!(&f[22..28], &mac);
        }
    }
}
