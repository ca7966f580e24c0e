//! What peers send each other: batch bodies, outcomes, error bodies, handoff lines, health.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = distcache::fuzzing::wire(data) {
        panic!("{violation}");
    }
});
