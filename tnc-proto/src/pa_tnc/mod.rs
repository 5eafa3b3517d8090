//! PA-TNC (RFC 5792): the posture attribute protocol carried in PB-PA messages.
//!
//! A PA-TNC message is an 8-byte header and a sequence of attributes, each with a
//! 12-byte header. [`PaMessage::decode`] splits a message into [`RawAttribute`]s that
//! borrow their values; [`RawAttribute::parse`] turns an IETF attribute into its typed
//! form ([`Attribute`]). Offsets in errors count from the first byte of the PA-TNC
//! message, as strongSwan reports them (RFC 5792 §4.2.8, Invalid Parameter).

mod attributes;

pub use attributes::*;

use crate::codec::{read_to_end, Codec, LengthFromHeader, Malformed, Put, Reader, U24};
use thiserror::Error;

/// PA-TNC version 1, the only one defined (RFC 5792 §3.6).
pub const VERSION: u8 = 1;
/// Message header length.
pub const MESSAGE_HEADER_LEN: usize = 8;
/// Attribute header length; the attribute Length field includes it.
pub const ATTRIBUTE_HEADER_LEN: usize = 12;
/// Attribute flag: the recipient must understand the attribute (RFC 5792 §4.1).
pub const FLAG_NOSKIP: u8 = 0x80;
/// The reserved attribute type (RFC 5792 §4.1, §6).
pub const RESERVED_TYPE: u32 = 0xFFFF_FFFF;

wire_enum! {
    /// A PA subtype in the IETF namespace (IANA "PA Subtypes"; RFC 5792 §7.2, RFC 8412 §9).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum IetfSubtype: u32 as from_u32 / to_u32, Unknown {
        Testing = 0 => "Testing",
        OperatingSystem = 1 => "Operating System",
        AntiVirus = 2 => "Anti-Virus",
        AntiSpyware = 3 => "Anti-Spyware",
        AntiMalware = 4 => "Anti-Malware",
        Firewall = 5 => "Firewall",
        Idps = 6 => "IDPS",
        Vpn = 7 => "VPN",
        NeaClient = 8 => "NEA Client",
        /// Software Inventory Message and Attributes (RFC 8412).
        Swima = 9 => "SWIMA",
    }
}

/// A component type: PA Message Vendor ID and PA Subtype of the enclosing PB-PA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PaSubtype {
    pub vendor: U24,
    pub subtype: u32,
}

impl PaSubtype {
    pub const fn ietf(subtype: u32) -> Self {
        Self {
            vendor: U24::IETF,
            subtype,
        }
    }

    pub const OPERATING_SYSTEM: PaSubtype = PaSubtype::ietf(1);
    pub const SWIMA: PaSubtype = PaSubtype::ietf(9);

    /// A readable name such as "IETF/Operating System" or "vendor 32473/1".
    pub fn describe(&self) -> String {
        if self.vendor == U24::IETF {
            format!("IETF/{}", IetfSubtype::from_u32(self.subtype).name())
        } else if self.vendor == U24::TCG {
            let name = match self.subtype {
                1 => "PTS",
                2 => "SCAP",
                3 => "SWID",
                _ => "unassigned",
            };
            format!("TCG/{name}")
        } else {
            format!("vendor {}/{}", self.vendor, self.subtype)
        }
    }
}

/// Why a PA-TNC message was refused, in RFC 5792 §4.2.8 terms: each variant is one
/// IETF PA-TNC Error code, and [`PaDecodeError::to_error`] builds the PA-TNC Error
/// attribute to send back.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PaDecodeError {
    /// Code 1. `offset` counts from the start of the PA-TNC message.
    #[error("PA-TNC Invalid Parameter: {0}")]
    InvalidParameter(Malformed),
    /// Code 2: the message header named a version other than 1.
    #[error("PA-TNC Version Not Supported: version {version}")]
    VersionNotSupported { version: u8 },
    /// Code 3: an attribute marked NOSKIP that the recipient does not support. Holds
    /// the first 8 bytes of that attribute's header (flags, vendor, type).
    #[error("PA-TNC Attribute Type Not Supported: vendor {vendor} type {attr_type} (NOSKIP)")]
    AttributeTypeNotSupported {
        flags: u8,
        vendor: U24,
        attr_type: u32,
        /// Offset of the attribute header in the message.
        offset: usize,
    },
}

impl From<Malformed> for PaDecodeError {
    fn from(m: Malformed) -> Self {
        Self::InvalidParameter(m)
    }
}

impl PaDecodeError {
    pub fn code(&self) -> PaErrorCode {
        match self {
            Self::InvalidParameter(_) => PaErrorCode::InvalidParameter,
            Self::VersionNotSupported { .. } => PaErrorCode::VersionNotSupported,
            Self::AttributeTypeNotSupported { .. } => PaErrorCode::AttributeTypeNotSupported,
        }
    }

    /// The PA-TNC Error attribute value answering the message whose first bytes are
    /// `message` (RFC 5792 §4.2.8: the error information starts with a copy of the
    /// erroneous message's 8-byte header). A message shorter than 8 bytes is copied
    /// padded with zeros.
    pub fn to_error(&self, message: &[u8]) -> PaTncError<'static> {
        let mut header = [0u8; MESSAGE_HEADER_LEN];
        let n = message.len().min(MESSAGE_HEADER_LEN);
        header[..n].copy_from_slice(&message[..n]);
        let info = match *self {
            Self::InvalidParameter(m) => PaErrorInfo::InvalidParameter {
                header,
                offset: u32::try_from(m.offset).unwrap_or(u32::MAX),
            },
            Self::VersionNotSupported { .. } => PaErrorInfo::VersionNotSupported {
                header,
                max_version: VERSION,
                min_version: VERSION,
            },
            Self::AttributeTypeNotSupported {
                flags,
                vendor,
                attr_type,
                ..
            } => PaErrorInfo::AttributeTypeNotSupported {
                header,
                flags,
                vendor,
                attr_type,
            },
        };
        PaTncError {
            vendor: U24::IETF,
            code: self.code().to_u32(),
            info,
        }
    }
}

/// One attribute as it sits on the wire: header fields and a borrowed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub noskip: bool,
    /// All eight flag bits as received (bits 1-7 are reserved, kept for errors).
    pub flags: u8,
    pub vendor: U24,
    pub attr_type: u32,
    pub value: &'a [u8],
    /// Offset of the attribute header within the PA-TNC message.
    pub offset: usize,
}

impl<'a> RawAttribute<'a> {
    /// Offset of the value within the PA-TNC message.
    pub fn value_offset(&self) -> usize {
        self.offset + ATTRIBUTE_HEADER_LEN
    }

    /// A reader over the value that reports offsets from the message start.
    pub fn value_reader(&self) -> Reader<'a> {
        Reader::with_base(self.value, self.value_offset())
    }

    /// The typed form of an IETF standard attribute, or [`Attribute::Other`] for
    /// any other (vendor, type).
    pub fn parse(&self) -> Result<Attribute<'a>, PaDecodeError> {
        Attribute::parse(self)
    }

    /// Reads one attribute header and value.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, PaDecodeError> {
        let offset = r.offset();
        let flags = r.u8_or("attribute header cut short")?;
        let vendor = r.u24_or("attribute header cut short")?;
        let attr_type = r.u32_or("attribute header cut short")?;
        let length_at = r.malformed("attribute length");
        let length = r.u32_or("attribute header cut short")?;
        if vendor == U24::MAX {
            return Err(Malformed {
                offset: offset + 1,
                what: "reserved attribute vendor ID 0xFFFFFF",
            }
            .into());
        }
        if attr_type == RESERVED_TYPE {
            return Err(Malformed {
                offset: offset + 4,
                what: "reserved attribute type 0xFFFFFFFF",
            }
            .into());
        }
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length < ATTRIBUTE_HEADER_LEN {
            return Err(Malformed {
                what: "attribute length below the 12-byte header",
                ..length_at
            }
            .into());
        }
        let value = r.take(length - ATTRIBUTE_HEADER_LEN).ok_or(Malformed {
            what: "attribute length runs past the end of the message",
            ..length_at
        })?;
        Ok(Self {
            noskip: flags & FLAG_NOSKIP != 0,
            flags,
            vendor,
            attr_type,
            value,
            offset,
        })
    }

    /// Writes an attribute header and `value`.
    pub fn write(out: &mut Vec<u8>, noskip: bool, vendor: U24, attr_type: u32, value: &[u8]) {
        write_attribute(out, noskip, vendor, attr_type, |out| {
            out.extend_from_slice(value)
        });
    }
}

/// Writes an attribute header, lets `body` append the value, then patches the length.
pub fn write_attribute(
    out: &mut Vec<u8>,
    noskip: bool,
    vendor: U24,
    attr_type: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.put_u8(if noskip { FLAG_NOSKIP } else { 0 });
    out.put_u24(vendor);
    out.put_u32(attr_type);
    body(&mut LengthFromHeader::new(out, start));
}

/// A decoded PA-TNC message: header fields and attributes borrowing their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaMessage<'a> {
    /// The 24 reserved header bits as received; echoed in error information.
    pub reserved: U24,
    pub identifier: u32,
    pub attributes: Vec<RawAttribute<'a>>,
}

impl<'a> PaMessage<'a> {
    /// Decodes a whole PA-TNC message (the body of one PB-PA message).
    ///
    /// Checks the header and the framing of every attribute. It does not look
    /// inside attribute values: call [`PaMessage::check_supported`] and
    /// [`RawAttribute::parse`] for that.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, PaDecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8_or("PA-TNC message header cut short")?;
        if version != VERSION {
            return Err(PaDecodeError::VersionNotSupported { version });
        }
        let reserved = r.u24_or("PA-TNC message header cut short")?;
        let identifier = r.u32_or("PA-TNC message header cut short")?;
        let attributes = read_to_end::<RawAttribute<'_>>(&mut r, ATTRIBUTE_HEADER_LEN)?;
        Ok(Self {
            reserved,
            identifier,
            attributes,
        })
    }

    /// RFC 5792 §4.1: if any attribute marked NOSKIP is not supported, no attribute
    /// of the message may be processed and the recipient answers with Attribute Type
    /// Not Supported naming the first such attribute.
    pub fn check_supported(
        &self,
        supported: impl Fn(U24, u32) -> bool,
    ) -> Result<(), PaDecodeError> {
        match self
            .attributes
            .iter()
            .find(|a| a.noskip && !supported(a.vendor, a.attr_type))
        {
            Some(a) => Err(PaDecodeError::AttributeTypeNotSupported {
                flags: a.flags,
                vendor: a.vendor,
                attr_type: a.attr_type,
                offset: a.offset,
            }),
            None => Ok(()),
        }
    }

    /// Encodes a message from already-encoded attributes (see [`PaMessageWriter`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(VERSION);
        out.put_u24(self.reserved);
        out.put_u32(self.identifier);
        for a in &self.attributes {
            Codec::encode(a, out);
        }
    }
}

/// Builds a PA-TNC message attribute by attribute, without intermediate copies.
#[derive(Debug)]
pub struct PaMessageWriter {
    buf: Vec<u8>,
}

impl PaMessageWriter {
    pub fn new(identifier: u32) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.put_u8(VERSION);
        buf.put_u24(U24::IETF);
        buf.put_u32(identifier);
        Self { buf }
    }

    /// Appends a typed attribute.
    pub fn attribute(mut self, noskip: bool, attribute: &Attribute<'_>) -> Self {
        attribute.encode(&mut self.buf, noskip);
        self
    }

    /// Appends a raw attribute (a vendor attribute with an opaque body).
    pub fn raw(mut self, noskip: bool, vendor: U24, attr_type: u32, value: &[u8]) -> Self {
        RawAttribute::write(&mut self.buf, noskip, vendor, attr_type, value);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

impl<'a> Codec<'a> for RawAttribute<'a> {
    type Error = PaDecodeError;

    fn encode(&self, out: &mut Vec<u8>) {
        RawAttribute::write(out, self.noskip, self.vendor, self.attr_type, self.value)
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, PaDecodeError> {
        RawAttribute::read(r)
    }
}

impl<'a> Codec<'a> for PaMessage<'a> {
    type Error = PaDecodeError;

    fn encode(&self, out: &mut Vec<u8>) {
        PaMessage::encode(self, out)
    }

    /// Reads to the end of `r`: a PA-TNC message has no length of its own.
    fn read(r: &mut Reader<'a>) -> Result<Self, PaDecodeError> {
        PaMessage::decode(r.rest())
    }
}
