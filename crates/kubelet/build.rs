//! Compiles the kubelet's pod-resources v1 API (`proto/podresources_v1.proto`) with
//! `protoc` (Debian's protobuf-compiler, installed by `scripts/deps`). The client is always
//! built; the server side is what the `fake` feature's test kubelet serves.

fn main() {
    println!("cargo:rerun-if-changed=proto/podresources_v1.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/podresources_v1.proto"], &["proto"])
        .expect("compiling proto/podresources_v1.proto (is protoc installed? scripts/deps)");
}
