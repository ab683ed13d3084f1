//! An mwan3 config (and the network and dhcp configs beside it) being imported is
//! untrusted text:
//! the converter must not panic, and what it writes must parse as UCI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::config::{mwan3, uci};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // NULs split the input into the mwan3, network and dhcp files.
    let mut parts = text.split('\0');
    let m = parts.next().unwrap_or("");
    let inputs = mwan3::Inputs {
        network: parts.next(),
        dhcp: parts.next(),
    };
    if let Ok(import) = mwan3::convert("fuzz", m, inputs) {
        assert!(uci::parse("converted", &import.text).is_ok(), "{}", import.text);
    }
});
