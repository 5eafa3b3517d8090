//! TPM 2.0 structures: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC / TPM2B_PUBLIC,
//! TPML_PCR_SELECTION, and quote verification over whatever parses.
//!
//! The first byte picks which structure the rest is; accepted structures must
//! re-encode to bytes that parse to the same value, and verification of random
//! quotes must fail cleanly, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::quote::{verify_quote, QuoteExpectation};
use policy::tpm::{decode_pcr_selection, encode_pcr_selection, Attest, Public, Signature};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(a) = Attest::parse(bytes) {
                let again = a.encode();
                assert_eq!(Attest::parse(&again).as_ref(), Ok(&a));
            }
        }
        1 => {
            if let Ok(s) = Signature::parse(bytes) {
                let again = s.encode();
                assert_eq!(Signature::parse(&again).as_ref(), Ok(&s));
            }
        }
        2 => {
            if let Ok(p) = Public::parse(bytes) {
                assert_eq!(p.name().len(), 2 + p.name_alg.size());
            }
            let _ = Public::from_tpm2b(bytes);
        }
        3 => {
            if let Ok(sel) = decode_pcr_selection(bytes) {
                let mut again = Vec::new();
                encode_pcr_selection(&sel, &mut again);
                assert_eq!(decode_pcr_selection(&again).as_ref(), Ok(&sel));
            }
        }
        _ => {
            // [u16 len][public][u16 len][signature][attest...]
            let mut rest = bytes;
            let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
                let (len, tail) = rest.split_first_chunk::<2>()?;
                let len = usize::from(u16::from_be_bytes(*len));
                let (part, tail) = tail.split_at_checked(len)?;
                *rest = tail;
                Some(part.to_vec())
            };
            let (Some(public), Some(sig)) = (take(&mut rest), take(&mut rest)) else {
                return;
            };
            let (Ok(ak), Ok(sig)) = (Public::parse(&public), Signature::parse(&sig)) else {
                return;
            };
            let expected = QuoteExpectation {
                nonce: b"fuzz",
                selection: None,
                pcr_values: None,
                allow_sha1: false,
            };
            // A random quote never verifies: that would be a forged signature.
            assert!(verify_quote(&ak, rest, &sig, &expected).is_err());
        }
    }
});
