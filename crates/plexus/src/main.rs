//! The `plexus` CNI meta-plugin binary: reads the CNI environment and stdin, writes one result.

use plexus::PlexusPlugin;

const ABOUT: &str = concat!(
    "plexus ",
    env!("CARGO_PKG_VERSION"),
    ": CNI meta-plugin (several networks per pod, built-in macvlan/ipvlan, delegation)"
);

fn main() {
    let code = plexus_cni::run(
        &PlexusPlugin::default(),
        ABOUT,
        |key| std::env::var(key).ok(),
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    );
    std::process::exit(code);
}
