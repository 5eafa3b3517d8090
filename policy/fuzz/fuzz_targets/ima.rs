//! The IMA binary measurement list parser and PCR 10 replay: any bytes, no panic;
//! incremental parsing from any entry agrees with the full parse.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::ima::{replay, ImaList};
use policy::HashAlg;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = ImaList::parse(data) else {
        return;
    };
    let banks = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sm3];
    if let Ok(full) = replay(&list.entries, &banks, None) {
        // Replaying in two rounds gives the same PCR 10 as one.
        let half = list.entries.len() / 2;
        let first = replay(&list.entries[..half], &banks, None).expect("a prefix replays");
        let rest = ImaList::parse_from(data, half).expect("the rest parses");
        let second = replay(&rest.entries, &banks, Some(&first)).expect("the rest replays");
        assert_eq!(second, full);
    }
    for e in &list.entries {
        let _ = e.fields();
    }
});
