//! Any bytes as a blob nested in a group request (a member's subscription, an assignment):
//! the bounded decoders must never panic or over-allocate.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let blob = Bytes::copy_from_slice(data);
    let _ = strata_wire::embedded::consumer_subscription(&blob);
    let _ = strata_wire::embedded::consumer_assignment(&blob);
});
