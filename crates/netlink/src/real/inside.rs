//! Jobs that only work from a thread inside the target netns: `/proc/sys/net` resolves to
//! the netns of the thread that opens it, and packet sockets bind to the netns they are
//! created in. These functions run on the netns thread (see `netns.rs`), never on a tokio
//! worker.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, bind, recvfrom, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::frames::{arp_conflict, arp_probe as probe_frame, gratuitous_arp, unsolicited_na};
use crate::probe::ArpProbe;
use crate::types::MacAddr;

/// A failure inside the netns thread, reported back as an errno and what was being done.
#[derive(Debug)]
pub(crate) struct InsideError {
    pub(crate) errno: Errno,
    pub(crate) doing: String,
}

fn fail(errno: Errno, doing: impl Into<String>) -> InsideError {
    InsideError {
        errno,
        doing: doing.into(),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32))
}

/// Writes each `(path, value)` in order; stops at the first failure.
pub(crate) fn write_sysctls(writes: &[(String, &'static str)]) -> Result<(), InsideError> {
    for (path, value) in writes {
        std::fs::write(path, value)
            .map_err(|e| fail(io_errno(&e), format!("writing {value} to {path}")))?;
    }
    Ok(())
}

/// The packet-socket address and MAC of `link` in the current netns.
fn link_address(link: &str) -> Result<(LinkAddr, MacAddr), InsideError> {
    let addrs = getifaddrs().map_err(|e| fail(e, "listing interfaces"))?;
    for entry in addrs {
        if entry.interface_name != link {
            continue;
        }
        let Some(ll) = entry.address.as_ref().and_then(|a| a.as_link_addr()) else {
            continue;
        };
        let mac = ll.addr().map(MacAddr).ok_or_else(|| {
            fail(
                Errno::EAFNOSUPPORT,
                format!("{link} has no Ethernet address"),
            )
        })?;
        return Ok((*ll, mac));
    }
    Err(fail(Errno::ENODEV, format!("finding interface {link}")))
}

/// Sends one announcement frame per address out of `link`; returns how many were sent.
pub(crate) fn announce(link: &str, addresses: &[IpAddr]) -> Result<usize, InsideError> {
    let (target, mac) = link_address(link)?;
    // Protocol 0: this socket only sends, it never receives.
    let socket = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail(e, "opening a packet socket (needs CAP_NET_RAW)"))?;
    for ip in addresses {
        let frame = match ip {
            IpAddr::V4(v4) => gratuitous_arp(mac, *v4),
            IpAddr::V6(v6) => unsolicited_na(mac, *v6),
        };
        sendto(socket.as_raw_fd(), &frame, &target, MsgFlags::empty())
            .map_err(|e| fail(e, format!("sending the announcement of {ip}")))?;
    }
    Ok(addresses.len())
}

/// RFC 5227 probe for `ip` out of `link`: sends the probes and reads every frame the link
/// receives until the listening time is over; returns the MAC of the first host that
/// claims `ip`. Blocking; runs on the netns thread.
pub(crate) fn arp_probe(
    link: &str,
    ip: Ipv4Addr,
    probe: ArpProbe,
) -> Result<Option<MacAddr>, InsideError> {
    let (target, mac) = link_address(link)?;
    let socket = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| fail(e, "opening a packet socket (needs CAP_NET_RAW)"))?;
    // Bound to the link: only its frames are read (the bind keeps the socket's protocol).
    bind(socket.as_raw_fd(), &target).map_err(|e| fail(e, format!("binding to {link}")))?;
    let frame = probe_frame(mac, ip);
    let mut buffer = [0u8; 1600];
    let probes = probe.probes.max(1);
    for sent in 1..=probes {
        sendto(socket.as_raw_fd(), &frame, &target, MsgFlags::empty())
            .map_err(|e| fail(e, format!("sending an ARP probe for {ip}")))?;
        let listen = if sent == probes {
            probe.wait
        } else {
            probe.interval
        };
        let until = Instant::now() + listen;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // A zero timeout would block forever: wait at least a millisecond.
            let micros = left.max(Duration::from_millis(1)).as_micros();
            let timeout = TimeVal::microseconds(i64::try_from(micros).unwrap_or(i64::MAX));
            setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)
                .map_err(|e| fail(e, "setting the receive timeout"))?;
            match recvfrom::<LinkAddr>(socket.as_raw_fd(), &mut buffer) {
                Ok((len, _from)) => {
                    if let Some(holder) = arp_conflict(&buffer[..len], ip, mac) {
                        return Ok(Some(holder));
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(fail(e, format!("reading answers to the probe for {ip}"))),
            }
        }
    }
    Ok(None)
}
