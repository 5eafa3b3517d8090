//! A gateway's first frame from a peer: parsed, more asked for, or refused,
//! never a panic; what parses encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::gateway::Admission;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((a, used))) = Admission::parse(data) {
        assert_eq!(a.encode().as_deref(), Some(&data[..used]));
    }
});
