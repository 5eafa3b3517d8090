//! PT-TLS (RFC 6876): the NEA posture transport carried inside a TLS session.
//!
//! - [`Message`] / [`MessageBody`]: every IETF message type (§3.6–§3.9), decoded
//!   without copying values.
//! - [`Framer`]: turns arbitrary chunks of the TLS plaintext stream into whole
//!   messages, refusing bad lengths before buffering them.
//! - [`ClientConnection`] / [`ServerConnection`]: the sans-IO endpoints, version
//!   negotiation and SASL (PLAIN or none) included, then the PB-TNC batches.

mod connection;
mod framer;
mod loopback;
pub mod sasl;

pub use connection::*;
pub use framer::*;
pub use loopback::*;

use crate::codec::{Codec, LengthFromHeader, Malformed, Put, Reader, U24};
use core::fmt;
use thiserror::Error;

/// IANA TCP port for PT-TLS.
pub const PORT: u16 = 271;
/// PT-TLS version 1, the only one defined (RFC 6876 §3.7.1).
pub const VERSION: u8 = 1;
/// Every message starts with a 16-byte header; Message Length includes it.
pub const HEADER_LEN: usize = 16;
/// A PT-TLS Error carries at most this much of the offending message (§3.9).
pub const MAX_ERROR_COPY: usize = 1024;
/// Default bound on one message, header included: 2 MiB, the size strongSwan
/// accepts. Large enough for an IMA list of tens of thousands of entries.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 2 * 1024 * 1024;

/// ALPN protocol ID of PT-TLS messages carried on one bidirectional QUIC
/// stream (the project's transport besides RFC 6876's TCP + TLS).
pub const QUIC_ALPN: &[u8] = b"pt-tls";

/// Longest SASL mechanism name the 5-bit length field can carry (§3.8.7).
pub const MAX_MECHANISM_LEN: usize = 0x1F;

wire_enum! {
    /// IETF PT-TLS message types (vendor 0, RFC 6876 §3.6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum MessageType: u32 as from_u32 / to_u32 {
        Experimental = 0 => "Experimental",
        VersionRequest = 1 => "Version Request",
        VersionResponse = 2 => "Version Response",
        SaslMechanisms = 3 => "SASL Mechanisms",
        SaslMechanismSelection = 4 => "SASL Mechanism Selection",
        SaslAuthenticationData = 5 => "SASL Authentication Data",
        SaslResult = 6 => "SASL Result",
        PbTncBatch = 7 => "PB-TNC Batch",
        Error = 8 => "PT-TLS Error",
    }
}

wire_enum! {
    /// IETF PT-TLS error codes (RFC 6876 §3.9).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ErrorCode: u32 as from_u32 / to_u32, Unknown {
        Reserved = 0 => "Reserved",
        MalformedMessage = 1 => "Malformed Message",
        VersionNotSupported = 2 => "Version Not Supported",
        TypeNotSupported = 3 => "Type Not Supported",
        InvalidMessage = 4 => "Invalid Message",
        SaslMechanismError = 5 => "SASL Mechanism Error",
        InvalidParameter = 6 => "Invalid Parameter",
    }
}

impl ErrorCode {
    /// Whether the session ends after this error (RFC 6876 §3.9). Type Not Supported
    /// only makes the recipient ignore the message; Reserved is for debugging.
    pub fn is_fatal(self) -> bool {
        !matches!(self, Self::Reserved | Self::TypeNotSupported)
    }
}

wire_enum! {
    /// SASL Result codes (RFC 6876 §3.8.10).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum SaslResultCode: u16 as from_u16 / to_u16 {
        Success = 0 => "Success",
        Failure = 1 => "Failure",
        Abort = 2 => "Abort",
        MechanismFailure = 3 => "Mechanism Failure",
    }
}

/// How wide the Result Code of a SASL Result is on the wire.
///
/// RFC 6876 §3.8.10 draws a 16-bit field; strongSwan (up to 6.0.6 at least) reads
/// and writes one byte. A 16-bit Failure (`00 01`) read by strongSwan as one byte
/// would be taken for Success, so the default is the 1-byte form; a receiver
/// accepts both (one byte when the value is one byte long).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SaslResultWidth {
    #[default]
    OneByte,
    TwoBytes,
}

/// A SASL mechanism name (RFC 4422 §3.1): 1–20 characters of `A-Z 0-9 - _`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mechanism<'a>(&'a str);

impl<'a> Mechanism<'a> {
    pub const PLAIN: Mechanism<'static> = Mechanism("PLAIN");

    /// Returns `None` for a name that is empty, longer than 20 characters or holds
    /// other characters than upper-case letters, digits, `-` and `_`.
    pub fn new(name: &'a str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= 20
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then_some(Self(name))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Reads `R R R | Mech Len (5) | name` (§3.8.7, §3.8.8).
    fn read(r: &mut Reader<'a>) -> Result<Self, Malformed> {
        let at = r.malformed("invalid SASL mechanism name");
        let len = r.u8_or("SASL mechanism length missing")? & 0x1F;
        let name = r.take_or(usize::from(len), "SASL mechanism name cut short")?;
        core::str::from_utf8(name)
            .ok()
            .and_then(Mechanism::new)
            .ok_or(at)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        // `new` guarantees at most 20 bytes.
        out.put_u8(self.0.len() as u8);
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl fmt::Debug for Mechanism<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Mechanism<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The decoded value of a PT-TLS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody<'a> {
    Experimental(&'a [u8]),
    VersionRequest {
        min: u8,
        max: u8,
        preferred: u8,
    },
    VersionResponse {
        version: u8,
    },
    /// An empty list ends the authentication phase.
    SaslMechanisms(Vec<Mechanism<'a>>),
    SaslMechanismSelection {
        mechanism: Mechanism<'a>,
        /// Optional initial client response; empty when absent.
        initial: &'a [u8],
    },
    SaslAuthenticationData(&'a [u8]),
    SaslResult {
        code: SaslResultCode,
        /// Additional data with Success; otherwise empty.
        data: &'a [u8],
        width: SaslResultWidth,
    },
    /// One whole PB-TNC batch.
    PbTncBatch(&'a [u8]),
    Error {
        vendor: U24,
        code: u32,
        /// The offending message from its header on, at most 1024 bytes.
        original: &'a [u8],
    },
    /// A type this implementation does not know: answered with Type Not Supported.
    Unknown {
        vendor: U24,
        message_type: u32,
        value: &'a [u8],
    },
}

impl MessageBody<'_> {
    /// The (vendor, type) pair of the header.
    pub fn type_id(&self) -> (U24, u32) {
        let t = match self {
            Self::Experimental(_) => MessageType::Experimental,
            Self::VersionRequest { .. } => MessageType::VersionRequest,
            Self::VersionResponse { .. } => MessageType::VersionResponse,
            Self::SaslMechanisms(_) => MessageType::SaslMechanisms,
            Self::SaslMechanismSelection { .. } => MessageType::SaslMechanismSelection,
            Self::SaslAuthenticationData(_) => MessageType::SaslAuthenticationData,
            Self::SaslResult { .. } => MessageType::SaslResult,
            Self::PbTncBatch(_) => MessageType::PbTncBatch,
            Self::Error { .. } => MessageType::Error,
            Self::Unknown {
                vendor,
                message_type,
                ..
            } => return (*vendor, *message_type),
        };
        (U24::IETF, t.to_u32())
    }

    /// A readable name for logs and the dissector.
    pub fn name(&self) -> &'static str {
        match self.type_id() {
            (v, t) if v == U24::IETF => MessageType::from_u32(t).map_or("unassigned", |t| t.name()),
            _ => "vendor-specific",
        }
    }

    fn encode_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::Experimental(v)
            | Self::SaslAuthenticationData(v)
            | Self::PbTncBatch(v)
            | Self::Unknown { value: v, .. } => out.extend_from_slice(v),
            Self::VersionRequest {
                min,
                max,
                preferred,
            } => out.extend_from_slice(&[0, *min, *max, *preferred]),
            Self::VersionResponse { version } => out.extend_from_slice(&[0, 0, 0, *version]),
            Self::SaslMechanisms(list) => list.iter().for_each(|m| m.encode(out)),
            Self::SaslMechanismSelection { mechanism, initial } => {
                mechanism.encode(out);
                out.extend_from_slice(initial);
            }
            Self::SaslResult { code, data, width } => {
                // One byte followed by data could not be told from a 16-bit code,
                // so Result Data always goes with the 16-bit form.
                match (width, data.is_empty()) {
                    (SaslResultWidth::OneByte, true) => out.put_u8(code.to_u16() as u8),
                    _ => out.put_u16(code.to_u16()),
                }
                out.extend_from_slice(data);
            }
            Self::Error {
                vendor,
                code,
                original,
            } => {
                out.put_u8(0);
                out.put_u24(*vendor);
                out.put_u32(*code);
                out.extend_from_slice(&original[..original.len().min(MAX_ERROR_COPY)]);
            }
        }
    }
}

/// One PT-TLS message: identifier and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub identifier: u32,
    pub body: MessageBody<'a>,
}

/// Why a PT-TLS message could not be accepted, as the PT-TLS Error it produces.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PtTlsError {
    /// A header field is invalid or unsupported, such as a Message Length below 16
    /// or above the configured maximum (§3.9, Invalid Parameter).
    #[error("PT-TLS Invalid Parameter: {0}")]
    InvalidParameter(Malformed),
    /// The value failed a sanity check (§3.9, Malformed Message).
    #[error("PT-TLS Malformed Message: {0}")]
    MalformedMessage(Malformed),
    /// The message is not allowed in this phase or from this side (Invalid Message).
    #[error("PT-TLS Invalid Message: {0} not allowed here")]
    InvalidMessage(&'static str),
    /// No common version (Version Not Supported).
    #[error("PT-TLS Version Not Supported: peer offered {min}..={max}")]
    VersionNotSupported { min: u8, max: u8 },
    /// Authentication could not go on (SASL Mechanism Error).
    #[error("PT-TLS SASL Mechanism Error: {0}")]
    SaslMechanism(&'static str),
}

impl PtTlsError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidParameter(_) => ErrorCode::InvalidParameter,
            Self::MalformedMessage(_) => ErrorCode::MalformedMessage,
            Self::InvalidMessage(_) => ErrorCode::InvalidMessage,
            Self::VersionNotSupported { .. } => ErrorCode::VersionNotSupported,
            Self::SaslMechanism(_) => ErrorCode::SaslMechanismError,
        }
    }
}

/// The 16-byte message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor: U24,
    pub message_type: u32,
    /// Total length, header included.
    pub length: u32,
    pub identifier: u32,
}

impl Header {
    /// Reads a header and checks its length against `max_len` (header included).
    /// Nothing is allocated: the caller buffers `length` bytes only after this.
    pub fn read(r: &mut Reader<'_>, max_len: u32) -> Result<Self, PtTlsError> {
        let start = r.offset();
        let cut = |what| {
            PtTlsError::MalformedMessage(Malformed {
                offset: start,
                what,
            })
        };
        let _reserved = r.u8().ok_or(cut("PT-TLS header cut short"))?;
        let vendor = r.u24().ok_or(cut("PT-TLS header cut short"))?;
        let message_type = r.u32().ok_or(cut("PT-TLS header cut short"))?;
        let length = r.u32().ok_or(cut("PT-TLS header cut short"))?;
        let identifier = r.u32().ok_or(cut("PT-TLS header cut short"))?;
        let at_length = Malformed {
            offset: start + 8,
            what: "",
        };
        if (length as usize) < HEADER_LEN {
            return Err(PtTlsError::InvalidParameter(Malformed {
                what: "message length below the 16-byte header",
                ..at_length
            }));
        }
        if length > max_len {
            return Err(PtTlsError::InvalidParameter(Malformed {
                what: "message length above the configured maximum",
                ..at_length
            }));
        }
        Ok(Self {
            vendor,
            message_type,
            length,
            identifier,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(0);
        out.put_u24(self.vendor);
        out.put_u32(self.message_type);
        out.put_u32(self.length);
        out.put_u32(self.identifier);
    }
}

impl<'a> Message<'a> {
    /// Decodes one whole message (header and value) from `bytes`, which must hold
    /// exactly one message. `max_len` bounds the Message Length.
    pub fn decode(bytes: &'a [u8], max_len: u32) -> Result<Self, PtTlsError> {
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r, max_len)?;
        if r.left() != header.length as usize - HEADER_LEN {
            return Err(PtTlsError::InvalidParameter(Malformed {
                offset: 8,
                what: "message length differs from the bytes present",
            }));
        }
        let body = MessageBody::read_value(header.vendor, header.message_type, &mut r)
            .map_err(PtTlsError::MalformedMessage)?;
        Ok(Self {
            identifier: header.identifier,
            body,
        })
    }

    /// Appends the header and value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let (vendor, message_type) = self.body.type_id();
        out.put_u8(0);
        out.put_u24(vendor);
        out.put_u32(message_type);
        let mut out = LengthFromHeader::new(out, start);
        out.put_u32(self.identifier);
        self.body.encode_value(&mut out);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 16);
        self.encode(&mut out);
        out
    }
}

impl<'a> MessageBody<'a> {
    /// Decodes a value of the given type; `r` covers exactly the value.
    pub fn read_value(
        vendor: U24,
        message_type: u32,
        r: &mut Reader<'a>,
    ) -> Result<Self, Malformed> {
        let ietf = if vendor == U24::IETF {
            MessageType::from_u32(message_type)
        } else {
            None
        };
        let Some(t) = ietf else {
            return Ok(Self::Unknown {
                vendor,
                message_type,
                value: r.rest(),
            });
        };
        let body = match t {
            MessageType::Experimental => Self::Experimental(r.rest()),
            MessageType::VersionRequest => {
                let _reserved = r.u8_or("Version Request value must be 4 bytes")?;
                let min = r.u8_or("Version Request value must be 4 bytes")?;
                let max = r.u8_or("Version Request value must be 4 bytes")?;
                let preferred = r.u8_or("Version Request value must be 4 bytes")?;
                Self::VersionRequest {
                    min,
                    max,
                    preferred,
                }
            }
            MessageType::VersionResponse => {
                let _reserved = r.take_or(3, "Version Response value must be 4 bytes")?;
                let version = r.u8_or("Version Response value must be 4 bytes")?;
                Self::VersionResponse { version }
            }
            MessageType::SaslMechanisms => {
                // Each entry takes at least two bytes: the capacity is bounded by the
                // value that is already in memory.
                let mut list = Vec::with_capacity(r.left() / 2);
                while r.any_left() {
                    list.push(Mechanism::read(r)?);
                }
                Self::SaslMechanisms(list)
            }
            MessageType::SaslMechanismSelection => Self::SaslMechanismSelection {
                mechanism: Mechanism::read(r)?,
                initial: r.rest(),
            },
            MessageType::SaslAuthenticationData => Self::SaslAuthenticationData(r.rest()),
            MessageType::SaslResult => {
                let at = r.malformed("undefined SASL result code");
                let (raw, width) = if r.left() == 1 {
                    (
                        u16::from(r.u8_or("SASL Result cut short")?),
                        SaslResultWidth::OneByte,
                    )
                } else {
                    (
                        r.u16_or("SASL Result cut short")?,
                        SaslResultWidth::TwoBytes,
                    )
                };
                let code = SaslResultCode::from_u16(raw).ok_or(at)?;
                let data = r.rest();
                if code != SaslResultCode::Success && !data.is_empty() {
                    return Err(Malformed {
                        offset: at.offset + 2,
                        what: "SASL Result data is only allowed with Success",
                    });
                }
                Self::SaslResult { code, data, width }
            }
            MessageType::PbTncBatch => Self::PbTncBatch(r.rest()),
            MessageType::Error => {
                let _reserved = r.u8_or("PT-TLS Error value cut short")?;
                let vendor = r.u24_or("PT-TLS Error value cut short")?;
                let code = r.u32_or("PT-TLS Error value cut short")?;
                Self::Error {
                    vendor,
                    code,
                    original: r.rest(),
                }
            }
        };
        r.expect_empty("bytes after the message value")?;
        Ok(body)
    }
}

impl<'a> Codec<'a> for Message<'a> {
    type Error = PtTlsError;

    fn encode(&self, out: &mut Vec<u8>) {
        Message::encode(self, out)
    }

    /// Reads one message (header and value) from `r` with the default maximum.
    fn read(r: &mut Reader<'a>) -> Result<Self, PtTlsError> {
        let header = Header::read(&mut r.clone(), DEFAULT_MAX_MESSAGE_LEN)?;
        let length_at = r.offset() + 8;
        let bytes = r
            .take(header.length as usize)
            .ok_or(PtTlsError::InvalidParameter(Malformed {
                offset: length_at,
                what: "message length runs past the bytes present",
            }))?;
        Message::decode(bytes, DEFAULT_MAX_MESSAGE_LEN)
    }
}

/// Builds the PT-TLS Error answering `original` (the offending message's bytes,
/// header first; cut to 1024 bytes).
pub fn error_message<'a>(identifier: u32, code: ErrorCode, original: &'a [u8]) -> Message<'a> {
    Message {
        identifier,
        body: MessageBody::Error {
            vendor: U24::IETF,
            code: code.to_u32(),
            original: &original[..original.len().min(MAX_ERROR_COPY)],
        },
    }
}
