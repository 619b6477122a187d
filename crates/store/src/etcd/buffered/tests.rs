//! Properties of the range compares a commit sends (merged by directory when too many).

use super::*;

fn range(start: &str, end: &str) -> (Vec<u8>, Vec<u8>) {
    (start.as_bytes().to_vec(), end.as_bytes().to_vec())
}

#[test]
fn merging_covers_every_range_of_a_directory() {
    let merged = merge_by_directory(vec![
        range("/p/alloc/n/0005", "/p/alloc/n/0007"),
        range("/p/alloc/n/0001", "/p/alloc/n/0003"),
        range("/p/alloc/m/0009", "/p/alloc/m/000a"),
        range("/p/attach/n/c/e/", "/p/attach/n/c/e0"),
    ]);
    assert_eq!(
        merged,
        vec![
            range("/p/alloc/m/0009", "/p/alloc/m/000a"),
            range("/p/alloc/n/0001", "/p/alloc/n/0007"),
            range("/p/attach/n/c/e/", "/p/attach/n/c/e0"),
        ]
    );
}

proptest::proptest! {
    /// Every key inside one of the input ranges is inside one of the merged ranges.
    #[test]
    fn merged_ranges_cover_the_inputs(
        bounds in proptest::collection::vec((0u16..400, 0u16..400, 0u8..3), 1..20),
        probe in 0u16..400,
        dir in 0u8..3,
    ) {
        let key = |d: u8, n: u16| format!("/p/d{d}/{n:04x}").into_bytes();
        let ranges: Vec<_> = bounds
            .iter()
            .map(|&(a, b, d)| (key(d, a.min(b)), key(d, a.max(b) + 1)))
            .collect();
        let probe = key(dir, probe);
        let inside = |rs: &[(Vec<u8>, Vec<u8>)]| rs.iter().any(|(s, e)| *s <= probe && probe < *e);
        if inside(&ranges) {
            proptest::prop_assert!(inside(&merge_by_directory(ranges.clone())));
        }
    }
}
