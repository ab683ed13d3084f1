//! Feeds arbitrary bytes to the verdicts of the http and dns probes, as answers to a
//! fixed request: they must never panic, a DNS answer they accept must repeat our ID
//! and question, and an HTTP answer that passes must start with a status line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::probe::{dns, http};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; dns::MAX_QUERY];
    let n = dns::query(0x5a5a, "example.com", dns::Type::A, &mut buf);
    let query = &buf[..n];
    if dns::check(query, data).is_ok() {
        assert_eq!(&data[..2], &query[..2]);
        assert!(data[12..n].eq_ignore_ascii_case(&query[12..]));
    }
    // The query itself, with the fuzzer's bytes as a name when they are a valid one.
    if let Ok(name) = std::str::from_utf8(data) {
        if dns::check_name(name).is_ok() {
            let n = dns::query(1, name, dns::Type::Aaaa, &mut buf);
            assert!(n <= dns::MAX_QUERY);
        }
    }
    for (status, body) in [(204, None), (200, Some("success")), (0, None)] {
        let expect = http::Expect { status, body };
        for closed in [false, true] {
            let data = &data[..data.len().min(http::MAX_RESPONSE)];
            if http::verdict(data, closed, &expect) == http::Verdict::Pass {
                assert!(data.starts_with(b"HTTP/1."));
            }
        }
    }
});
