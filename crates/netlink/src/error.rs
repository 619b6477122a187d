//! The one error type of the dataplane: what kind of failure (so callers can branch on it,
//! e.g. treat `NotFound` as success during teardown, or skip a test on `Unsupported`) and the
//! context an operator needs to act on it (which operation, which link, which netns).

use std::fmt;

use nix::errno::Errno;

use crate::types::Netns;

/// Result of every dataplane operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operations of [`crate::Dataplane`], named for error messages and call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// [`crate::Dataplane::create_link`].
    CreateLink,
    /// [`crate::Dataplane::move_link`].
    MoveLink,
    /// [`crate::Dataplane::rename_link`].
    RenameLink,
    /// [`crate::Dataplane::set_mtu`].
    SetMtu,
    /// [`crate::Dataplane::set_mac`].
    SetMac,
    /// [`crate::Dataplane::set_up`].
    SetUp,
    /// [`crate::Dataplane::set_down`].
    SetDown,
    /// [`crate::Dataplane::delete_link`].
    DeleteLink,
    /// [`crate::Dataplane::link`].
    GetLink,
    /// [`crate::Dataplane::list_links`].
    ListLinks,
    /// [`crate::Dataplane::add_address`].
    AddAddress,
    /// [`crate::Dataplane::del_address`].
    DelAddress,
    /// [`crate::Dataplane::list_addresses`].
    ListAddresses,
    /// [`crate::Dataplane::add_route`].
    AddRoute,
    /// [`crate::Dataplane::del_route`].
    DelRoute,
    /// [`crate::Dataplane::list_routes`].
    ListRoutes,
    /// [`crate::Dataplane::add_rule`].
    AddRule,
    /// [`crate::Dataplane::del_rule`].
    DelRule,
    /// [`crate::Dataplane::list_rules`].
    ListRules,
    /// [`crate::Dataplane::set_sysctls`].
    SetSysctls,
    /// [`crate::Dataplane::announce`].
    Announce,
    /// [`crate::Dataplane::arp_probe`].
    ArpProbe,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Op; 22] = [
        Op::CreateLink,
        Op::MoveLink,
        Op::RenameLink,
        Op::SetMtu,
        Op::SetMac,
        Op::SetUp,
        Op::SetDown,
        Op::DeleteLink,
        Op::GetLink,
        Op::ListLinks,
        Op::AddAddress,
        Op::DelAddress,
        Op::ListAddresses,
        Op::AddRoute,
        Op::DelRoute,
        Op::ListRoutes,
        Op::AddRule,
        Op::DelRule,
        Op::ListRules,
        Op::SetSysctls,
        Op::Announce,
        Op::ArpProbe,
    ];

    /// Human wording of the operation, used in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Op::CreateLink => "create link",
            Op::MoveLink => "move link",
            Op::RenameLink => "rename link",
            Op::SetMtu => "set MTU of link",
            Op::SetMac => "set MAC of link",
            Op::SetUp => "set link up",
            Op::SetDown => "set link down",
            Op::DeleteLink => "delete link",
            Op::GetLink => "get link",
            Op::ListLinks => "list links",
            Op::AddAddress => "add address to link",
            Op::DelAddress => "delete address from link",
            Op::ListAddresses => "list addresses of link",
            Op::AddRoute => "add route",
            Op::DelRoute => "delete route",
            Op::ListRoutes => "list routes",
            Op::AddRule => "add policy rule",
            Op::DelRule => "delete policy rule",
            Op::ListRules => "list policy rules",
            Op::SetSysctls => "set sysctls of link",
            Op::Announce => "announce addresses of link",
            Op::ArpProbe => "probe for a duplicate IPv4 address on link",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What went wrong, independent of where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The link, address, route, rule or netns does not exist (ENODEV, ENOENT, ESRCH,
    /// EADDRNOTAVAIL).
    NotFound,
    /// The link name, address, route or rule is already there (EEXIST).
    Exists,
    /// The kernel cannot do it: EOPNOTSUPP (e.g. "Unknown device type" when the ipvlan or
    /// 8021q module is missing), EAFNOSUPPORT (IPv6 disabled), EPROTONOSUPPORT.
    Unsupported,
    /// Missing privileges (EPERM, EACCES): plexus needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
    Permission,
    /// The request itself is wrong: a bad name, an MTU out of range, a family mismatch
    /// (EINVAL, ERANGE) — detected locally or by the kernel.
    Invalid,
    /// Anything else (EBUSY, ENETUNREACH, ENETDOWN, a closed netlink socket, ...).
    Other,
}

impl ErrorKind {
    /// Classifies a kernel errno.
    pub fn from_errno(errno: Errno) -> ErrorKind {
        match errno {
            Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL => {
                ErrorKind::NotFound
            }
            Errno::EEXIST => ErrorKind::Exists,
            Errno::EOPNOTSUPP | Errno::EAFNOSUPPORT | Errno::EPROTONOSUPPORT => {
                ErrorKind::Unsupported
            }
            Errno::EPERM | Errno::EACCES => ErrorKind::Permission,
            Errno::EINVAL | Errno::ERANGE => ErrorKind::Invalid,
            _ => ErrorKind::Other,
        }
    }
}

/// Where a failure happened: the operation, the link it was about, and the netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorContext {
    /// The failing operation.
    pub op: Op,
    /// The link the operation was about, when there is one.
    pub link: Option<String>,
    /// The network namespace the operation ran in.
    pub netns: Netns,
}

impl ErrorContext {
    /// Context for an operation on `link` in `netns`.
    pub fn new(op: Op, link: Option<&str>, netns: &Netns) -> ErrorContext {
        ErrorContext {
            op,
            link: link.map(str::to_owned),
            netns: netns.clone(),
        }
    }

    /// An error of `kind` in this context.
    pub fn error(&self, kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error::new(kind, self.clone(), detail)
    }

    /// An error classified from a kernel errno, its description as the detail.
    pub fn errno(&self, errno: Errno) -> Error {
        self.error(ErrorKind::from_errno(errno), errno_detail(errno))
    }
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.describe())?;
        if let Some(link) = &self.link {
            write!(f, " {link:?}")?;
        }
        write!(f, " in netns {}", self.netns)
    }
}

/// `"No such device (ENODEV)"`: the description and the symbolic name of an errno.
pub fn errno_detail(errno: Errno) -> String {
    format!("{} ({errno:?})", errno.desc())
}

/// A failed dataplane operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// See [`ErrorKind::NotFound`].
    #[error("{context}: not found: {detail}")]
    NotFound {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
    /// See [`ErrorKind::Exists`].
    #[error("{context}: already exists: {detail}")]
    Exists {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
    /// See [`ErrorKind::Unsupported`].
    #[error("{context}: not supported here: {detail}")]
    Unsupported {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
    /// See [`ErrorKind::Permission`].
    #[error("{context}: permission denied: {detail}")]
    Permission {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
    /// See [`ErrorKind::Invalid`].
    #[error("{context}: invalid request: {detail}")]
    Invalid {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
    /// See [`ErrorKind::Other`].
    #[error("{context}: {detail}")]
    Other {
        /// Where it happened.
        context: ErrorContext,
        /// What the kernel (or the check) said.
        detail: String,
    },
}

impl Error {
    /// Builds an error of `kind`.
    pub fn new(kind: ErrorKind, context: ErrorContext, detail: impl Into<String>) -> Error {
        let detail = detail.into();
        match kind {
            ErrorKind::NotFound => Error::NotFound { context, detail },
            ErrorKind::Exists => Error::Exists { context, detail },
            ErrorKind::Unsupported => Error::Unsupported { context, detail },
            ErrorKind::Permission => Error::Permission { context, detail },
            ErrorKind::Invalid => Error::Invalid { context, detail },
            ErrorKind::Other => Error::Other { context, detail },
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Exists { .. } => ErrorKind::Exists,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Permission { .. } => ErrorKind::Permission,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Other { .. } => ErrorKind::Other,
        }
    }

    /// Where it happened.
    pub fn context(&self) -> &ErrorContext {
        match self {
            Error::NotFound { context, .. }
            | Error::Exists { context, .. }
            | Error::Unsupported { context, .. }
            | Error::Permission { context, .. }
            | Error::Invalid { context, .. }
            | Error::Other { context, .. } => context,
        }
    }

    /// What the kernel (or the check) said.
    pub fn detail(&self) -> &str {
        match self {
            Error::NotFound { detail, .. }
            | Error::Exists { detail, .. }
            | Error::Unsupported { detail, .. }
            | Error::Permission { detail, .. }
            | Error::Invalid { detail, .. }
            | Error::Other { detail, .. } => detail,
        }
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// True for [`ErrorKind::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        self.kind() == ErrorKind::Unsupported
    }

    /// The same error with a hint appended to its detail.
    pub(crate) fn with_hint(self, hint: &str) -> Error {
        let kind = self.kind();
        let context = self.context().clone();
        let detail = format!("{}; {hint}", self.detail());
        Error::new(kind, context, detail)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn errno_classification_covers_the_documented_codes() {
        let cases = [
            (Errno::ENODEV, ErrorKind::NotFound),
            (Errno::ENOENT, ErrorKind::NotFound),
            (Errno::ESRCH, ErrorKind::NotFound),
            (Errno::EADDRNOTAVAIL, ErrorKind::NotFound),
            (Errno::EEXIST, ErrorKind::Exists),
            (Errno::EOPNOTSUPP, ErrorKind::Unsupported),
            (Errno::EAFNOSUPPORT, ErrorKind::Unsupported),
            (Errno::EPERM, ErrorKind::Permission),
            (Errno::EACCES, ErrorKind::Permission),
            (Errno::EINVAL, ErrorKind::Invalid),
            (Errno::EBUSY, ErrorKind::Other),
            (Errno::ENETUNREACH, ErrorKind::Other),
        ];
        for (errno, kind) in cases {
            assert_eq!(ErrorKind::from_errno(errno), kind, "{errno:?}");
        }
    }

    #[test]
    fn message_names_op_link_netns_and_cause() {
        let netns = Netns::Path(PathBuf::from("/run/netns/pod1"));
        let err = ErrorContext::new(Op::CreateLink, Some("tmp1"), &netns).errno(Errno::EOPNOTSUPP);
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.is_unsupported());
        assert_eq!(
            err.to_string(),
            "create link \"tmp1\" in netns /run/netns/pod1: not supported here: \
             Operation not supported on transport endpoint (EOPNOTSUPP)"
        );
        let hinted = err.with_hint("is the ipvlan module loaded?");
        assert_eq!(hinted.kind(), ErrorKind::Unsupported);
        assert!(hinted.detail().ends_with("; is the ipvlan module loaded?"));
    }

    #[test]
    fn context_without_link_is_worded_without_it() {
        let err = ErrorContext::new(Op::ListRoutes, None, &Netns::Host)
            .error(ErrorKind::Other, "socket closed");
        assert_eq!(err.to_string(), "list routes in netns host: socket closed");
        assert_eq!(err.context().op, Op::ListRoutes);
    }

    #[test]
    fn every_kind_round_trips_through_new() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Exists,
            ErrorKind::Unsupported,
            ErrorKind::Permission,
            ErrorKind::Invalid,
            ErrorKind::Other,
        ] {
            let ctx = ErrorContext::new(Op::SetUp, Some("x"), &Netns::Host);
            let err = Error::new(kind, ctx.clone(), "d");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.context(), &ctx);
            assert_eq!(err.detail(), "d");
        }
    }

    #[test]
    fn op_descriptions_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for op in Op::ALL {
            assert!(seen.insert(op.describe()), "duplicate wording for {op:?}");
        }
    }
}
