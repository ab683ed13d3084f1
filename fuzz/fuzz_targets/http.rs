//! HTTP request heads come from any client of the listener: parsing, routing and the
//! `Host` check must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::http;

fuzz_target!(|data: &[u8]| {
    if let http::Head::Request {
        method,
        target,
        host,
    } = http::parse_head(data)
    {
        let _ = http::route(method, target);
        let local = ([127, 0, 0, 1], 9110).into();
        let _ = http::host_allowed(host, local, &["router.lan".to_string()]);
    }
});
