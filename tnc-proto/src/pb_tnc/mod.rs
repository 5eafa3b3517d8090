//! PB-TNC (RFC 5793): the posture broker protocol between a TNC client and server.
//!
//! A [`Batch`] is an 8-byte header and [`PbMessage`]s with 12-byte headers (§4.1,
//! §4.2). [`Batch::decode`] checks every header and known message value and turns
//! any violation into the [`BatchError`] whose PB-Error the RFC names; the
//! [`PbSession`] state machine (§3.2) adds the checks that depend on the side and
//! the state. Message values are borrowed from the input, never copied.

mod state;

pub use state::*;

use crate::codec::{read_to_end, Codec, LengthFromHeader, Malformed, Put, Reader, U24};
use crate::common::{read_string_and_lang, write_string_and_lang, AssessmentResult, Remediation};
use crate::pa_tnc::PaSubtype;
use thiserror::Error;

/// PB-TNC version 2 (RFC 5793 §4.1).
pub const VERSION: u8 = 2;
pub const BATCH_HEADER_LEN: usize = 8;
pub const MESSAGE_HEADER_LEN: usize = 12;
/// Message header flag: the recipient must understand the message (§4.2).
pub const FLAG_NOSKIP: u8 = 0x80;
/// PB-PA flag: deliver only to the named collector or validator (§4.5).
pub const FLAG_EXCL: u8 = 0x80;
/// PB-Error flag: the error ends the session (§4.9).
pub const FLAG_FATAL: u8 = 0x80;
/// Batch header bit: set when a Posture Broker Server sent the batch (§4.1).
const DIRECTION_SERVER: u8 = 0x80;
/// Collector or validator identifier meaning "any" (IF-TNCCS `TNC_IMCID_ANY`),
/// sent by strongSwan where the identifier is not known yet.
pub const ID_ANY: u16 = 0xFFFF;
/// Prefix of a PB-Language-Preference value (§4.10: the header name is included).
pub const ACCEPT_LANGUAGE: &str = "Accept-Language: ";

/// Which Posture Broker sent or receives something: the PB-TNC side (not the
/// device class, which is `attestation::Role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "Posture Broker Client",
            Side::Server => "Posture Broker Server",
        }
    }
}

wire_enum! {
    /// Batch types (RFC 5793 §4.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum BatchType: u8 as from_u8 / to_u8 {
        CData = 1 => "CDATA",
        SData = 2 => "SDATA",
        Result = 3 => "RESULT",
        CRetry = 4 => "CRETRY",
        SRetry = 5 => "SRETRY",
        Close = 6 => "CLOSE",
    }
}

impl BatchType {
    /// Whether `role` may send this type (§4.1 table).
    pub fn sendable_by(self, role: Side) -> bool {
        match self {
            Self::CData | Self::CRetry => role == Side::Client,
            Self::SData | Self::Result | Self::SRetry => role == Side::Server,
            Self::Close => true,
        }
    }
}

/// IETF PB-TNC message types (§4.3).
pub mod msg_type {
    pub const EXPERIMENTAL: u32 = 0;
    pub const PA: u32 = 1;
    pub const ASSESSMENT_RESULT: u32 = 2;
    pub const ACCESS_RECOMMENDATION: u32 = 3;
    pub const REMEDIATION_PARAMETERS: u32 = 4;
    pub const ERROR: u32 = 5;
    pub const LANGUAGE_PREFERENCE: u32 = 6;
    pub const REASON_STRING: u32 = 7;
    /// Reserved (§4.2).
    pub const RESERVED: u32 = 0xFFFF_FFFF;

    /// The RFC name of an IETF message type.
    pub fn name(t: u32) -> &'static str {
        match t {
            EXPERIMENTAL => "PB-Experimental",
            PA => "PB-PA",
            ASSESSMENT_RESULT => "PB-Assessment-Result",
            ACCESS_RECOMMENDATION => "PB-Access-Recommendation",
            REMEDIATION_PARAMETERS => "PB-Remediation-Parameters",
            ERROR => "PB-Error",
            LANGUAGE_PREFERENCE => "PB-Language-Preference",
            REASON_STRING => "PB-Reason-String",
            _ => "unassigned",
        }
    }
}

wire_enum! {
    /// PB-Access-Recommendation codes (§4.7).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum AccessRecommendation: u16 as from_u16 / to_u16 {
        Allowed = 1 => "Access Allowed",
        Denied = 2 => "Access Denied",
        Quarantined = 3 => "Quarantined",
    }
}

wire_enum! {
    /// IETF PB-Error codes (§4.9.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PbErrorCode: u16 as from_u16 / to_u16, Unknown {
        UnexpectedBatchType = 0 => "Unexpected Batch Type",
        InvalidParameter = 1 => "Invalid Parameter",
        LocalError = 2 => "Local Error",
        UnsupportedMandatoryMessage = 3 => "Unsupported Mandatory Message",
        VersionNotSupported = 4 => "Version Not Supported",
    }
}

/// The Error Parameters of a PB-Error (§4.9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PbErrorParams<'a> {
    /// Codes 0 and 2 carry none. strongSwan sends four zero bytes for them, which
    /// decode as `Offset(0)`.
    None,
    /// Invalid Parameter and Unsupported Mandatory Message: a byte offset from the
    /// start of the batch.
    Offset(u32),
    /// Version Not Supported.
    Version { bad: u8, max: u8, min: u8 },
    /// A vendor code's parameters, or an IETF code's that do not fit its layout.
    Other(&'a [u8]),
}

/// A PB-Error message (§4.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PbError<'a> {
    pub fatal: bool,
    pub vendor: U24,
    pub code: u16,
    pub params: PbErrorParams<'a>,
}

impl PbError<'_> {
    /// The IETF code, when the vendor is the IETF.
    pub fn ietf_code(&self) -> Option<PbErrorCode> {
        (self.vendor == U24::IETF).then(|| PbErrorCode::from_u16(self.code))
    }
}

/// A PB-PA message (§4.5): one PA-TNC message for a collector/validator pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PbPa<'a> {
    pub exclusive: bool,
    pub subtype: PaSubtype,
    pub collector_id: u16,
    pub validator_id: u16,
    /// The PA-TNC message, opaque to PB-TNC.
    pub body: &'a [u8],
}

impl PbPa<'_> {
    /// Whether the broker on side `receiver` delivers this message to the posture
    /// component `id` registered for `subtype` (RFC 5793 §4.5): with EXCL only to
    /// the component the message names (a collector on the client side, a
    /// validator on the server side); otherwise to every component registered for
    /// the message's subtype.
    pub fn delivers_to(&self, receiver: Side, subtype: PaSubtype, id: u16) -> bool {
        if subtype != self.subtype {
            return false;
        }
        if !self.exclusive {
            return true;
        }
        match receiver {
            Side::Client => self.collector_id == id,
            Side::Server => self.validator_id == id,
        }
    }
}

/// One PB-TNC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbMessage<'a> {
    Experimental {
        noskip: bool,
        value: &'a [u8],
    },
    Pa(PbPa<'a>),
    AssessmentResult(AssessmentResult),
    AccessRecommendation(AccessRecommendation),
    RemediationParameters(Remediation<'a>),
    Error(PbError<'a>),
    /// The whole value, `Accept-Language: ...` included.
    LanguagePreference(&'a str),
    ReasonString {
        text: &'a str,
        lang: &'a str,
    },
    /// A message of another vendor or an unassigned type without NOSKIP: the
    /// recipient skips it (§4.2).
    Unknown {
        noskip: bool,
        vendor: U24,
        msg_type: u32,
        value: &'a [u8],
    },
}

impl<'a> PbMessage<'a> {
    /// (vendor, type) as in the header.
    pub fn type_id(&self) -> (U24, u32) {
        let t = match self {
            Self::Experimental { .. } => msg_type::EXPERIMENTAL,
            Self::Pa(_) => msg_type::PA,
            Self::AssessmentResult(_) => msg_type::ASSESSMENT_RESULT,
            Self::AccessRecommendation(_) => msg_type::ACCESS_RECOMMENDATION,
            Self::RemediationParameters(_) => msg_type::REMEDIATION_PARAMETERS,
            Self::Error(_) => msg_type::ERROR,
            Self::LanguagePreference(_) => msg_type::LANGUAGE_PREFERENCE,
            Self::ReasonString { .. } => msg_type::REASON_STRING,
            Self::Unknown {
                vendor, msg_type, ..
            } => return (*vendor, *msg_type),
        };
        (U24::IETF, t)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Unknown { vendor, .. } if *vendor != U24::IETF => "vendor-specific",
            _ => msg_type::name(self.type_id().1),
        }
    }

    /// The NOSKIP flag this message carries on the wire: fixed by §4.5–§4.11 for
    /// the IETF types.
    pub fn noskip(&self) -> bool {
        match self {
            Self::Experimental { noskip, .. } | Self::Unknown { noskip, .. } => *noskip,
            Self::Pa(_) | Self::AssessmentResult(_) | Self::Error(_) => true,
            Self::AccessRecommendation(_)
            | Self::RemediationParameters(_)
            | Self::LanguagePreference(_)
            | Self::ReasonString { .. } => false,
        }
    }

    /// Appends header and value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let (vendor, t) = self.type_id();
        out.put_u8(if self.noskip() { FLAG_NOSKIP } else { 0 });
        out.put_u24(vendor);
        out.put_u32(t);
        self.encode_value(&mut LengthFromHeader::new(out, start));
    }

    fn encode_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::Experimental { value, .. } | Self::Unknown { value, .. } => {
                out.extend_from_slice(value)
            }
            Self::Pa(pa) => {
                out.put_u8(if pa.exclusive { FLAG_EXCL } else { 0 });
                out.put_u24(pa.subtype.vendor);
                out.put_u32(pa.subtype.subtype);
                out.put_u16(pa.collector_id);
                out.put_u16(pa.validator_id);
                out.extend_from_slice(pa.body);
            }
            Self::AssessmentResult(r) => out.put_u32(r.to_u32()),
            Self::AccessRecommendation(a) => {
                out.put_u16(0);
                out.put_u16(a.to_u16());
            }
            Self::RemediationParameters(r) => r.encode(out),
            Self::Error(e) => {
                out.put_u8(if e.fatal { FLAG_FATAL } else { 0 });
                out.put_u24(e.vendor);
                out.put_u16(e.code);
                out.put_u16(0);
                match e.params {
                    PbErrorParams::None => {}
                    PbErrorParams::Offset(o) => out.put_u32(o),
                    PbErrorParams::Version { bad, max, min } => {
                        out.extend_from_slice(&[bad, max, min, 0])
                    }
                    PbErrorParams::Other(p) => out.extend_from_slice(p),
                }
            }
            Self::LanguagePreference(v) => out.extend_from_slice(v.as_bytes()),
            Self::ReasonString { text, lang } => write_string_and_lang(out, text, lang),
        }
    }

    /// Reads one message. Offsets in errors count from the start of the batch.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, BatchError> {
        let start = r.offset();
        if r.left() < MESSAGE_HEADER_LEN {
            return Err(BatchError::invalid(start, "message header cut short"));
        }
        let flags = r.u8_or("message header")?;
        let vendor = r.u24_or("message header")?;
        let t = r.u32_or("message header")?;
        let length = r.u32_or("message header")?;
        if vendor == U24::MAX {
            return Err(BatchError::invalid(
                start + 1,
                "reserved vendor ID 0xFFFFFF",
            ));
        }
        if t == msg_type::RESERVED {
            return Err(BatchError::invalid(
                start + 4,
                "reserved message type 0xFFFFFFFF",
            ));
        }
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length < MESSAGE_HEADER_LEN {
            return Err(BatchError::invalid(
                start + 8,
                "message length below the 12-byte header",
            ));
        }
        let mut v = r
            .sub(length - MESSAGE_HEADER_LEN)
            .ok_or(BatchError::invalid(
                start + 8,
                "message length runs past the batch",
            ))?;
        let noskip = flags & FLAG_NOSKIP != 0;
        if vendor != U24::IETF || t > msg_type::REASON_STRING {
            if noskip {
                return Err(BatchError::UnsupportedMandatoryMessage {
                    offset: start,
                    vendor,
                    msg_type: t,
                });
            }
            return Ok(Self::Unknown {
                noskip,
                vendor,
                msg_type: t,
                value: v.rest(),
            });
        }
        // §4.5-§4.11 fix the NOSKIP flag of each IETF type; a message with the other
        // value is refused (strongSwan: fatal Invalid Parameter at the message).
        let must_noskip = match t {
            msg_type::PA | msg_type::ASSESSMENT_RESULT | msg_type::ERROR => Some(true),
            // PB-Language-Preference too: strongSwan's table has NOSKIP clear for
            // it and refuses the other value (found by the pb_tnc_batch fuzzer).
            msg_type::ACCESS_RECOMMENDATION
            | msg_type::REMEDIATION_PARAMETERS
            | msg_type::LANGUAGE_PREFERENCE
            | msg_type::REASON_STRING => Some(false),
            _ => None,
        };
        if must_noskip.is_some_and(|m| m != noskip) {
            return Err(BatchError::invalid(
                start,
                "NOSKIP flag contradicts RFC 5793 for this type",
            ));
        }
        let msg = match t {
            msg_type::EXPERIMENTAL => {
                // §4.4: ignored unless NOSKIP, which no implementation supports.
                if noskip {
                    return Err(BatchError::UnsupportedMandatoryMessage {
                        offset: start,
                        vendor,
                        msg_type: t,
                    });
                }
                Self::Experimental {
                    noskip,
                    value: v.rest(),
                }
            }
            msg_type::PA => {
                let flags = v.u8_or("PB-PA value cut short")?;
                let sv = v.offset();
                let pa_vendor = v.u24_or("PB-PA value cut short")?;
                let subtype = v.u32_or("PB-PA value cut short")?;
                if pa_vendor == U24::MAX {
                    return Err(BatchError::invalid(sv, "reserved PA message vendor ID"));
                }
                if subtype == 0xFFFF_FFFF {
                    return Err(BatchError::invalid(sv + 3, "reserved PA subtype"));
                }
                let collector_id = v.u16_or("PB-PA value cut short")?;
                let validator_id = v.u16_or("PB-PA value cut short")?;
                Self::Pa(PbPa {
                    exclusive: flags & FLAG_EXCL != 0,
                    subtype: PaSubtype {
                        vendor: pa_vendor,
                        subtype,
                    },
                    collector_id,
                    validator_id,
                    body: v.rest(),
                })
            }
            msg_type::ASSESSMENT_RESULT => Self::AssessmentResult(AssessmentResult::read(&mut v)?),
            msg_type::ACCESS_RECOMMENDATION => {
                let _reserved = v.u16_or("PB-Access-Recommendation cut short")?;
                let at = v.malformed("undefined access recommendation");
                let code = v.u16_or("PB-Access-Recommendation cut short")?;
                Self::AccessRecommendation(AccessRecommendation::from_u16(code).ok_or(at)?)
            }
            msg_type::REMEDIATION_PARAMETERS => {
                Self::RemediationParameters(Remediation::read(&mut v)?)
            }
            msg_type::ERROR => {
                let flags = v.u8_or("PB-Error value cut short")?;
                let vendor = v.u24_or("PB-Error value cut short")?;
                let code = v.u16_or("PB-Error value cut short")?;
                let _reserved = v.u16_or("PB-Error value cut short")?;
                let rest = v.rest();
                let params = match (vendor == U24::IETF, PbErrorCode::from_u16(code), rest) {
                    (_, _, []) => PbErrorParams::None,
                    (
                        true,
                        PbErrorCode::InvalidParameter
                        | PbErrorCode::UnsupportedMandatoryMessage
                        | PbErrorCode::UnexpectedBatchType
                        | PbErrorCode::LocalError,
                        [a, b, c, d],
                    ) => PbErrorParams::Offset(u32::from_be_bytes([*a, *b, *c, *d])),
                    (true, PbErrorCode::VersionNotSupported, [bad, max, min, _]) => {
                        PbErrorParams::Version {
                            bad: *bad,
                            max: *max,
                            min: *min,
                        }
                    }
                    (_, _, other) => PbErrorParams::Other(other),
                };
                Self::Error(PbError {
                    fatal: flags & FLAG_FATAL != 0,
                    vendor,
                    code,
                    params,
                })
            }
            msg_type::LANGUAGE_PREFERENCE => {
                let at = v.offset();
                let text = v.rest();
                if let Some(i) = text
                    .iter()
                    .position(|&b| !(b.is_ascii() && (b == b'\t' || !b.is_ascii_control())))
                {
                    return Err(BatchError::invalid(
                        at + i,
                        "language preference must be US-ASCII without controls",
                    ));
                }
                let text = core::str::from_utf8(text)
                    .map_err(|_| BatchError::invalid(at, "language preference"))?;
                if text.len() < ACCEPT_LANGUAGE.len()
                    || !text[..ACCEPT_LANGUAGE.len()].eq_ignore_ascii_case(ACCEPT_LANGUAGE)
                {
                    return Err(BatchError::invalid(
                        at,
                        "language preference must start with \"Accept-Language: \"",
                    ));
                }
                Self::LanguagePreference(text)
            }
            msg_type::REASON_STRING => {
                let (text, lang) = read_string_and_lang(&mut v, "reason string")?;
                Self::ReasonString { text, lang }
            }
            // Types above 7 were handled before; this arm keeps the match total.
            _ => Self::Unknown {
                noskip,
                vendor,
                msg_type: t,
                value: v.rest(),
            },
        };
        v.expect_empty("bytes after the message value")?;
        Ok(msg)
    }
}

impl PbMessage<'_> {
    /// The accepted language tags of a PB-Language-Preference, without the prefix.
    pub fn languages(value: &str) -> &str {
        value.get(ACCEPT_LANGUAGE.len()..).unwrap_or("").trim()
    }
}

/// A batch that breaks RFC 5793, as the PB-Error the receiver must send (in a
/// CLOSE batch: every one of these is fatal).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BatchError {
    /// `offset` counts from the first byte of the batch header (§4.9.1).
    #[error("PB-TNC Invalid Parameter at byte {offset}: {what}")]
    InvalidParameter { offset: usize, what: &'static str },
    #[error("PB-TNC Version Not Supported: batch version {version}")]
    VersionNotSupported { version: u8 },
    #[error("PB-TNC Unexpected Batch Type: {batch_type} {why}")]
    UnexpectedBatchType { batch_type: u8, why: &'static str },
    #[error(
        "PB-TNC Unsupported Mandatory Message at byte {offset}: vendor {vendor} type {msg_type}"
    )]
    UnsupportedMandatoryMessage {
        offset: usize,
        vendor: U24,
        msg_type: u32,
    },
    /// A failure of our own, not the peer's (§4.9.1 Local Error).
    #[error("PB-TNC Local Error: {0}")]
    LocalError(&'static str),
}

impl From<Malformed> for BatchError {
    fn from(m: Malformed) -> Self {
        Self::InvalidParameter {
            offset: m.offset,
            what: m.what,
        }
    }
}

impl BatchError {
    fn invalid(offset: usize, what: &'static str) -> Self {
        Self::InvalidParameter { offset, what }
    }

    pub fn code(&self) -> PbErrorCode {
        match self {
            Self::InvalidParameter { .. } => PbErrorCode::InvalidParameter,
            Self::VersionNotSupported { .. } => PbErrorCode::VersionNotSupported,
            Self::UnexpectedBatchType { .. } => PbErrorCode::UnexpectedBatchType,
            Self::UnsupportedMandatoryMessage { .. } => PbErrorCode::UnsupportedMandatoryMessage,
            Self::LocalError(_) => PbErrorCode::LocalError,
        }
    }

    /// The fatal PB-Error to send for this violation.
    pub fn to_pb_error(&self) -> PbError<'static> {
        let offset = |o: usize| PbErrorParams::Offset(u32::try_from(o).unwrap_or(u32::MAX));
        let params = match *self {
            Self::InvalidParameter { offset: o, .. }
            | Self::UnsupportedMandatoryMessage { offset: o, .. } => offset(o),
            Self::VersionNotSupported { version } => PbErrorParams::Version {
                bad: version,
                max: VERSION,
                min: VERSION,
            },
            Self::UnexpectedBatchType { .. } | Self::LocalError(_) => PbErrorParams::None,
        };
        PbError {
            fatal: true,
            vendor: U24::IETF,
            code: self.code().to_u16(),
            params,
        }
    }
}

/// A PB-TNC batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    pub batch_type: BatchType,
    /// Who sent it: the header's D bit.
    pub sender: Side,
    pub messages: Vec<PbMessage<'a>>,
}

impl<'a> Batch<'a> {
    pub fn new(sender: Side, batch_type: BatchType, messages: Vec<PbMessage<'a>>) -> Self {
        Self {
            batch_type,
            sender,
            messages,
        }
    }

    /// Decodes and checks one whole batch (`bytes` is exactly the batch).
    ///
    /// Checks that need the receiver's role and state (who may send what, when)
    /// are [`PbSession::receive`]'s.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let mut r = Reader::new(bytes);
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::invalid(
                0,
                "batch shorter than its 8-byte header",
            ));
        }
        let version = r.u8_or("batch header")?;
        if version != VERSION {
            return Err(BatchError::VersionNotSupported { version });
        }
        let d = r.u8_or("batch header")?;
        let _reserved = r.u8_or("batch header")?;
        let b = r.u8_or("batch header")? & 0x0F;
        let length = r.u32_or("batch header")?;
        let batch_type = match BatchType::from_u8(b) {
            Some(t) => t,
            // strongSwan lets type 0 through its header check and its state
            // machine refuses it; 7-15 fail the header check.
            None if b == 0 => {
                return Err(BatchError::UnexpectedBatchType {
                    batch_type: 0,
                    why: "is not a batch type",
                })
            }
            None => return Err(BatchError::invalid(3, "undefined batch type")),
        };
        if usize::try_from(length).ok() != Some(bytes.len()) {
            return Err(BatchError::invalid(
                4,
                "batch length differs from the bytes received",
            ));
        }
        let sender = if d & DIRECTION_SERVER != 0 {
            Side::Server
        } else {
            Side::Client
        };
        let messages = read_to_end::<PbMessage<'_>>(&mut r, MESSAGE_HEADER_LEN)?;
        Ok(Self {
            batch_type,
            sender,
            messages,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u8(VERSION);
        out.put_u8(match self.sender {
            Side::Server => DIRECTION_SERVER,
            Side::Client => 0,
        });
        out.put_u8(0);
        out.put_u8(self.batch_type.to_u8());
        let mut out = LengthFromHeader::new(out, start);
        for m in &self.messages {
            m.encode(&mut out);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The PB-PA messages of the batch.
    pub fn pa_messages(&self) -> impl Iterator<Item = &PbPa<'a>> {
        self.messages.iter().filter_map(|m| match m {
            PbMessage::Pa(pa) => Some(pa),
            _ => None,
        })
    }

    /// The fatal PB-Error of the batch, if it carries one.
    pub fn fatal_error(&self) -> Option<&PbError<'a>> {
        self.messages.iter().find_map(|m| match m {
            PbMessage::Error(e) if e.fatal => Some(e),
            _ => None,
        })
    }
}

impl<'a> Codec<'a> for PbMessage<'a> {
    type Error = BatchError;

    fn encode(&self, out: &mut Vec<u8>) {
        PbMessage::encode(self, out)
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, BatchError> {
        PbMessage::read(r)
    }
}

impl<'a> Codec<'a> for Batch<'a> {
    type Error = BatchError;

    fn encode(&self, out: &mut Vec<u8>) {
        Batch::encode(self, out)
    }

    /// Reads to the end of `r`: a batch is the whole PT-TLS message value.
    fn read(r: &mut Reader<'a>) -> Result<Self, BatchError> {
        Batch::decode(r.rest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excl_delivers_only_to_the_named_component() {
        let os = PaSubtype::OPERATING_SYSTEM;
        let mut pa = PbPa {
            exclusive: false,
            subtype: os,
            collector_id: 3,
            validator_id: 7,
            body: &[],
        };
        // Not exclusive: every component of the subtype, none of another.
        assert!(pa.delivers_to(Side::Client, os, 1));
        assert!(pa.delivers_to(Side::Server, os, 9));
        assert!(!pa.delivers_to(Side::Client, PaSubtype::SWIMA, 3));
        pa.exclusive = true;
        assert!(pa.delivers_to(Side::Client, os, 3));
        assert!(
            !pa.delivers_to(Side::Client, os, 7),
            "a client routes by collector id"
        );
        assert!(pa.delivers_to(Side::Server, os, 7));
        assert!(
            !pa.delivers_to(Side::Server, os, 3),
            "a server routes by validator id"
        );
    }
}
