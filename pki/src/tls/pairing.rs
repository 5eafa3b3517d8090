//! The pairing proof of the ShangMi channel (docs/shangmi.md, "Pairing"):
//! after the TLS handshake each side sends
//! `HMAC-SM3(pairing key, exporter || role)`, where `exporter` is the TLS
//! 1.3 exporter value (RFC 8446 §7.5) of this connection under
//! [`EXPORTER_LABEL`] with no context, [`EXPORTER_LEN`] bytes. A proof
//! made over another connection's exporter (a relay) or with another key
//! fails; the role keeps a side from reflecting the other's proof back.

use ::hmac::{KeyInit, Mac};

/// The exporter label (RFC 8446 §7.5), for TLS and QUIC alike.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tnc-pairing";
/// Exporter bytes the proof covers.
pub const EXPORTER_LEN: usize = 32;
/// The pairing key's length: 128 bits.
pub const KEY_LEN: usize = 16;
/// The proof's length (an SM3 output).
pub const PROOF_LEN: usize = 32;

/// Which side proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The terminal (the TLS client).
    Terminal,
    /// The VM (the TLS server).
    Vm,
}

impl Side {
    /// The bytes appended to the exporter value.
    pub fn label(self) -> &'static [u8] {
        match self {
            Side::Terminal => b"terminal",
            Side::Vm => b"vm",
        }
    }
}

type HmacSm3 = ::hmac::Hmac<sm3::Sm3>;

fn mac(key: &[u8; KEY_LEN], exporter: &[u8], side: Side) -> HmacSm3 {
    #[allow(clippy::expect_used)]
    let mut m = <HmacSm3 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(exporter);
    m.update(side.label());
    m
}

/// `side`'s proof on the connection whose exporter value is `exporter`.
pub fn proof(key: &[u8; KEY_LEN], exporter: &[u8], side: Side) -> [u8; PROOF_LEN] {
    mac(key, exporter, side).finalize().into_bytes().into()
}

/// Whether `presented` is `side`'s proof, compared in constant time.
pub fn verify(key: &[u8; KEY_LEN], exporter: &[u8], side: Side, presented: &[u8]) -> bool {
    mac(key, exporter, side).verify_slice(presented).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_only_for_its_key_connection_and_side() {
        let key = [7u8; KEY_LEN];
        let exporter = [1u8; EXPORTER_LEN];
        let p = proof(&key, &exporter, Side::Terminal);
        assert!(verify(&key, &exporter, Side::Terminal, &p));
        assert!(!verify(&key, &exporter, Side::Vm, &p), "reflected");
        assert!(
            !verify(&key, &[2u8; EXPORTER_LEN], Side::Terminal, &p),
            "relayed"
        );
        assert!(
            !verify(&[8u8; KEY_LEN], &exporter, Side::Terminal, &p),
            "other key"
        );
        assert!(
            !verify(&key, &exporter, Side::Terminal, &p[..31]),
            "cut short"
        );
        // HMAC-SM3 as GB/T 15852.2 defines it, over key 0x07*16 and
        // 0x01*32 || "terminal": computed with OpenSSL 3 (`openssl mac
        // -digest SM3 -macopt hexkey:0707.. HMAC`, Debian's 3.0).
        assert_eq!(
            p,
            *b"\x46\xaa\x60\xb7\x49\xab\xb9\x37\xd8\x4e\xf4\x2a\xd7\x77\xa7\x0e\
               \x92\x14\x3d\x04\xd6\x31\xb6\x70\x0b\xed\x55\xf0\xf0\x89\xcc\x4f"
        );
    }
}
