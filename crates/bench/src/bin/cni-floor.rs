//! `cni-floor`: the benchmark floor — a CNI IPAM "plugin" that reads its config and answers
//! every ADD with the same fixed result. Timing it measures only what the harness and a
//! process start cost, so other plugins can be compared against it.

use std::io::{Read, Write};

fn main() {
    let mut config = Vec::new();
    // The runtime writes the config on stdin; a real plugin reads it, so the floor does too.
    let _ = std::io::stdin().read_to_end(&mut config);
    if std::env::var("CNI_COMMAND").as_deref() == Ok("ADD") {
        let result = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.255.0.1/16"}]}"#;
        let _ = std::io::stdout().write_all(result.as_bytes());
    }
}
