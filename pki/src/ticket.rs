//! Access tickets: what the PDP issues on allow, for the ShangMi channel and
//! the gateway to check offline.
//!
//! A ticket is a tagged COSE_Sign1 (RFC 9052 §4.2) whose payload is a CBOR
//! map of claims (CWT's registered ones, RFC 8392, where they exist) and
//! whose signature is SM2-with-SM3 by the PDP's SM2 CA key. COSE assigns no
//! algorithm to SM2, so the protected header names it with a private-use
//! value, [`COSE_ALG_SM2_SM3`]; the signature is r || s, 32 bytes each (as
//! COSE's ECDSA), over the Sig_structure, under the default SM2 ID. The
//! claims bind the ticket to one certificate (its SHA-256) and carry the
//! attestation that justified it and an EAR-style trust vector
//! (draft-ietf-rats-ear: affirming 2, warning 32, contraindicated 96).
//!
//! Hand-written only as far as the claims go: the COSE structure is
//! `coset`'s, the signature the `sm2` crate's.

use crate::ca::{CaError, Sm2Key, CERT_SM2_ID};
use ciborium::value::Value;
use coset::TaggedCborSerializable as _;
use sm2::dsa::signature::Signer as _;

/// The COSE algorithm value this project uses for SM2-with-SM3: in the IANA
/// "COSE Algorithms" registry's private-use range (integers below -65536),
/// so it interoperates only with this project until SM2 is registered.
pub const COSE_ALG_SM2_SM3: i64 = -70_000;

/// CWT claim keys (RFC 8392 §4) and this project's.
mod key {
    pub const ISS: i64 = 1;
    pub const SUB: i64 = 2;
    pub const EXP: i64 = 4;
    pub const NBF: i64 = 5;
    pub const IAT: i64 = 6;
    pub const CTI: i64 = 7;
}

/// An AR4SI trustworthiness tier (draft-ietf-rats-ear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Affirming,
    Warning,
    Contraindicated,
}

impl Tier {
    pub fn value(self) -> i64 {
        match self {
            Tier::Affirming => 2,
            Tier::Warning => 32,
            Tier::Contraindicated => 96,
        }
    }

    fn from_value(v: i64) -> Option<Self> {
        match v {
            2..=31 => Some(Tier::Affirming),
            32..=95 => Some(Tier::Warning),
            96..=127 => Some(Tier::Contraindicated),
            _ => None,
        }
    }
}

/// The trust vector: one tier per part of the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustVector {
    pub hardware: Tier,
    pub boot: Tier,
    pub kernel: Tier,
    pub applications: Tier,
}

/// The attestation a ticket rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Justification {
    /// The store's attestation id.
    pub attestation: i64,
    /// "allow" (tickets are issued on allow only).
    pub verdict: String,
    pub policy_version: i64,
    /// Unix seconds.
    pub at: i64,
}

/// A ticket's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Ticket id (16 random bytes).
    pub id: Vec<u8>,
    /// Who issued it (the PDP's name).
    pub issuer: String,
    /// The device (SHA-256 of its EK certificate, hex).
    pub device: String,
    pub user: Option<String>,
    pub role: String,
    /// SHA-256 of the DER certificate the ticket is bound to.
    pub certificate_sha256: Vec<u8>,
    /// The VMs it may reach.
    pub vms: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    pub not_before: i64,
    pub expires: i64,
    pub justification: Justification,
    pub trust: TrustVector,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("not a COSE_Sign1 ticket: {0}")]
    Malformed(String),
    #[error("the ticket is signed with algorithm {0}, not SM2-with-SM3 ({COSE_ALG_SM2_SM3})")]
    Algorithm(String),
    #[error("the ticket's signature does not verify with the PDP's key")]
    BadSignature,
    #[error("the ticket is not valid at {now}: valid from {not_before} to {expires}")]
    Expired {
        now: i64,
        not_before: i64,
        expires: i64,
    },
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

impl Claims {
    fn to_cbor(&self) -> Value {
        let mut m: Vec<(Value, Value)> = vec![
            (int(key::ISS), text(&self.issuer)),
            (int(key::SUB), text(&self.device)),
            (int(key::EXP), int(self.expires)),
            (int(key::NBF), int(self.not_before)),
            (int(key::IAT), int(self.issued_at)),
            (int(key::CTI), Value::Bytes(self.id.clone())),
            (text("role"), text(&self.role)),
            (
                text("cert_sha256"),
                Value::Bytes(self.certificate_sha256.clone()),
            ),
            (
                text("vms"),
                Value::Array(self.vms.iter().map(|v| text(v)).collect()),
            ),
            (
                text("attestation"),
                Value::Map(vec![
                    (text("id"), int(self.justification.attestation)),
                    (text("verdict"), text(&self.justification.verdict)),
                    (
                        text("policy_version"),
                        int(self.justification.policy_version),
                    ),
                    (text("at"), int(self.justification.at)),
                ]),
            ),
            (
                text("ear_trust_vector"),
                Value::Map(vec![
                    (text("hardware"), int(self.trust.hardware.value())),
                    (text("boot"), int(self.trust.boot.value())),
                    (text("kernel"), int(self.trust.kernel.value())),
                    (text("applications"), int(self.trust.applications.value())),
                ]),
            ),
        ];
        if let Some(u) = &self.user {
            m.push((text("user"), text(u)));
        }
        Value::Map(m)
    }

    fn from_cbor(v: Value) -> Result<Self, TicketError> {
        let bad = |what: &str| TicketError::Malformed(format!("claim {what}"));
        let Value::Map(m) = v else {
            return Err(bad("map"));
        };
        let get = |k: &Value| m.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let get_int = |k: Value, what: &str| -> Result<i64, TicketError> {
            match get(&k) {
                Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| bad(what)),
                _ => Err(bad(what)),
            }
        };
        let get_text = |k: Value, what: &str| -> Result<String, TicketError> {
            match get(&k) {
                Some(Value::Text(t)) => Ok(t.clone()),
                _ => Err(bad(what)),
            }
        };
        let get_bytes = |k: Value, what: &str| -> Result<Vec<u8>, TicketError> {
            match get(&k) {
                Some(Value::Bytes(b)) => Ok(b.clone()),
                _ => Err(bad(what)),
            }
        };
        let sub_map = |k: &str| -> Result<Vec<(Value, Value)>, TicketError> {
            match get(&text(k)) {
                Some(Value::Map(m)) => Ok(m.clone()),
                _ => Err(bad(k)),
            }
        };
        let field_int = |m: &[(Value, Value)], k: &str| -> Result<i64, TicketError> {
            match m.iter().find(|(key, _)| key == &text(k)).map(|(_, v)| v) {
                Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| bad(k)),
                _ => Err(bad(k)),
            }
        };
        let att = sub_map("attestation")?;
        let verdict = match att.iter().find(|(k, _)| k == &text("verdict")) {
            Some((_, Value::Text(t))) => t.clone(),
            _ => return Err(bad("attestation.verdict")),
        };
        let ear = sub_map("ear_trust_vector")?;
        let tier = |k: &str| Tier::from_value(field_int(&ear, k)?).ok_or_else(|| bad(k));
        let vms = match get(&text("vms")) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::Text(t) => Ok(t.clone()),
                    _ => Err(bad("vms")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("vms")),
        };
        Ok(Claims {
            id: get_bytes(int(key::CTI), "cti")?,
            issuer: get_text(int(key::ISS), "iss")?,
            device: get_text(int(key::SUB), "sub")?,
            user: match get(&text("user")) {
                Some(Value::Text(t)) => Some(t.clone()),
                None => None,
                _ => return Err(bad("user")),
            },
            role: get_text(text("role"), "role")?,
            certificate_sha256: get_bytes(text("cert_sha256"), "cert_sha256")?,
            vms,
            issued_at: get_int(int(key::IAT), "iat")?,
            not_before: get_int(int(key::NBF), "nbf")?,
            expires: get_int(int(key::EXP), "exp")?,
            justification: Justification {
                attestation: field_int(&att, "id")?,
                verdict,
                policy_version: field_int(&att, "policy_version")?,
                at: field_int(&att, "at")?,
            },
            trust: TrustVector {
                hardware: tier("hardware")?,
                boot: tier("boot")?,
                kernel: tier("kernel")?,
                applications: tier("applications")?,
            },
        })
    }
}

/// Signs `claims` with the PDP's SM2 key: the tagged COSE_Sign1 bytes.
pub fn issue(claims: &Claims, key: &Sm2Key) -> Result<Vec<u8>, CaError> {
    let signer = sm2::dsa::SigningKey::new(CERT_SM2_ID, key.secret())
        .map_err(|e| CaError::Der(e.to_string()))?;
    let mut payload = Vec::new();
    ciborium::ser::into_writer(&claims.to_cbor(), &mut payload)
        .map_err(|e| CaError::Der(e.to_string()))?;
    let protected = coset::HeaderBuilder::new()
        .algorithm_label(coset::RegisteredLabelWithPrivate::PrivateUse(
            COSE_ALG_SM2_SM3,
        ))
        .content_type("application/cwt".to_string())
        .build();
    let mut failed = None;
    let sign1 = coset::CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| match signer.try_sign(tbs) {
            Ok(sig) => {
                let sig: sm2::dsa::Signature = sig;
                sig.to_bytes().to_vec()
            }
            Err(e) => {
                failed = Some(e.to_string());
                Vec::new()
            }
        })
        .build();
    if let Some(e) = failed {
        return Err(CaError::Der(e));
    }
    sign1
        .to_tagged_vec()
        .map_err(|e| CaError::Der(e.to_string()))
}

/// Checks a ticket's algorithm and signature with the PDP's public key, and
/// that it is valid at `now` (Unix seconds); its claims.
pub fn verify(ticket: &[u8], pdp: &sm2::PublicKey, now: i64) -> Result<Claims, TicketError> {
    let sign1 = coset::CoseSign1::from_tagged_slice(ticket)
        .map_err(|e| TicketError::Malformed(e.to_string()))?;
    match &sign1.protected.header.alg {
        Some(coset::RegisteredLabelWithPrivate::PrivateUse(COSE_ALG_SM2_SM3)) => {}
        other => return Err(TicketError::Algorithm(format!("{other:?}"))),
    }
    sign1.verify_signature(b"", |sig, tbs| {
        let sig = sm2::dsa::Signature::from_slice(sig).map_err(|_| TicketError::BadSignature)?;
        // The PDP's ticket key is verified again and again: its comb is
        // kept (pki::sm2_verify).
        crate::sm2_verify::verify(CERT_SM2_ID, pdp, tbs, &sig)
            .map_err(|_| TicketError::BadSignature)
    })?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| TicketError::Malformed("no payload".into()))?;
    let value: Value =
        ciborium::de::from_reader(payload).map_err(|e| TicketError::Malformed(e.to_string()))?;
    let claims = Claims::from_cbor(value)?;
    if now < claims.not_before || now > claims.expires {
        return Err(TicketError::Expired {
            now,
            not_before: claims.not_before,
            expires: claims.expires,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            id: vec![7; 16],
            issuer: "TNC PDP test".into(),
            device: "ab".repeat(32),
            user: Some("alice".into()),
            role: "terminal".into(),
            certificate_sha256: vec![1; 32],
            vms: vec!["vm-1".into()],
            issued_at: 1_800_000_000,
            not_before: 1_800_000_000,
            expires: 1_800_003_600,
            justification: Justification {
                attestation: 42,
                verdict: "allow".into(),
                policy_version: 3,
                at: 1_800_000_000,
            },
            trust: TrustVector {
                hardware: Tier::Affirming,
                boot: Tier::Affirming,
                kernel: Tier::Affirming,
                applications: Tier::Warning,
            },
        }
    }

    #[test]
    fn tickets_verify_with_the_pdps_key_within_their_time_only() {
        let pdp = Sm2Key::generate().unwrap();
        let ticket = issue(&claims(), &pdp).unwrap();
        let got = verify(&ticket, &pdp.public_key(), 1_800_000_100).unwrap();
        assert_eq!(got, claims());
        // Another key (a ticket re-signed by someone else), before and after
        // its time, a flipped bit: refused.
        let other = Sm2Key::generate().unwrap();
        assert_eq!(
            verify(&ticket, &other.public_key(), 1_800_000_100),
            Err(TicketError::BadSignature)
        );
        assert!(matches!(
            verify(&ticket, &pdp.public_key(), 1_800_003_601),
            Err(TicketError::Expired { .. })
        ));
        assert!(matches!(
            verify(&ticket, &pdp.public_key(), 1_799_999_999),
            Err(TicketError::Expired { .. })
        ));
        let mut tampered = ticket.clone();
        let at = tampered.len() - 80;
        tampered[at] ^= 1;
        assert!(verify(&tampered, &pdp.public_key(), 1_800_000_100).is_err());
        assert!(verify(b"\xd2\x84", &pdp.public_key(), 0).is_err());
    }

    #[test]
    fn another_algorithm_is_refused_before_any_signature_check() {
        let pdp = Sm2Key::generate().unwrap();
        let mut payload = Vec::new();
        ciborium::ser::into_writer(&claims().to_cbor(), &mut payload).unwrap();
        let es256 = coset::CoseSign1Builder::new()
            .protected(
                coset::HeaderBuilder::new()
                    .algorithm(coset::iana::Algorithm::ES256)
                    .build(),
            )
            .payload(payload)
            .signature(vec![0; 64])
            .build()
            .to_tagged_vec()
            .unwrap();
        assert!(matches!(
            verify(&es256, &pdp.public_key(), 1_800_000_100),
            Err(TicketError::Algorithm(_))
        ));
    }
}
