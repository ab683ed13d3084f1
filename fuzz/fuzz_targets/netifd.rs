//! netifd's interface status arrives over ubus: whatever JSON it holds, decoding it
//! must not panic, and a device name it yields is one uplinkd can put in nft rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::{bus, config};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let n = bus::parse_netifd(&v);
        if let Some(d) = &n.device {
            assert!(config::is_device_name(d), "{d:?}");
        }
    }
});
