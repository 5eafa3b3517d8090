//! A revocation-stream frame body from a peer: decodes or is refused, never
//! panics; what decodes encodes back to a body that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::revocation::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = Frame::decode(data) {
        let again = f.encode();
        assert_eq!(Frame::decode(&again[4..]).as_ref(), Ok(&f));
    }
});
