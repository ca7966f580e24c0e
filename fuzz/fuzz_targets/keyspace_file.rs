//! Keyspace files: the first byte picks JSON (odd) or TOML (even), the rest is the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if let Err(violation) = distcache::fuzzing::keyspace_file(&text, first % 2 == 1) {
        panic!("{violation}");
    }
});
