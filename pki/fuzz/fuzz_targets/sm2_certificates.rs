//! SM2 certificates and PKCS#10 requests as a peer sends them: whatever the
//! bytes, the readers answer with a value or an error, never a panic; and a
//! request that verifies has a key on the SM2 curve.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One CA for the whole run (SM2 key generation per input would dominate).
fn ca() -> &'static pki::ca::Sm2Ca {
    static CA: OnceLock<pki::ca::Sm2Ca> = OnceLock::new();
    CA.get_or_init(|| {
        pki::ca::Sm2Ca::create(
            "fuzz CA",
            std::time::Duration::from_secs(86_400),
            std::time::SystemTime::now(),
        )
        .expect("a CA")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = pki::ca::verify_request(data) {
        assert_eq!(v.public_key.to_sec1_bytes().len(), 65);
    }
    let _ = pki::ca::describe(data);
    let _ = pki::ca::verify_issued_by(data, ca().certificate_der(), 1_800_000_000);
    let _ = pki::ca::verify_issued_by(ca().certificate_der(), data, 1_800_000_000);
    let _ = pki::ca::pem_or_der(data);
});
