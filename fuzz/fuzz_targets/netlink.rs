//! rtnetlink datagrams are untrusted input (anything in the kernel's answer that the
//! decoders do not expect): the event decoder (links, neighbours, routes), the nexthop decoder, the address decoder,
//! the route classifier and the ack parser must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::sys::{netlink, nexthop, wire};

fuzz_target!(|data: &[u8]| {
    let _ = netlink::decode_events(data, &netlink::EventFilter::default());
    let narrow = netlink::EventFilter {
        devices: Some(vec![2, 3]),
        echo_port: 7,
        ..Default::default()
    };
    let _ = netlink::decode_events(data, &narrow);
    let _ = nexthop::decode(data);
    netlink::fuzz_decode(data);
    let flags = data.first().map_or(0, |&b| u16::from(b) << 8);
    let _ = wire::parse_ack(flags, data);
    let _ = wire::parse_ack(0x100 | 0x200, data);
});
