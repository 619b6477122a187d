//! Checks for the names networks and requests carry: Linux interface names, Kubernetes object
//! names, and identifiers that end up in file names or binary names.
//!
//! Each check returns `None` when the name is fine, or a short reason meant to follow
//! "must …" / "is …" in an error message.

/// Linux `IFNAMSIZ` minus the terminating NUL: the longest interface name the kernel accepts.
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest Kubernetes DNS-1123 label (namespace names).
const MAX_LABEL_LEN: usize = 63;
/// Longest Kubernetes DNS-1123 subdomain (most object names).
const MAX_SUBDOMAIN_LEN: usize = 253;
/// Longest identifier plexus accepts where it becomes a file or binary name (`NAME_MAX` 255
/// minus room for a suffix such as `.conf`).
pub const MAX_FILE_COMPONENT_LEN: usize = 250;

/// Why `name` is not a valid Linux interface name, if it is not.
///
/// Mirrors the kernel's `dev_valid_name`: 1..=15 bytes, not `.` or `..`, no `/`, `:`,
/// whitespace, NUL or other control characters.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Some(format!(
            "is {} bytes long; Linux interface names hold at most {MAX_IFNAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some("must not be \".\" or \"..\"".to_owned());
    }
    ifname_chars_problem(name)
}

/// Why `text` holds a character an interface name may not contain, if it does.
pub fn ifname_chars_problem(text: &str) -> Option<String> {
    text.chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        .map(|c| format!("must not contain {c:?} (no '/', ':', whitespace or control characters)"))
}

/// Why `text` is unsafe as one path component or binary name, if it is: empty, `.`, `..`,
/// containing `/`, `..`, NUL, whitespace or control characters, or overly long.
pub fn file_component_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if text.len() > MAX_FILE_COMPONENT_LEN {
        return Some(format!(
            "is {} bytes long; at most {MAX_FILE_COMPONENT_LEN} are allowed",
            text.len()
        ));
    }
    if text == "." || text.contains("..") {
        return Some("must not be \".\" or contain \"..\"".to_owned());
    }
    text.chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control())
        .map(|c| format!("must not contain {c:?} (no '/', whitespace or control characters)"))
}

/// Why `name` is not a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63), if so.
pub fn dns_label_problem(name: &str) -> Option<String> {
    dns_problem(name, MAX_LABEL_LEN, false)
}

/// Why `name` is not a DNS-1123 subdomain (labels joined by `.`, at most 253), if so.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    dns_problem(name, MAX_SUBDOMAIN_LEN, true)
}

/// Shared body of the DNS-1123 checks.
fn dns_problem(name: &str, max: usize, dots: bool) -> Option<String> {
    let what = if dots {
        "a DNS-1123 subdomain"
    } else {
        "a DNS-1123 label"
    };
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > max {
        return Some(format!(
            "is {} characters long; {what} holds at most {max}",
            name.len()
        ));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let allowed = |c: char| alnum(c) || c == '-' || (dots && c == '.');
    let first_last_ok =
        name.chars().next().is_some_and(alnum) && name.chars().next_back().is_some_and(alnum);
    let labels_ok = !dots
        || name.split('.').all(|label| {
            label.chars().next().is_some_and(alnum) && label.chars().next_back().is_some_and(alnum)
        });
    if !name.chars().all(allowed) || !first_last_ok || !labels_ok {
        let alphabet = if dots {
            "lowercase letters, digits, '-' and '.'"
        } else {
            "lowercase letters, digits and '-'"
        };
        return Some(format!(
            "must be {what}: {alphabet}, starting and ending with a letter or digit"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert_eq!(ifname_problem("eth0"), None);
        assert_eq!(ifname_problem("a23456789012345"), None);
        assert!(ifname_problem("a234567890123456").is_some());
        assert!(ifname_problem("").is_some());
        assert!(ifname_problem("..").is_some());
        assert!(ifname_problem("eth 0").is_some());
        assert!(ifname_problem("eth:0").is_some());
        assert!(ifname_problem("a/b").is_some());
        assert!(ifname_problem("a\0b").is_some());
    }

    #[test]
    fn file_components_refuse_traversal() {
        assert_eq!(file_component_problem("ipvlan"), None);
        assert_eq!(file_component_problem("my-net_1.v2"), None);
        for bad in ["", ".", "..", "a/b", "a..b", "a\0b", "a b", "a\tb"] {
            assert!(file_component_problem(bad).is_some(), "{bad:?}");
        }
        assert!(file_component_problem(&"x".repeat(251)).is_some());
    }

    #[test]
    fn dns_names() {
        assert_eq!(dns_label_problem("kube-system"), None);
        assert!(dns_label_problem("Kube").is_some());
        assert!(dns_label_problem("-a").is_some());
        assert!(dns_label_problem("a.b").is_some());
        assert!(dns_label_problem(&"a".repeat(64)).is_some());
        assert_eq!(dns_subdomain_problem("net.a-1"), None);
        assert!(dns_subdomain_problem("net..a").is_some());
        assert!(dns_subdomain_problem("net.-a").is_some());
        assert!(dns_subdomain_problem("net_a").is_some());
    }
}
