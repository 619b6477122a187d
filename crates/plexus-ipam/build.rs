//! Relinks `plexus-ipam` when the code layout changes: `scripts/build-release` passes
//! `scripts/symbol-order.txt` to the linker, a file cargo does not otherwise watch.

fn main() {
    println!("cargo::rerun-if-changed=../../scripts/symbol-order.txt");
}
