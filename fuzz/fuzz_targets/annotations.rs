//! Fuzz target: the pod's request annotations: DANM's interfaces list
//! (`parse_danm_interfaces`), the NPWG `k8s.v1.cni.cncf.io/networks` value in both its
//! JSON and its `ns/name@if` short form (`parse_npwg_networks`), and the choice between
//! annotation keys (`parse_pod_annotations`).
//!
//! The whole input is parsed as each value; then, split at NUL bytes into alternating keys
//! and values, as a pod's annotation map.
//!
//! Invariants: errors have a non-empty, bounded message; at most `MAX_ATTACHMENTS` requests,
//! numbered in order; every request names a network.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_fuzz::{check_message, nul_fields};
use plexus_model::annotation::MAX_ATTACHMENTS;
use plexus_model::{
    AnnotationError, AttachmentRequest, parse_danm_interfaces, parse_npwg_networks,
    parse_pod_annotations,
};

fn check(result: Result<Vec<AttachmentRequest>, AnnotationError>, input_len: usize) {
    match result {
        Ok(requests) => {
            assert!(requests.len() <= MAX_ATTACHMENTS);
            for (i, request) in requests.iter().enumerate() {
                assert_eq!(request.index, i);
                assert!(!request.network.name.is_empty());
            }
        }
        Err(err) => check_message(&err.to_string(), input_len),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(parse_danm_interfaces(text), data.len());
        check(parse_npwg_networks(text), data.len());
    }
    let fields: Vec<&str> = nul_fields(data, 16).into_iter().flatten().collect();
    let pairs = fields.chunks_exact(2).map(|kv| (kv[0], kv[1]));
    match parse_pod_annotations(pairs) {
        Ok(Some(request)) => check(Ok(request.attachments), data.len()),
        Ok(None) => {}
        Err(err) => check_message(&err.to_string(), data.len()),
    }
});
