//! The tokens file and keyspace patterns.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = distcache::fuzzing::tokens(&String::from_utf8_lossy(data)) {
        panic!("{violation}");
    }
});
