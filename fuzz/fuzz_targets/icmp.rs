//! Feeds arbitrary bytes to the ICMP echo reply parsers: they must never panic, and
//! whatever they accept must be an echo reply carrying our cookie.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use uplinkd::probe::icmp;

const COOKIE: icmp::Cookie = icmp::Cookie(*b"cookie!!");

fuzz_target!(|data: &[u8]| {
    if let Some(reply) = icmp::parse_v4(COOKIE, data) {
        assert!(reply.from.is_ipv4());
    }
    if let Some(reply) = icmp::parse_v6(COOKIE, Ipv6Addr::LOCALHOST, data) {
        assert_eq!(data.get(8..16), Some(&COOKIE.0[..]));
        assert!(reply.from.is_ipv6());
    }
    // Building never panics either, whatever the buffer size.
    let mut out = [0u8; 64];
    let split = data.first().map_or(0, |&b| usize::from(b) % 80).min(out.len());
    let n = icmp::echo_request_v4(COOKIE, 1, 2, data.get(1..).unwrap_or(&[]), &mut out[..split]);
    if n != 0 {
        assert_eq!(icmp::checksum(&out[..n]), 0);
    }
});
