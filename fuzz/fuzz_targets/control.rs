//! Control socket lines (and ubus call arguments) are untrusted: parsing a line and
//! turning it into a request must answer an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::control;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok((method, args)) = control::parse_line(&line) {
        let _ = control::Request::parse(&method, &args);
    }
});
