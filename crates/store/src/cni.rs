//! How a [`StoreError`] is reported to a CNI runtime: the one mapping of store outcomes
//! onto CNI codes, shared by `plexus-ipam`, the `plexus` meta-plugin and `plexusctl`, so a
//! store failure carries the same code whichever binary met it (`docs/errors.md`).

use plexus_cni::codes::{self, plexus};

use crate::error::StoreError;

/// The details of the errors a runtime should simply retry.
const RETRY_LATER: &str = "retry the operation later";

impl StoreError {
    /// The CNI code this error is reported with by every plexus binary.
    ///
    /// | variant | code |
    /// |---|---|
    /// | `Exhausted` | 100 `plexus::POOL_EXHAUSTED` |
    /// | `AddressTaken` | 101 `plexus::ADDRESS_TAKEN` |
    /// | `AttachmentHoldsOther` | 104 `plexus::ATTACHMENT_HOLDS_OTHER` |
    /// | `Corrupt` | 105 `plexus::STORE_CORRUPT` |
    /// | `Config` | 7 `INVALID_CONFIG` |
    /// | `Unavailable`, `Busy`, `Conflict` | 11 `TRY_AGAIN_LATER` |
    /// | `Internal` | 999 `INTERNAL` |
    ///
    /// `Conflict` is 11: a plugin meets it only when a network definition it relies on was
    /// changed by another writer (`plexusctl network`) between its read and its write. The
    /// store call itself must not be repeated as is, but a plugin call keeps no state: the
    /// runtime's retry reads the current definition and decides again, which is what a
    /// conflict asks for. It is not 7 (the user's configuration is not at fault and will
    /// work on the retry) nor 999 (nothing is broken; a concurrent edit is expected).
    pub fn cni_code(&self) -> u32 {
        match self {
            StoreError::Exhausted { .. } => plexus::POOL_EXHAUSTED,
            StoreError::AddressTaken { .. } => plexus::ADDRESS_TAKEN,
            StoreError::AttachmentHoldsOther { .. } => plexus::ATTACHMENT_HOLDS_OTHER,
            StoreError::Corrupt { .. } => plexus::STORE_CORRUPT,
            StoreError::Config { .. } => codes::INVALID_CONFIG,
            StoreError::Unavailable { .. }
            | StoreError::Busy { .. }
            | StoreError::Conflict { .. } => codes::TRY_AGAIN_LATER,
            StoreError::Internal { .. } => codes::INTERNAL,
        }
    }

    /// This error as a CNI error: [`StoreError::cni_code`], the message (which names the
    /// network, address, holder or field, never a secret), and what to do when the code
    /// alone does not say it.
    pub fn to_cni_error(&self) -> plexus_cni::Error {
        let details = match self {
            StoreError::Unavailable { .. } | StoreError::Busy { .. } => RETRY_LATER,
            StoreError::Conflict { .. } => {
                "a network definition changed while this call used it; retry the operation \
                 to read it again"
            }
            _ => "",
        };
        plexus_cni::Error::new(self.cni_code(), self.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn reason() -> String {
        "why".to_owned()
    }

    /// One value of every variant, in declaration order ([`kind`] makes a new variant a
    /// compile error until it is listed here too).
    fn every_variant() -> Vec<StoreError> {
        let ip = IpAddr::from([10, 0, 0, 5]);
        let all = vec![
            StoreError::Unavailable { reason: reason() },
            StoreError::Busy { reason: reason() },
            StoreError::Exhausted {
                network: "net1".into(),
                range_set: "10.0.0.0/30".into(),
            },
            StoreError::AddressTaken {
                network: "net1".into(),
                ip,
                container_id: "c1".into(),
                ifname: "eth0".into(),
            },
            StoreError::AttachmentHoldsOther {
                network: "net1".into(),
                held: ip,
                requested: IpAddr::from([10, 0, 0, 6]),
            },
            StoreError::Config {
                field: "ipam.store.type".into(),
                reason: reason(),
            },
            StoreError::Corrupt { reason: reason() },
            StoreError::Conflict { reason: reason() },
            StoreError::Internal { reason: reason() },
        ];
        all
    }

    /// The variant's name; no wildcard arm, so that a new variant fails to compile here.
    fn kind(err: &StoreError) -> &'static str {
        match err {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Busy { .. } => "busy",
            StoreError::Exhausted { .. } => "exhausted",
            StoreError::AddressTaken { .. } => "address_taken",
            StoreError::AttachmentHoldsOther { .. } => "attachment_holds_other",
            StoreError::Config { .. } => "config",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Internal { .. } => "internal",
        }
    }

    #[test]
    fn every_variant_has_its_code() {
        let got: Vec<(String, u32)> = every_variant()
            .iter()
            .map(|e| (kind(e).to_owned(), e.cni_code()))
            .collect();
        let expected = [
            ("unavailable", 11),
            ("busy", 11),
            ("exhausted", 100),
            ("address_taken", 101),
            ("attachment_holds_other", 104),
            ("config", 7),
            ("corrupt", 105),
            ("conflict", 11),
            ("internal", 999),
        ];
        let expected: Vec<(String, u32)> = expected
            .iter()
            .map(|(k, c)| ((*k).to_owned(), *c))
            .collect();
        assert_eq!(got, expected);
        // The list holds each variant once, so the table above covers them all.
        let kinds: std::collections::BTreeSet<_> = every_variant().iter().map(kind).collect();
        assert_eq!(kinds.len(), every_variant().len());
    }

    #[test]
    fn the_cni_error_keeps_code_and_message() {
        for err in every_variant() {
            let cni = err.to_cni_error();
            assert_eq!(cni.code, err.cni_code(), "{err:?}");
            assert_eq!(cni.msg, err.to_string(), "{err:?}");
        }
    }

    #[test]
    fn retryable_errors_say_so_in_the_details() {
        for err in every_variant() {
            let details = err.to_cni_error().details;
            if err.cni_code() == codes::TRY_AGAIN_LATER {
                assert!(
                    details.contains("retry the operation"),
                    "{err:?}: {details}"
                );
            } else {
                assert!(details.is_empty(), "{err:?}: {details}");
            }
        }
    }

    #[test]
    fn the_holder_is_in_the_message_of_a_taken_address() {
        let taken = &every_variant()[3];
        let cni = taken.to_cni_error();
        assert_eq!(cni.code, 101);
        assert!(
            cni.msg.contains("10.0.0.5") && cni.msg.contains("c1") && cni.msg.contains("eth0"),
            "{}",
            cni.msg
        );
    }
}
