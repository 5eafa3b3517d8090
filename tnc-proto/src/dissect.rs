//! Field-by-field descriptions of raw NEA bytes, for operators debugging interop.
//!
//! [`dissect`] takes a PT-TLS byte stream, a single PB-TNC batch or a single PA-TNC
//! message and returns a tree of [`Node`]s named as the RFCs name the fields, with
//! absolute byte offsets into the input, and the [`Fault`]s found: each with the
//! offset and the protocol error a receiver would answer with. Inner layers are
//! dissected too (batches inside PT-TLS, PA-TNC messages inside PB-PA). SASL PLAIN
//! passwords are never shown.

use crate::codec::{Reader, U24};
use crate::pa_tnc::{self, Attribute, PaDecodeError, PaErrorInfo, PaMessage, RawAttribute};
use crate::pb_tnc::{self, Batch, BatchError, PbErrorParams, PbMessage, BATCH_HEADER_LEN};
use crate::pt_tls::{
    self, sasl::PlainCredentials, ErrorCode, Framer, FramingError, Message, MessageBody, PtTlsError,
};
use core::fmt;

/// Which protocol the input starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A stream of PT-TLS messages (RFC 6876).
    PtTls,
    /// One PB-TNC batch (RFC 5793).
    PbTnc,
    /// One PA-TNC message (RFC 5792).
    PaTnc,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Self::PtTls => "PT-TLS",
            Self::PbTnc => "PB-TNC",
            Self::PaTnc => "PA-TNC",
        }
    }
}

/// One field or structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The RFC's name for the field or structure.
    pub label: String,
    /// Absolute offset of its first byte in the input, where it is known.
    pub offset: Option<usize>,
    pub value: Option<String>,
    pub children: Vec<Node>,
}

impl Node {
    fn new(label: impl Into<String>, offset: Option<usize>, value: Option<String>) -> Self {
        Self {
            label: label.into(),
            offset,
            value,
            children: Vec::new(),
        }
    }

    fn field(label: &str, offset: usize, value: impl fmt::Display) -> Self {
        Self::new(label, Some(offset), Some(value.to_string()))
    }

    fn info(label: &str, value: impl fmt::Display) -> Self {
        Self::new(label, None, Some(value.to_string()))
    }

    fn group(label: impl Into<String>, offset: usize, value: Option<String>) -> Self {
        Self::new(label, Some(offset), value)
    }

    fn push(&mut self, n: Node) -> &mut Self {
        self.children.push(n);
        self
    }
}

/// Something a receiver would refuse, with where and how it would answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub layer: Layer,
    /// Absolute offset in the input.
    pub offset: usize,
    /// The error message the protocol would send, e.g. "PB-TNC Invalid Parameter".
    pub protocol_error: String,
    /// What is wrong, in words.
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {} ({})",
            self.layer.name(),
            self.offset,
            self.detail,
            self.protocol_error
        )
    }
}

/// The result of a dissection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dissection {
    pub nodes: Vec<Node>,
    pub faults: Vec<Fault>,
}

/// The tree as indented text, one field a line with its offset in front.
impl fmt::Display for Dissection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn node(f: &mut fmt::Formatter<'_>, n: &Node, depth: usize) -> fmt::Result {
            match n.offset {
                Some(o) => write!(f, "{o:>7}  ")?,
                None => f.write_str("         ")?,
            }
            let indent = "  ".repeat(depth);
            match &n.value {
                Some(v) if n.children.is_empty() => writeln!(f, "{indent}{}: {v}", n.label)?,
                Some(v) => writeln!(f, "{indent}{} [{v}]", n.label)?,
                None => writeln!(f, "{indent}{}", n.label)?,
            }
            n.children.iter().try_for_each(|c| node(f, c, depth + 1))
        }
        self.nodes.iter().try_for_each(|n| node(f, n, 0))?;
        self.faults
            .iter()
            .try_for_each(|fault| writeln!(f, "MALFORMED: {fault}"))
    }
}

/// Dissects `bytes` as `layer`. `max_message_len` bounds PT-TLS messages.
pub fn dissect(layer: Layer, bytes: &[u8], max_message_len: u32) -> Dissection {
    let mut d = Dissection::default();
    match layer {
        Layer::PtTls => pt_stream(&mut d, bytes, max_message_len),
        Layer::PbTnc => {
            if let Some(n) = batch(&mut d, bytes, 0) {
                d.nodes.push(n);
            }
        }
        Layer::PaTnc => {
            if let Some(n) = pa_message(&mut d, bytes, 0) {
                d.nodes.push(n);
            }
        }
    }
    d
}

fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

fn vendor(v: U24) -> String {
    match v.get() {
        0 => "0 (IETF)".into(),
        0x5597 => "21911 (TCG)".into(),
        other => other.to_string(),
    }
}

fn pt_stream(d: &mut Dissection, bytes: &[u8], max: u32) {
    let mut framer = Framer::new(max);
    framer.push(bytes);
    let mut at = 0;
    loop {
        match framer.next_frame() {
            Ok(Some(frame)) => {
                let n = pt_message(d, &frame, at, max);
                d.nodes.push(n);
                at += frame.len();
            }
            Ok(None) => {
                if framer.buffered() > 0 {
                    d.faults.push(Fault {
                        layer: Layer::PtTls,
                        offset: at,
                        protocol_error: "none (the stream ends inside a message)".into(),
                        detail: format!(
                            "{} bytes of an incomplete message at the end",
                            framer.buffered()
                        ),
                    });
                }
                return;
            }
            Err(FramingError { error, .. }) => {
                pt_fault(d, at, &error);
                return;
            }
        }
    }
}

fn pt_fault(d: &mut Dissection, base: usize, e: &PtTlsError) {
    let offset = match e {
        PtTlsError::InvalidParameter(m) | PtTlsError::MalformedMessage(m) => base + m.offset,
        _ => base,
    };
    d.faults.push(Fault {
        layer: Layer::PtTls,
        offset,
        protocol_error: format!("PT-TLS Error {} ({})", e.code().name(), e.code().to_u32()),
        detail: e.to_string(),
    });
}

fn pt_message(d: &mut Dissection, frame: &[u8], at: usize, max: u32) -> Node {
    let mut r = Reader::new(frame);
    let header = pt_tls::Header::read(&mut r, max);
    let mut node = Node::group("PT-TLS message", at, None);
    if let Ok(h) = &header {
        node.push(Node::field("Reserved", at, frame[0]))
            .push(Node::field(
                "Message Type Vendor ID",
                at + 1,
                vendor(h.vendor),
            ))
            .push(Node::field("Message Type", at + 4, h.message_type))
            .push(Node::field("Message Length", at + 8, h.length))
            .push(Node::field("Message Identifier", at + 12, h.identifier));
    }
    let msg = match Message::decode(frame, max) {
        Ok(m) => m,
        Err(e) => {
            node.value = Some("malformed".into());
            pt_fault(d, at, &e);
            return node;
        }
    };
    node.value = Some(msg.body.name().into());
    let v = at + pt_tls::HEADER_LEN;
    match &msg.body {
        MessageBody::Experimental(b) | MessageBody::Unknown { value: b, .. } => {
            node.push(Node::field("Message Value", v, hex(b)));
        }
        MessageBody::VersionRequest {
            min,
            max,
            preferred,
        } => {
            node.push(Node::field("Min Vers", v + 1, min))
                .push(Node::field("Max Vers", v + 2, max))
                .push(Node::field("Pref Vers", v + 3, preferred));
        }
        MessageBody::VersionResponse { version } => {
            node.push(Node::field("Vers", v + 3, version));
        }
        MessageBody::SaslMechanisms(list) => {
            let names: Vec<_> = list.iter().map(|m| m.as_str()).collect();
            let shown = if names.is_empty() {
                "(none: authentication phase over)".to_string()
            } else {
                names.join(", ")
            };
            node.push(Node::field("Mechanism Names", v, shown));
        }
        MessageBody::SaslMechanismSelection { mechanism, initial } => {
            node.push(Node::field("Mechanism Name", v, mechanism));
            let init_at = v + 1 + mechanism.as_str().len();
            if !initial.is_empty() {
                node.push(sasl_data(
                    "Optional Initial SASL Message",
                    init_at,
                    mechanism.as_str() == "PLAIN",
                    initial,
                ));
            }
        }
        MessageBody::SaslAuthenticationData(data) => {
            // Only PLAIN is spoken here; data that parses as PLAIN is redacted.
            node.push(sasl_data("SASL Authentication Data", v, true, data));
        }
        MessageBody::SaslResult { code, data, width } => {
            let w = match width {
                pt_tls::SaslResultWidth::OneByte => "1 byte, as strongSwan writes it",
                pt_tls::SaslResultWidth::TwoBytes => "2 bytes",
            };
            node.push(Node::field(
                "Result Code",
                v,
                format!("{} ({}) [{w}]", code.to_u16(), code.name()),
            ));
            if !data.is_empty() {
                node.push(Node::info("Result Data", hex(data)));
            }
        }
        MessageBody::PbTncBatch(b) => {
            if let Some(n) = batch(d, b, v) {
                node.push(n);
            }
        }
        MessageBody::Error {
            vendor: ev,
            code,
            original,
        } => {
            let name = if *ev == U24::IETF {
                ErrorCode::from_u32(*code).name()
            } else {
                "vendor-specific"
            };
            node.push(Node::field("Error Code Vendor ID", v + 1, vendor(*ev)))
                .push(Node::field("Error Code", v + 4, format!("{code} ({name})")))
                .push(Node::field(
                    "Copy of Original Message",
                    v + 8,
                    hex(original),
                ));
        }
    }
    node
}

fn sasl_data(label: &str, at: usize, maybe_plain: bool, data: &[u8]) -> Node {
    match PlainCredentials::decode(data) {
        Ok(c) if maybe_plain => {
            let mut n = Node::group(label, at, Some("SASL PLAIN message (RFC 4616)".into()));
            n.push(Node::info(
                "authzid",
                if c.authzid.is_empty() {
                    "(none)"
                } else {
                    &c.authzid
                },
            ))
            .push(Node::info("authcid", &c.authcid))
            .push(Node::info(
                "passwd",
                format!("<redacted, {} bytes>", c.password.expose().len()),
            ));
            n
        }
        _ => Node::field(label, at, hex(data)),
    }
}

fn pb_fault(d: &mut Dissection, base: usize, e: &BatchError) {
    let offset = match e {
        BatchError::InvalidParameter { offset, .. }
        | BatchError::UnsupportedMandatoryMessage { offset, .. } => base + offset,
        _ => base,
    };
    d.faults.push(Fault {
        layer: Layer::PbTnc,
        offset,
        protocol_error: format!(
            "fatal PB-Error {} ({}) in a CLOSE batch",
            e.code().name(),
            e.code().to_u16()
        ),
        detail: e.to_string(),
    });
}

fn batch(d: &mut Dissection, bytes: &[u8], at: usize) -> Option<Node> {
    let decoded = match Batch::decode(bytes) {
        Ok(b) => b,
        Err(e) => {
            pb_fault(d, at, &e);
            let mut n = Node::group("PB-TNC batch", at, Some("malformed".into()));
            if bytes.len() >= BATCH_HEADER_LEN {
                n.push(Node::field("Version", at, bytes[0]))
                    .push(Node::field("D", at + 1, bytes[1] >> 7))
                    .push(Node::field("B-Type", at + 3, bytes[3] & 0x0F))
                    .push(Node::field(
                        "Batch Length",
                        at + 4,
                        u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
                    ));
            }
            return Some(n);
        }
    };
    let mut node = Node::group("PB-TNC batch", at, Some(decoded.batch_type.name().into()));
    node.push(Node::field("Version", at, pb_tnc::VERSION))
        .push(Node::field(
            "D",
            at + 1,
            format!("{} (sent by the {})", bytes[1] >> 7, decoded.sender.name()),
        ))
        .push(Node::field(
            "B-Type",
            at + 3,
            format!(
                "{} ({})",
                decoded.batch_type.to_u8(),
                decoded.batch_type.name()
            ),
        ))
        .push(Node::field("Batch Length", at + 4, bytes.len()));
    // Walk again with a reader to learn where each message starts.
    let mut r = Reader::with_base(&bytes[BATCH_HEADER_LEN..], BATCH_HEADER_LEN);
    while r.any_left() {
        let m_at = r.offset();
        let Ok(m) = PbMessage::read(&mut r) else {
            break;
        };
        node.push(pb_message(d, &m, at + m_at));
    }
    Some(node)
}

fn pb_message(d: &mut Dissection, m: &PbMessage<'_>, at: usize) -> Node {
    let (v_id, t) = m.type_id();
    let mut node = Node::group("PB-TNC message", at, Some(m.name().into()));
    node.push(Node::field("NOSKIP", at, u8::from(m.noskip())))
        .push(Node::field("PB-TNC Vendor ID", at + 1, vendor(v_id)))
        .push(Node::field("PB-TNC Message Type", at + 4, t));
    let v = at + pb_tnc::MESSAGE_HEADER_LEN;
    match m {
        PbMessage::Experimental { value, .. } | PbMessage::Unknown { value, .. } => {
            node.push(Node::field("PB-TNC Message Value", v, hex(value)));
        }
        PbMessage::Pa(pa) => {
            node.push(Node::field("EXCL", v, u8::from(pa.exclusive)))
                .push(Node::field(
                    "PA Message Vendor ID",
                    v + 1,
                    vendor(pa.subtype.vendor),
                ))
                .push(Node::field(
                    "PA Subtype",
                    v + 4,
                    format!("{} ({})", pa.subtype.subtype, pa.subtype.describe()),
                ))
                .push(Node::field(
                    "Posture Collector Identifier",
                    v + 8,
                    id(pa.collector_id),
                ))
                .push(Node::field(
                    "Posture Validator Identifier",
                    v + 10,
                    id(pa.validator_id),
                ));
            if let Some(n) = pa_message(d, pa.body, v + 12) {
                node.push(n);
            }
        }
        PbMessage::AssessmentResult(r) => {
            node.push(Node::field(
                "Assessment Result",
                v,
                format!("{} ({})", r.to_u32(), r.name()),
            ));
        }
        PbMessage::AccessRecommendation(a) => {
            node.push(Node::field(
                "Access Recommendation Code",
                v + 2,
                format!("{} ({})", a.to_u16(), a.name()),
            ));
        }
        PbMessage::RemediationParameters(rp) => {
            remediation(&mut node, v, rp);
        }
        PbMessage::Error(e) => {
            let name = e.ietf_code().map_or("vendor-specific", |c| c.name());
            node.push(Node::field("FATAL", v, u8::from(e.fatal)))
                .push(Node::field("Error Code Vendor ID", v + 1, vendor(e.vendor)))
                .push(Node::field(
                    "Error Code",
                    v + 4,
                    format!("{} ({name})", e.code),
                ));
            let p = v + 8;
            match e.params {
                PbErrorParams::None => {}
                PbErrorParams::Offset(o) => {
                    node.push(Node::field("Offset", p, o));
                }
                PbErrorParams::Version { bad, max, min } => {
                    node.push(Node::field("Bad Version", p, bad))
                        .push(Node::field("Max Version", p + 1, max))
                        .push(Node::field("Min Version", p + 2, min));
                }
                PbErrorParams::Other(b) => {
                    node.push(Node::field("Error Parameters", p, hex(b)));
                }
            }
        }
        PbMessage::LanguagePreference(s) => {
            node.push(Node::field("Language Preference", v, s));
        }
        PbMessage::ReasonString { text, lang } => {
            node.push(Node::field("Reason String", v + 4, text))
                .push(Node::field(
                    "Reason String Language Code",
                    v + 5 + text.len(),
                    lang,
                ));
        }
    }
    node
}

fn id(v: u16) -> String {
    if v == pb_tnc::ID_ANY {
        format!("{v} (any)")
    } else {
        v.to_string()
    }
}

fn remediation(node: &mut Node, v: usize, rp: &crate::common::Remediation<'_>) {
    use crate::common::Remediation;
    match rp {
        Remediation::Uri(u) => {
            node.push(Node::field("Remediation Parameters Type", v + 4, "1 (URI)"))
                .push(Node::field("Remediation URI", v + 8, u));
        }
        Remediation::String { text, lang } => {
            node.push(Node::field(
                "Remediation Parameters Type",
                v + 4,
                "2 (String)",
            ))
            .push(Node::field("Remediation String", v + 12, text))
            .push(Node::field(
                "Remediation String Lang Code",
                v + 13 + text.len(),
                lang,
            ));
        }
        Remediation::Other {
            vendor: rv,
            param_type,
            params,
        } => {
            node.push(Node::field(
                "Remediation Parameters Vendor ID",
                v + 1,
                vendor(*rv),
            ))
            .push(Node::field(
                "Remediation Parameters Type",
                v + 4,
                param_type,
            ))
            .push(Node::field("Remediation Parameters", v + 8, hex(params)));
        }
    }
}

fn pa_fault(d: &mut Dissection, base: usize, e: &PaDecodeError) {
    let offset = match e {
        PaDecodeError::InvalidParameter(m) => base + m.offset,
        PaDecodeError::AttributeTypeNotSupported { offset, .. } => base + offset,
        PaDecodeError::VersionNotSupported { .. } => base,
    };
    d.faults.push(Fault {
        layer: Layer::PaTnc,
        offset,
        protocol_error: format!("PA-TNC Error {} ({})", e.code().name(), e.code().to_u32()),
        detail: e.to_string(),
    });
}

fn pa_message(d: &mut Dissection, bytes: &[u8], at: usize) -> Option<Node> {
    let msg = match PaMessage::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            pa_fault(d, at, &e);
            return Some(Node::group("PA-TNC message", at, Some("malformed".into())));
        }
    };
    let mut node = Node::group("PA-TNC message", at, None);
    node.push(Node::field("Version", at, pa_tnc::VERSION))
        .push(Node::field(
            "Message Identifier",
            at + 4,
            format!("{:#010x}", msg.identifier),
        ));
    for raw in &msg.attributes {
        node.push(pa_attribute(d, raw, at));
    }
    Some(node)
}

/// Names of the TCG attributes that standard peers send alongside the IETF ones
/// (TCG IF-M Segmentation; strongSwan's `tcg_attr.h` uses the same numbers).
fn tcg_attribute_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0x21 => "TCG Segmentation Max Attribute Size Request",
        0x22 => "TCG Segmentation Max Attribute Size Response",
        0x23 => "TCG Segmentation Attribute Segment Envelope",
        0x24 => "TCG Segmentation Next Segment Request",
        0x25 => "TCG Segmentation Cancel Segment Exchange",
        _ => return None,
    })
}

fn pa_attribute(d: &mut Dissection, raw: &RawAttribute<'_>, msg_at: usize) -> Node {
    let at = msg_at + raw.offset;
    let mut node = Node::group("PA-TNC attribute", at, None);
    node.push(Node::field("NOSKIP", at, u8::from(raw.noskip)))
        .push(Node::field(
            "PA-TNC Attribute Vendor ID",
            at + 1,
            vendor(raw.vendor),
        ))
        .push(Node::field("PA-TNC Attribute Type", at + 4, raw.attr_type))
        .push(Node::field(
            "PA-TNC Attribute Length",
            at + 8,
            raw.value.len() + pa_tnc::ATTRIBUTE_HEADER_LEN,
        ));
    let v = at + pa_tnc::ATTRIBUTE_HEADER_LEN;
    let attr = match raw.parse() {
        Ok(a) => a,
        Err(e) => {
            node.value = Some("malformed".into());
            pa_fault(d, msg_at, &e);
            return node;
        }
    };
    node.value = Some(match &attr {
        Attribute::Other { vendor: av, .. } if *av == U24::IETF => {
            pa_tnc::ietf_attribute_name(raw.attr_type).map_or_else(
                || "unassigned IETF attribute".to_string(),
                |n| format!("{n} (opaque)"),
            )
        }
        Attribute::Other { vendor: av, .. } if *av == U24::TCG => tcg_attribute_name(raw.attr_type)
            .map_or_else(|| "TCG attribute".to_string(), |n| format!("{n} (opaque)")),
        a => a.name().to_string(),
    });
    match &attr {
        Attribute::Testing(b) | Attribute::Other { value: b, .. } => {
            node.push(Node::field("Attribute Value", v, hex(b)));
        }
        Attribute::AttributeRequest(ids) => {
            for (i, id) in ids.iter().enumerate() {
                let name = if id.vendor == U24::IETF {
                    pa_tnc::ietf_attribute_name(id.attr_type).unwrap_or("unassigned")
                } else {
                    "vendor-specific"
                };
                node.push(Node::field(
                    "Requested Attribute",
                    v + 8 * i,
                    format!(
                        "vendor {} type {} ({name})",
                        vendor(id.vendor),
                        id.attr_type
                    ),
                ));
            }
        }
        Attribute::ProductInformation(p) => {
            node.push(Node::field("Product Vendor ID", v, vendor(p.vendor)))
                .push(Node::field("Product ID", v + 3, p.product_id))
                .push(Node::field("Product Name", v + 5, p.name));
        }
        Attribute::NumericVersion(n) => {
            node.push(Node::field("Major Version Number", v, n.major))
                .push(Node::field("Minor Version Number", v + 4, n.minor))
                .push(Node::field("Build Number", v + 8, n.build))
                .push(Node::field(
                    "Service Pack Major",
                    v + 12,
                    n.service_pack_major,
                ))
                .push(Node::field(
                    "Service Pack Minor",
                    v + 14,
                    n.service_pack_minor,
                ));
        }
        Attribute::StringVersion(s) => {
            node.push(Node::info("Product Version Number", s.version))
                .push(Node::info("Internal Build Number", s.build))
                .push(Node::info("Configuration Version Number", s.configuration));
        }
        Attribute::OperationalStatus(o) => {
            node.push(Node::field(
                "Status",
                v,
                format!("{} ({})", o.status.to_u8(), o.status.name()),
            ))
            .push(Node::field(
                "Result",
                v + 1,
                format!("{} ({})", o.result.to_u8(), o.result.name()),
            ))
            .push(Node::field("Last Use", v + 4, o.last_use));
        }
        Attribute::PortFilter(entries) => {
            for (i, e) in entries.iter().enumerate() {
                let state = if e.blocked { "blocked" } else { "allowed" };
                node.push(Node::field(
                    "Port Filter Entry",
                    v + 4 * i,
                    format!("protocol {} port {} {state}", e.protocol, e.port),
                ));
            }
        }
        Attribute::InstalledPackages(p) => {
            node.push(Node::field("Package Count", v + 2, p.packages.len()));
            for pkg in &p.packages {
                node.push(Node::info(
                    "Package",
                    format!("{} {}", pkg.name, pkg.version),
                ));
            }
        }
        Attribute::PaTncError(e) => {
            let name = e.ietf_code().map_or("vendor-specific", |c| c.name());
            node.push(Node::field(
                "PA-TNC Error Code Vendor ID",
                v + 1,
                vendor(e.vendor),
            ))
            .push(Node::field(
                "PA-TNC Error Code",
                v + 4,
                format!("{} ({name})", e.code),
            ));
            let i = v + 8;
            match e.info {
                PaErrorInfo::InvalidParameter { header, offset } => {
                    node.push(Node::field("Copy of Message Header", i, hex(&header)))
                        .push(Node::field("Offset", i + 8, offset));
                }
                PaErrorInfo::VersionNotSupported {
                    header,
                    max_version,
                    min_version,
                } => {
                    node.push(Node::field("Copy of Message Header", i, hex(&header)))
                        .push(Node::field("Max Version", i + 8, max_version))
                        .push(Node::field("Min Version", i + 9, min_version));
                }
                PaErrorInfo::AttributeTypeNotSupported {
                    header,
                    flags,
                    vendor: av,
                    attr_type,
                } => {
                    node.push(Node::field("Copy of Message Header", i, hex(&header)))
                        .push(Node::field("Flags", i + 8, format!("{flags:#04x}")))
                        .push(Node::field("Attribute Vendor ID", i + 9, vendor(av)))
                        .push(Node::field("Attribute Type", i + 12, attr_type));
                }
                PaErrorInfo::Swima {
                    request_id,
                    max_allowed_size,
                    description,
                } => {
                    node.push(Node::field("Copy of Request ID", i, request_id));
                    if let Some(m) = max_allowed_size {
                        node.push(Node::field("Maximum Allowed Size", i + 4, m));
                    }
                    node.push(Node::info("Description", description));
                }
                PaErrorInfo::Other(b) => {
                    node.push(Node::field("Error Information", i, hex(b)));
                }
            }
        }
        Attribute::AssessmentResult(r) => {
            node.push(Node::field(
                "Assessment Result",
                v,
                format!("{} ({})", r.to_u32(), r.name()),
            ));
        }
        Attribute::RemediationInstructions(rp) => remediation(&mut node, v, rp),
        Attribute::ForwardingEnabled(f) => {
            node.push(Node::field(
                "Forwarding Enabled",
                v,
                format!("{} ({f:?})", f.to_u32()),
            ));
        }
        Attribute::FactoryDefaultPasswordEnabled(f) => {
            node.push(Node::field(
                "Factory Default Password Enabled",
                v,
                format!("{} ({f:?})", f.to_u32()),
            ));
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb_tnc::{BatchType, Side};

    fn find<'n>(nodes: &'n [Node], label: &str) -> Option<&'n Node> {
        nodes.iter().find_map(|n| {
            if n.label == label {
                Some(n)
            } else {
                find(&n.children, label)
            }
        })
    }

    #[test]
    fn nested_layers_with_absolute_offsets() {
        let pa = pa_tnc::PaMessageWriter::new(7)
            .attribute(
                false,
                &Attribute::ForwardingEnabled(pa_tnc::ForwardingEnabled::Disabled),
            )
            .finish();
        let b = Batch::new(
            Side::Client,
            BatchType::CData,
            vec![PbMessage::Pa(pb_tnc::PbPa {
                exclusive: false,
                subtype: pa_tnc::PaSubtype::OPERATING_SYSTEM,
                collector_id: 1,
                validator_id: pb_tnc::ID_ANY,
                body: &pa,
            })],
        )
        .to_bytes();
        let stream = Message {
            identifier: 3,
            body: MessageBody::PbTncBatch(&b),
        }
        .to_bytes();
        let d = dissect(Layer::PtTls, &stream, 1 << 20);
        assert!(d.faults.is_empty(), "{:?}", d.faults);
        let fwd = find(&d.nodes, "Forwarding Enabled").unwrap();
        // 16 PT-TLS + 8 batch + 12 PB message + 12 PB-PA + 8 PA header + 12 attr header.
        assert_eq!(fwd.offset, Some(68));
        assert_eq!(stream[68..72], [0, 0, 0, 0]);
    }

    #[test]
    fn malformed_inner_attribute_reports_absolute_offset_and_error() {
        // A PA-TNC message with a Forwarding Enabled of value 7 at offset 8+12.
        let mut pa = pa_tnc::PaMessageWriter::new(1)
            .raw(false, U24::IETF, 11, &[0, 0, 0, 7])
            .finish();
        let d = dissect(Layer::PaTnc, &pa, 0);
        assert_eq!(d.faults.len(), 1);
        assert_eq!(d.faults[0].offset, 20);
        assert!(d.faults[0].protocol_error.contains("Invalid Parameter"));
        pa[0] = 9;
        let d = dissect(Layer::PaTnc, &pa, 0);
        assert!(d.faults[0].protocol_error.contains("Version Not Supported"));
    }

    #[test]
    fn framing_error_stops_the_stream() {
        let mut m = Message {
            identifier: 0,
            body: MessageBody::VersionResponse { version: 1 },
        }
        .to_bytes();
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1]);
        let d = dissect(Layer::PtTls, &m, 1 << 20);
        assert_eq!(d.nodes.len(), 1);
        assert_eq!(d.faults[0].offset, 20 + 8);
        assert!(d.faults[0].protocol_error.contains("Invalid Parameter (6)"));
    }

    #[test]
    fn plain_passwords_are_redacted() {
        let m = Message {
            identifier: 1,
            body: MessageBody::SaslMechanismSelection {
                mechanism: pt_tls::Mechanism::PLAIN,
                initial: b"\0alice\0hunter22",
            },
        }
        .to_bytes();
        let d = dissect(Layer::PtTls, &m, 1 << 20);
        let text = format!("{:?}", d.nodes);
        assert!(text.contains("alice"));
        assert!(!text.contains("hunter22"));
    }
}
