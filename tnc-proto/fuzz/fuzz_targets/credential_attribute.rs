//! The credential pair's attributes (CBOR values, `tnc_proto::credential`):
//! key requests, grants, refusals, pairing requests, pairings, pairing
//! refusals, serving and accepted pairings, as a peer (endpoint or PDP)
//! sends them.
//!
//! The input's first byte picks the attribute type (1-8 and some unknown
//! ones); the rest is the value.
//!
//! Properties:
//! - decoding never panics and allocates no more than the input justifies
//!   (libFuzzer's -rss_limit_mb catches a runaway allocation);
//! - a value that decodes re-encodes to a value that decodes to the same
//!   attribute of the same type.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::credential::CredentialAttribute;

fuzz_target!(|data: &[u8]| {
    let Some((&t, value)) = data.split_first() else {
        return;
    };
    let attr_type = u32::from(t % 11);
    if let Ok(a) = CredentialAttribute::decode(attr_type, value) {
        assert_eq!(a.attr_type(), attr_type);
        let again = a.encode_value();
        match CredentialAttribute::decode(attr_type, &again) {
            Ok(b) => assert_eq!(a, b),
            Err(e) => panic!("re-encoding of {a:?} does not decode: {e}"),
        }
    }
});
