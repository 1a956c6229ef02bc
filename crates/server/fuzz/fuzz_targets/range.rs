//! Fuzzes `Range` header parsing: the first 8 input bytes are the file's length, the rest the
//! header. Whatever the header, the answer is the whole file, one range or at most
//! `MAX_RANGES` ranges, each inside the file; a panic or a range past the end is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::files::download::{MAX_RANGES, RangeRequest, parse_range};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, header) = data.split_at(8);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(len);
    // Lengths up to 1 TiB: the parser must not overflow on any of them.
    let size = u64::from_le_bytes(bytes) % (1 << 40);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    match parse_range(Some(header), size) {
        RangeRequest::Full | RangeRequest::Unsatisfiable => {}
        RangeRequest::Part(range) => {
            assert!(range.start < range.end && range.end <= size, "{header:?}: {range:?}");
        }
        RangeRequest::Parts(ranges) => {
            assert!(ranges.len() <= MAX_RANGES, "{header:?}: {} ranges", ranges.len());
            for range in &ranges {
                assert!(range.start < range.end && range.end <= size, "{header:?}: {range:?}");
            }
        }
    }
});
