//! The project's PA-TNC attributes: TPM 2.0 evidence and AK enrollment between
//! the attestation collector (client) and the attestation validator (PDP).
//!
//! Each attribute is a PA-TNC attribute of vendor [`VENDOR`] whose value is one
//! CBOR map (RFC 8949) with text keys, so a field can be added later without a
//! new attribute type and a reader skips what it does not know. The PA subtype
//! of the PB-PA messages that carry them is [`SUBTYPE`].
//!
//! The exchange (ARCHITECTURE.md, "Attestation pair"):
//!
//! ```text
//! client                                  PDP
//! Hello {role, tpm} Identity         ->
//!                                    <-   [CredentialChallenge]  (AK not enrolled yet)
//!                                         QuoteRequest {nonce, PCRs, IMA offset}
//! [CredentialProof] QuoteEvidence    ->
//!                                    <-   AttestationResult {verdict, findings}
//! ```
//!
//! A client with a TPM sends its identity with its Hello, in the same PA-TNC
//! message: the PDP asks every TPM for it, and asking costs a PB-TNC round
//! trip per assessment. A client that sends the Hello alone (older ones do)
//! gets an IdentityRequest and answers it with the Identity: the PDP takes
//! both orders. A client that cannot attest answers with
//! [`AttestationAttribute::Failure`] instead of failing the whole session.

use crate::codec::U24;
use crate::pa_tnc::PaSubtype;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The project's vendor ID in PA-TNC: 32473, the Private Enterprise Number RFC
/// 5612 reserves for documentation, until the project has its own. This is the
/// one place it is written.
pub const VENDOR: U24 = U24::truncate(32473);

/// The PA subtype (RFC 5792 §3.1, "PA Subtype") of the attestation pair.
pub const SUBTYPE: PaSubtype = PaSubtype {
    vendor: VENDOR,
    subtype: 1,
};

/// Attribute types under [`VENDOR`].
pub mod attr {
    pub const HELLO: u32 = 1;
    pub const IDENTITY_REQUEST: u32 = 2;
    pub const IDENTITY: u32 = 3;
    pub const CREDENTIAL_CHALLENGE: u32 = 4;
    pub const CREDENTIAL_PROOF: u32 = 5;
    pub const QUOTE_REQUEST: u32 = 6;
    pub const QUOTE_EVIDENCE: u32 = 7;
    pub const RESULT: u32 = 8;
    pub const FAILURE: u32 = 9;

    /// Whether `t` is one of the types above.
    pub fn is_known(t: u32) -> bool {
        (HELLO..=FAILURE).contains(&t)
    }
}

/// The largest CBOR value read: a whole IMA list of a long-running host fits
/// (100,000 entries of ~100 bytes), and the PT-TLS message limit bounds it
/// before this does.
pub const MAX_VALUE_LEN: usize = 16 << 20;

/// What the endpoint is (ARCHITECTURE.md: terminals and VMs attest alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Terminal,
    Vm,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::Vm => "vm",
        }
    }

    /// The role [`Role::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Terminal, Self::Vm]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// PDP -> client, the SDATA after an SRETRY on a decided session (a
/// re-assessment, RFC 5793 §3.2): a PA-TNC message (identifier `id`) with one
/// IETF Attribute Request (RFC 5792 §4.2.1) naming [`attr::HELLO`] of
/// [`VENDOR`]: "start over", which the collector answers as in a new session,
/// with its Hello (specs/nea-continuous.md §5: each round the validator asks
/// again, since the collector may have reset).
pub fn reassessment_request(id: u32) -> Vec<u8> {
    crate::pa_tnc::PaMessageWriter::new(id)
        .attribute(
            false,
            &crate::pa_tnc::Attribute::AttributeRequest(vec![HELLO_ID]),
        )
        .finish()
}

/// [`attr::HELLO`] as an attribute ID.
const HELLO_ID: crate::pa_tnc::AttributeId = crate::pa_tnc::AttributeId {
    vendor: VENDOR,
    attr_type: attr::HELLO,
};

/// Whether the PA-TNC message `body` holds an Attribute Request for the
/// Hello (see [`reassessment_request`]).
pub fn is_reassessment_request(body: &[u8]) -> bool {
    crate::pa_tnc::PaMessage::decode(body).is_ok_and(|m| {
        m.attributes.iter().any(|a| {
            matches!(a.parse(), Ok(crate::pa_tnc::Attribute::AttributeRequest(ids))
                if ids.contains(&HELLO_ID))
        })
    })
}

/// Client -> PDP, first: what the endpoint is and whether it has a TPM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub role: Role,
    pub tpm: bool,
    /// The collector's software, for the operator ("tnc-client 0.1.0").
    pub software: String,
    /// The machine the endpoint runs on, as its configuration says: a
    /// terminal's own host name, the hypervisor host of a VM. A label for
    /// the operator's views (VMs grouped by host), reported by the endpoint
    /// and not attested; absent from older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostLabel>,
}

/// A host name or address as [`Hello::host`] carries it: 1 to 253 bytes of
/// letters, digits and `.-_:` (names, IPv4 and IPv6 addresses), so that
/// whatever an endpoint claims prints safely in lists and terminals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostLabel(String);

impl HostLabel {
    pub const MAX_LEN: usize = 253;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostLabel {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "host must be 1 to {} bytes, not {}",
                Self::MAX_LEN,
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
        {
            return Err(format!(
                "host {s:?} has {c:?}: only letters, digits and . - _ : are allowed"
            ));
        }
        Ok(Self(s))
    }
}

impl std::str::FromStr for HostLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_string())
    }
}

impl From<HostLabel> for String {
    fn from(h: HostLabel) -> String {
        h.0
    }
}

impl std::fmt::Display for HostLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Client -> PDP: the keys that identify the device's TPM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// TPMT_PUBLIC of the EK (the TPM2B_PUBLIC body).
    #[serde(with = "serde_bytes")]
    pub ek_public: Vec<u8>,
    /// DER X.509 certificate of the EK, from the TPM's NV index.
    #[serde(with = "serde_bytes")]
    pub ek_certificate: Vec<u8>,
    /// TPMT_PUBLIC of the AK.
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
}

/// PDP -> client: MakeCredential's output for the EK and the AK's Name. Both
/// fields keep their TPM2B size prefix, as TPM2_ActivateCredential takes them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialChallenge {
    #[serde(with = "serde_bytes")]
    pub id_object: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub encrypted_secret: Vec<u8>,
}

/// Client -> PDP: what TPM2_ActivateCredential recovered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialProof {
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
}

/// One PCR bank of a selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankSelection {
    /// TPM_ALG_ID of the bank (0x000B SHA-256, 0x0004 SHA-1, 0x0012 SM3).
    pub alg: u16,
    pub pcrs: Vec<u8>,
}

/// PDP -> client: quote these PCRs over this nonce and send the logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteRequest {
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    pub selection: Vec<BankSelection>,
    /// Send IMA entries from this index on (0: the whole list).
    pub ima_offset: u64,
}

/// Client -> PDP: the quote and the logs that must reproduce it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteEvidence {
    /// TPMS_ATTEST as signed.
    #[serde(with = "serde_bytes")]
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The whole UEFI event log.
    #[serde(with = "serde_bytes")]
    pub event_log: Vec<u8>,
    /// IMA binary runtime measurements from entry `ima_offset` on.
    #[serde(with = "serde_bytes")]
    pub ima: Vec<u8>,
    pub ima_offset: u64,
}

/// PDP -> client: the attestation validator's verdict and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationResult {
    /// "allow", "isolate" or "no access".
    pub verdict: String,
    /// One line per finding, most severe first.
    pub findings: Vec<String>,
}

/// Client -> PDP: the collector could not do what was asked (no TPM, a log that
/// cannot be read); the message is for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
}

/// One attestation attribute, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationAttribute {
    Hello(Hello),
    IdentityRequest,
    Identity(Identity),
    CredentialChallenge(CredentialChallenge),
    CredentialProof(CredentialProof),
    QuoteRequest(QuoteRequest),
    QuoteEvidence(QuoteEvidence),
    Result(AttestationResult),
    Failure(Failure),
}

/// Why an attestation attribute value did not decode; a receiver answers with
/// a PA-TNC Error Invalid Parameter at the value's offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttestationDecodeError {
    #[error("attribute type {0} is not an attestation attribute")]
    UnknownType(u32),
    #[error("attribute value of {0} bytes is over the {MAX_VALUE_LEN}-byte limit")]
    TooLong(usize),
    #[error("attribute value is not the expected CBOR map: {0}")]
    Cbor(String),
    #[error("{0} bytes after the CBOR value")]
    Trailing(usize),
}

/// The empty map the field-less request is sent as.
#[derive(Serialize, Deserialize)]
struct Empty {}

impl AttestationAttribute {
    /// The attribute type under [`VENDOR`].
    pub fn attr_type(&self) -> u32 {
        match self {
            Self::Hello(_) => attr::HELLO,
            Self::IdentityRequest => attr::IDENTITY_REQUEST,
            Self::Identity(_) => attr::IDENTITY,
            Self::CredentialChallenge(_) => attr::CREDENTIAL_CHALLENGE,
            Self::CredentialProof(_) => attr::CREDENTIAL_PROOF,
            Self::QuoteRequest(_) => attr::QUOTE_REQUEST,
            Self::QuoteEvidence(_) => attr::QUOTE_EVIDENCE,
            Self::Result(_) => attr::RESULT,
            Self::Failure(_) => attr::FAILURE,
        }
    }

    /// The CBOR value.
    pub fn encode_value(&self) -> Vec<u8> {
        use crate::cbor::encode as cbor;
        match self {
            Self::Hello(v) => cbor(v),
            Self::IdentityRequest => cbor(&Empty {}),
            Self::Identity(v) => cbor(v),
            Self::CredentialChallenge(v) => cbor(v),
            Self::CredentialProof(v) => cbor(v),
            Self::QuoteRequest(v) => cbor(v),
            Self::QuoteEvidence(v) => cbor(v),
            Self::Result(v) => cbor(v),
            Self::Failure(v) => cbor(v),
        }
    }

    /// Decodes the value of an attribute of type `attr_type` under [`VENDOR`].
    pub fn decode(attr_type: u32, value: &[u8]) -> Result<Self, AttestationDecodeError> {
        fn cbor<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, AttestationDecodeError> {
            crate::cbor::decode(value, MAX_VALUE_LEN).map_err(|e| match e {
                crate::cbor::CborError::TooLong(n) => AttestationDecodeError::TooLong(n),
                crate::cbor::CborError::Cbor(m) => AttestationDecodeError::Cbor(m),
                crate::cbor::CborError::Trailing(n) => AttestationDecodeError::Trailing(n),
            })
        }
        Ok(match attr_type {
            attr::HELLO => Self::Hello(cbor(value)?),
            attr::IDENTITY_REQUEST => {
                cbor::<Empty>(value)?;
                Self::IdentityRequest
            }
            attr::IDENTITY => Self::Identity(cbor(value)?),
            attr::CREDENTIAL_CHALLENGE => Self::CredentialChallenge(cbor(value)?),
            attr::CREDENTIAL_PROOF => Self::CredentialProof(cbor(value)?),
            attr::QUOTE_REQUEST => Self::QuoteRequest(cbor(value)?),
            attr::QUOTE_EVIDENCE => Self::QuoteEvidence(cbor(value)?),
            attr::RESULT => Self::Result(cbor(value)?),
            attr::FAILURE => Self::Failure(cbor(value)?),
            other => return Err(AttestationDecodeError::UnknownType(other)),
        })
    }
}

/// Byte fields as lengths: evidence is large and the secret is secret.
macro_rules! debug_lengths {
    ($ty:ident { $($field:ident),* }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &format_args!("{} bytes", self.$field.len())))*
                    .finish()
            }
        }
    };
}

debug_lengths!(Identity {
    ek_public,
    ek_certificate,
    ak_public
});
debug_lengths!(CredentialChallenge {
    id_object,
    encrypted_secret
});
debug_lengths!(CredentialProof { secret });

impl fmt::Debug for QuoteEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuoteEvidence")
            .field("attest", &format_args!("{} bytes", self.attest.len()))
            .field("signature", &format_args!("{} bytes", self.signature.len()))
            .field("event_log", &format_args!("{} bytes", self.event_log.len()))
            .field("ima", &format_args!("{} bytes", self.ima.len()))
            .field("ima_offset", &self.ima_offset)
            .finish()
    }
}

impl crate::cbor::VendorAttribute for AttestationAttribute {
    fn attr_type(&self) -> u32 {
        AttestationAttribute::attr_type(self)
    }

    fn encode_value(&self) -> Vec<u8> {
        AttestationAttribute::encode_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassessment_request_is_an_ietf_attribute_request_for_the_hello() {
        let m = reassessment_request(7);
        // PA-TNC header: version 1, reserved, message identifier 7.
        assert_eq!(&m[..8], &[1, 0, 0, 0, 0, 0, 0, 7]);
        // Attribute Request (IETF 0/1), 12 + 8 octets, naming 32473/1.
        assert_eq!(
            &m[8..],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0x00, 0x7e, 0xd9, 0, 0, 0, 1]
        );
        assert!(is_reassessment_request(&m));
        let other = crate::pa_tnc::PaMessageWriter::new(1)
            .attribute(
                false,
                &crate::pa_tnc::Attribute::AttributeRequest(vec![crate::pa_tnc::AttributeId {
                    vendor: VENDOR,
                    attr_type: attr::IDENTITY,
                }]),
            )
            .finish();
        assert!(!is_reassessment_request(&other));
        assert!(!is_reassessment_request(&[1, 2, 3]));
    }

    fn samples() -> Vec<AttestationAttribute> {
        vec![
            AttestationAttribute::Hello(Hello {
                role: Role::Vm,
                tpm: true,
                software: "tnc-client 0.1.0".into(),
                host: Some("hv-1.example".parse().unwrap()),
            }),
            AttestationAttribute::Hello(Hello {
                role: Role::Terminal,
                tpm: false,
                software: "tnc-client 0.1.0".into(),
                host: None,
            }),
            AttestationAttribute::IdentityRequest,
            AttestationAttribute::Identity(Identity {
                ek_public: vec![1; 90],
                ek_certificate: vec![2; 700],
                ak_public: vec![3; 88],
            }),
            AttestationAttribute::CredentialChallenge(CredentialChallenge {
                id_object: vec![4; 70],
                encrypted_secret: vec![5; 258],
            }),
            AttestationAttribute::CredentialProof(CredentialProof {
                secret: vec![6; 32],
            }),
            AttestationAttribute::QuoteRequest(QuoteRequest {
                nonce: vec![7; 32],
                selection: vec![BankSelection {
                    alg: 0x000B,
                    pcrs: (0..=10).collect(),
                }],
                ima_offset: 42,
            }),
            AttestationAttribute::QuoteEvidence(QuoteEvidence {
                attest: vec![8; 129],
                signature: vec![9; 72],
                event_log: vec![10; 4000],
                ima: vec![],
                ima_offset: 42,
            }),
            AttestationAttribute::Result(AttestationResult {
                verdict: "isolate".into(),
                findings: vec!["PCR 9 event 12: kernel image not in the reference values".into()],
            }),
            AttestationAttribute::Failure(Failure {
                message: "no TPM at /dev/tpmrm0".into(),
            }),
        ]
    }

    #[test]
    fn every_attribute_round_trips() {
        for a in samples() {
            let value = a.encode_value();
            assert_eq!(
                AttestationAttribute::decode(a.attr_type(), &value).unwrap(),
                a
            );
        }
    }

    #[test]
    fn byte_fields_are_cbor_byte_strings() {
        let value = AttestationAttribute::CredentialProof(CredentialProof {
            secret: vec![0xAA; 3],
        })
        .encode_value();
        // {"secret": h'AAAAAA'}: map(1), text(6) "secret", bytes(3).
        assert_eq!(value, b"\xa1\x66secret\x43\xaa\xaa\xaa");
    }

    #[test]
    fn malformed_values_are_refused() {
        let good = samples()[0].encode_value();
        for cut in 0..good.len() {
            assert!(
                AttestationAttribute::decode(attr::HELLO, &good[..cut]).is_err(),
                "{cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            AttestationAttribute::decode(attr::HELLO, &long),
            Err(AttestationDecodeError::Trailing(1))
        );
        // A Hello where a QuoteRequest is expected: missing fields.
        assert!(matches!(
            AttestationAttribute::decode(attr::QUOTE_REQUEST, &good),
            Err(AttestationDecodeError::Cbor(_))
        ));
        assert_eq!(
            AttestationAttribute::decode(77, &good),
            Err(AttestationDecodeError::UnknownType(77))
        );
        // A byte string claiming 4 GiB in a 9-byte value: refused, not allocated.
        let huge = b"\xa1\x66secret\x5a\xff\xff\xff\xff";
        assert!(AttestationAttribute::decode(attr::CREDENTIAL_PROOF, huge).is_err());
    }

    #[test]
    fn hello_host_is_optional_and_checked() {
        // An older client's Hello has no host.
        let old = b"\xa3\x64role\x62vm\x63tpm\xf5\x68software\x61x";
        match AttestationAttribute::decode(attr::HELLO, old) {
            Ok(AttestationAttribute::Hello(h)) => assert_eq!(h.host, None),
            other => panic!("{other:?}"),
        }
        let with = |host: &str| {
            let mut v = b"\xa4\x64role\x62vm\x63tpm\xf5\x68software\x61x\x64host".to_vec();
            assert!(host.len() < 24);
            v.push(0x60 + host.len() as u8);
            v.extend_from_slice(host.as_bytes());
            AttestationAttribute::decode(attr::HELLO, &v)
        };
        for good in ["hv-1", "10.0.0.7", "fe80::1", "rack_3.dc"] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in ["", "hv 1", "hv\u{1b}[2J", "h\u{e9}te", "a/b"] {
            assert!(
                matches!(with(bad), Err(AttestationDecodeError::Cbor(_))),
                "{bad:?}"
            );
        }
        assert!("x".repeat(253).parse::<HostLabel>().is_ok());
        assert!("x".repeat(254).parse::<HostLabel>().is_err());
    }

    #[test]
    fn debug_shows_lengths_not_secrets() {
        let proof = CredentialProof {
            secret: vec![0x5A; 32],
        };
        assert_eq!(format!("{proof:?}"), "CredentialProof { secret: 32 bytes }");
    }
}
