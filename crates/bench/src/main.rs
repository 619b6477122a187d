//! `plexus-bench`: whole-process CNI benchmarks, plexus side by side with its peers.
//!
//! Every figure comes from exec'ing the plugin binaries exactly as a runtime does (env +
//! stdin, one process per call), in one run, so the ratios are fair on a noisy machine.
//! See `scripts/bench-ipam` and `docs/benchmarks.md`.

// A report tool: its Markdown output belongs on stdout (plugins never print there).
#![allow(clippy::print_stdout)]

mod ipam;
mod measure;
mod multinode;
mod soak;
mod soak_procs;

use clap::{Parser, Subcommand};

/// Command-line interface of the benchmark harness.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// plexus-ipam vs Debian host-local: sequential latency, 16-way throughput, big pools.
    Ipam(ipam::IpamArgs),
    /// 8 nodes × 4 processes: floor, host-local and plexus on each backend, one run.
    Multinode(multinode::MultinodeArgs),
    /// Churn ADD/DEL on one backend for a while; sample memory, descriptors, file sizes;
    /// verify the store against the live set and judge against stated bounds.
    Soak(soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ipam(args) => ipam::run(&args),
        Command::Multinode(args) => multinode::run(&args),
        Command::Soak(args) => soak::run(&args),
    }
}
