//! nf_tables dump answers are untrusted input: the flowtable decoder must never panic,
//! whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::sys::nft;

fuzz_target!(|data: &[u8]| {
    let _ = nft::fuzz_decode_flowtable(data);
});
