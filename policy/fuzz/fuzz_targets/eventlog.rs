//! The TCG PC Client event log parser and replay: any bytes, no panic, and a
//! parsed log replays to values of the right size for each bank.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::eventlog::EventLog;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = EventLog::parse(data) else {
        return;
    };
    for e in &log.events {
        let _ = e.describe();
        let _ = e.efi_variable();
    }
    let replay = log.replay();
    for (bank, _pcr, value) in replay.iter() {
        assert_eq!(value.len(), bank.size());
    }
});
