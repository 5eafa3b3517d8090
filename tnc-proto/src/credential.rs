//! The project's credential pair: an endpoint asks for a certificate for its
//! SM2 channel key, and on allow the PDP answers with the certificate, its
//! CA and an access ticket (`docs/attestation-attributes.md`, "Credential
//! pair"). Attributes of vendor [`VENDOR`](crate::attestation::VENDOR), each
//! value one CBOR map with text keys, like the attestation pair's.
//!
//! ```text
//! client                                  PDP
//! KeyRequest {csr, key_storage}      ->   (with the first CDATA)
//!                                    <-   RESULT batch with
//!                                         Grant {certificate, ca, ticket, expires}   (allow)
//!                                         or Refusal {reason}                       (otherwise)
//! ```
//!
//! Pairings (a terminal and a VM authenticate each other on the channel):
//!
//! ```text
//! VM (serve)                        PDP                          terminal (connect)
//! Serving {address}  ->  (first CDATA; after an allow RESULT the session stays open)
//!                                   <-  PairingRequest {vm, ticket}   (first CDATA)
//!                        (appraise the terminal: allow, ticket names vm,
//!                         vm's control session open and allowed)
//!   <- SRETRY, SDATA Pairing {id, key, peer = terminal, its certificate's hash}
//! CDATA PairingAccepted {id} ->
//!   <- RESULT (the VM's standing decision)
//!                                   RESULT with Pairing {id, key, peer = vm,
//!                                   its certificate's hash, address}  ->
//!                                   or PairingRefusal {vm, reason}
//! ```

use crate::attestation::VENDOR;
use crate::pa_tnc::PaSubtype;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The PA subtype of the credential pair.
pub const SUBTYPE: PaSubtype = PaSubtype {
    vendor: VENDOR,
    subtype: 2,
};

/// Attribute types of the credential pair.
pub mod attr {
    pub const KEY_REQUEST: u32 = 1;
    pub const GRANT: u32 = 2;
    pub const REFUSAL: u32 = 3;
    pub const PAIRING_REQUEST: u32 = 4;
    pub const PAIRING: u32 = 5;
    pub const PAIRING_REFUSAL: u32 = 6;
    pub const SERVING: u32 = 7;
    pub const PAIRING_ACCEPTED: u32 = 8;

    pub fn is_known(t: u32) -> bool {
        (KEY_REQUEST..=PAIRING_ACCEPTED).contains(&t)
    }
}

/// The largest value read: a CSR, a certificate, a CA and a ticket.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Client -> PDP: a PKCS#10 request for the endpoint's SM2 channel key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    #[serde(with = "serde_bytes")]
    pub csr: Vec<u8>,
    /// Where the private key lives: "tpm" or "software".
    pub key_storage: String,
}

/// PDP -> client, on allow: the certificate for the key, the CA that
/// issued it, and the access ticket bound to the certificate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ca: Vec<u8>,
    /// COSE_Sign1 (`pki::ticket`).
    #[serde(with = "serde_bytes")]
    pub ticket: Vec<u8>,
    /// Unix seconds: when the certificate and the ticket expire.
    pub expires: i64,
}

/// PDP -> client: no credentials, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: String,
}

/// Terminal -> PDP: pair me with `vm`. `ticket`: the access ticket the
/// terminal holds, when it asks for no new credentials in this session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub vm: String,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Vec<u8>>,
}

/// PDP -> both sides: the pairing's 128-bit key. To the terminal `peer` is
/// the VM's name and `address` where it serves; to the VM `peer` is the
/// terminal's device ID. `peer_certificate_sha256`: the SHA-256 of the
/// certificate the other side must present on the channel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub peer: String,
    #[serde(with = "serde_bytes")]
    pub peer_certificate_sha256: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// To the terminal only: where the VM serves channels over QUIC, if it
    /// does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_address: Option<String>,
    /// Unix seconds: unused after this, the pairing is void.
    pub expires: i64,
}

/// PDP -> terminal: no pairing with `vm`, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRefusal {
    pub vm: String,
    pub reason: String,
}

/// VM -> PDP: it serves channels at `address` (host:port as terminals
/// reach it) and keeps this session open for pairings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    pub address: String,
    /// Where it serves channels over QUIC (UDP), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_address: Option<String>,
}

/// VM -> PDP: the pairing was received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingAccepted {
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialAttribute {
    KeyRequest(KeyRequest),
    Grant(Grant),
    Refusal(Refusal),
    PairingRequest(PairingRequest),
    Pairing(Pairing),
    PairingRefusal(PairingRefusal),
    Serving(Serving),
    PairingAccepted(PairingAccepted),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialDecodeError {
    #[error("attribute type {0} is not a credential attribute")]
    UnknownType(u32),
    #[error("attribute value of {0} bytes is over the {MAX_VALUE_LEN}-byte limit")]
    TooLong(usize),
    #[error("attribute value is not the expected CBOR map: {0}")]
    Cbor(String),
    #[error("{0} bytes after the CBOR value")]
    Trailing(usize),
}

impl CredentialAttribute {
    pub fn attr_type(&self) -> u32 {
        match self {
            Self::KeyRequest(_) => attr::KEY_REQUEST,
            Self::Grant(_) => attr::GRANT,
            Self::Refusal(_) => attr::REFUSAL,
            Self::PairingRequest(_) => attr::PAIRING_REQUEST,
            Self::Pairing(_) => attr::PAIRING,
            Self::PairingRefusal(_) => attr::PAIRING_REFUSAL,
            Self::Serving(_) => attr::SERVING,
            Self::PairingAccepted(_) => attr::PAIRING_ACCEPTED,
        }
    }

    pub fn encode_value(&self) -> Vec<u8> {
        match self {
            Self::KeyRequest(v) => crate::cbor::encode(v),
            Self::Grant(v) => crate::cbor::encode(v),
            Self::Refusal(v) => crate::cbor::encode(v),
            Self::PairingRequest(v) => crate::cbor::encode(v),
            Self::Pairing(v) => crate::cbor::encode(v),
            Self::PairingRefusal(v) => crate::cbor::encode(v),
            Self::Serving(v) => crate::cbor::encode(v),
            Self::PairingAccepted(v) => crate::cbor::encode(v),
        }
    }

    pub fn decode(attr_type: u32, value: &[u8]) -> Result<Self, CredentialDecodeError> {
        fn cbor<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, CredentialDecodeError> {
            crate::cbor::decode(value, MAX_VALUE_LEN).map_err(|e| match e {
                crate::cbor::CborError::TooLong(n) => CredentialDecodeError::TooLong(n),
                crate::cbor::CborError::Cbor(m) => CredentialDecodeError::Cbor(m),
                crate::cbor::CborError::Trailing(n) => CredentialDecodeError::Trailing(n),
            })
        }
        Ok(match attr_type {
            attr::KEY_REQUEST => Self::KeyRequest(cbor(value)?),
            attr::GRANT => Self::Grant(cbor(value)?),
            attr::REFUSAL => Self::Refusal(cbor(value)?),
            attr::PAIRING_REQUEST => Self::PairingRequest(cbor(value)?),
            attr::PAIRING => Self::Pairing(cbor(value)?),
            attr::PAIRING_REFUSAL => Self::PairingRefusal(cbor(value)?),
            attr::SERVING => Self::Serving(cbor(value)?),
            attr::PAIRING_ACCEPTED => Self::PairingAccepted(cbor(value)?),
            other => return Err(CredentialDecodeError::UnknownType(other)),
        })
    }
}

impl fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRequest")
            .field("csr", &format_args!("{} bytes", self.csr.len()))
            .field("key_storage", &self.key_storage)
            .finish()
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field(
                "certificate",
                &format_args!("{} bytes", self.certificate.len()),
            )
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .field("ticket", &format_args!("{} bytes", self.ticket.len()))
            .field("expires", &self.expires)
            .finish()
    }
}

impl fmt::Debug for PairingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingRequest")
            .field("vm", &self.vm)
            .field("ticket", &self.ticket.as_ref().map(|t| t.len()))
            .finish()
    }
}

/// The key is never printed.
impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("id", &format_args!("{} bytes", self.id.len()))
            .field("key", &"(secret)")
            .field("peer", &self.peer)
            .field("address", &self.address)
            .field("quic_address", &self.quic_address)
            .field("expires", &self.expires)
            .finish()
    }
}

impl crate::cbor::VendorAttribute for CredentialAttribute {
    fn attr_type(&self) -> u32 {
        CredentialAttribute::attr_type(self)
    }

    fn encode_value(&self) -> Vec<u8> {
        CredentialAttribute::encode_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_refuse_what_is_not_theirs() {
        let samples = [
            CredentialAttribute::KeyRequest(KeyRequest {
                csr: vec![0x30, 0x82, 1, 2],
                key_storage: "software".into(),
            }),
            CredentialAttribute::Grant(Grant {
                certificate: vec![1; 300],
                ca: vec![2; 300],
                ticket: vec![3; 200],
                expires: 1_800_003_600,
            }),
            CredentialAttribute::Refusal(Refusal {
                reason: "isolate: no evidence".into(),
            }),
            CredentialAttribute::PairingRequest(PairingRequest {
                vm: "vm-1".into(),
                ticket: Some(vec![4; 180]),
            }),
            CredentialAttribute::PairingRequest(PairingRequest {
                vm: "vm-1".into(),
                ticket: None,
            }),
            CredentialAttribute::Pairing(Pairing {
                id: vec![5; 16],
                key: vec![6; 16],
                peer: "vm-1".into(),
                peer_certificate_sha256: vec![7; 32],
                address: Some("192.0.2.7:2710".into()),
                quic_address: Some("192.0.2.7:2710".into()),
                expires: 1_800_000_060,
            }),
            CredentialAttribute::PairingRefusal(PairingRefusal {
                vm: "vm-2".into(),
                reason: "the ticket does not name vm-2".into(),
            }),
            CredentialAttribute::Serving(Serving {
                address: "[2001:db8::7]:2710".into(),
                quic_address: None,
            }),
            CredentialAttribute::PairingAccepted(PairingAccepted { id: vec![5; 16] }),
        ];
        let pairing = format!("{:?}", samples[5]);
        assert!(
            pairing.contains("(secret)") && !pairing.contains("6, 6"),
            "{pairing}"
        );
        for a in samples {
            let v = a.encode_value();
            assert_eq!(
                CredentialAttribute::decode(a.attr_type(), &v),
                Ok(a.clone())
            );
            // Cut short, or with bytes after the map: refused.
            assert!(CredentialAttribute::decode(a.attr_type(), &v[..v.len() - 1]).is_err());
            let mut longer = v.clone();
            longer.push(0);
            assert!(matches!(
                CredentialAttribute::decode(a.attr_type(), &longer),
                Err(CredentialDecodeError::Trailing(1))
            ));
        }
        assert!(matches!(
            CredentialAttribute::decode(9, &[0xa0]),
            Err(CredentialDecodeError::UnknownType(9))
        ));
        assert!(matches!(
            CredentialAttribute::decode(attr::GRANT, &vec![0; MAX_VALUE_LEN + 1]),
            Err(CredentialDecodeError::TooLong(_))
        ));
    }
}
