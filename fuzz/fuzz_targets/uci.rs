//! UCI text is untrusted input: neither the syntax layer nor validation may panic on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::config::{uci, Config};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(sections) = uci::parse("fuzz", &text) {
        // Line numbers point into the input.
        let lines = text.lines().count().max(1);
        for s in &sections {
            assert!(s.line >= 1 && s.line <= lines + 1);
        }
    }
    if let Ok(config) = Config::parse("fuzz", &text) {
        let _ = config.summary();
    }
});
