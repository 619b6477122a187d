//! The `plexus-ipam` CNI plugin binary: reads the CNI environment and stdin, writes one result.

use plexus_ipam::IpamPlugin;

const ABOUT: &str = concat!(
    "plexus-ipam ",
    env!("CARGO_PKG_VERSION"),
    ": cluster-wide IPAM for CNI (ADD, DEL, CHECK, STATUS, GC)"
);

fn main() {
    let code = plexus_cni::run(
        &IpamPlugin::default(),
        ABOUT,
        |key| std::env::var(key).ok(),
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    );
    std::process::exit(code);
}
