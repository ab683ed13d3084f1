//! Config → nft ruleset: whatever config passes the checks renders a script in which no
//! value escapes its place: every line has balanced quotes, and every quoted string is
//! a name the checks allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::config::{self, Config};
use uplinkd::dataplane;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(cfg) = Config::parse("fuzz", &text) else {
        return;
    };
    let script = dataplane::check_ruleset(&cfg).script(&dataplane::Existing::default());
    for line in script.lines() {
        let quoted: Vec<&str> = line.split('"').collect();
        assert!(quoted.len() % 2 == 1, "unbalanced quotes: {line}");
        for name in quoted.iter().skip(1).step_by(2) {
            assert!(config::is_device_name(name), "{name:?} in {line}");
        }
    }
});
