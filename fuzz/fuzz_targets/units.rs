//! Byte sizes and durations as text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = distcache::fuzzing::units(&String::from_utf8_lossy(data)) {
        panic!("{violation}");
    }
});
