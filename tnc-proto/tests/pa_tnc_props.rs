//! Property tests for PA-TNC: arbitrary messages of typed IETF attributes encode
//! and decode to themselves; arbitrary bytes never panic the decoders; every
//! truncation inside an attribute is refused.

use proptest::prelude::*;
use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::pa_tnc::{
    Attribute, AttributeId, FactoryDefaultPassword, ForwardingEnabled, InstalledPackages,
    NumericVersion, OperationalResult, OperationalState, OperationalStatus, PaMessage,
    PaMessageWriter, Package, PortFilterEntry, ProductInformation, StringVersion,
};
use tnc_proto::U24;

/// Owned inputs from which a typed attribute is borrowed.
#[derive(Clone, Debug)]
enum Spec {
    Testing(Vec<u8>),
    Request(Vec<(u32, u32)>),
    Product(u32, u16, String),
    Numeric([u32; 3], [u16; 2]),
    StringVersion(String, String, String),
    Operational(u8, u8, String),
    PortFilter(Vec<(bool, u8, u16)>),
    Packages(Vec<(String, String)>),
    Assessment(u32),
    RemediationUri(String),
    RemediationString(String, String),
    Forwarding(u32),
    DefaultPassword(bool),
    Vendor(u32, u32, Vec<u8>),
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 .:_+~é-]{{0,{max}}}")).unwrap()
}

fn last_use() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"))
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Spec::Testing),
        proptest::collection::vec((0u32..0xFF_FFFF, 0u32..0xFFFF_FFFE), 0..8)
            .prop_map(Spec::Request),
        (0u32..0xFF_FFFF, any::<u16>(), text(40)).prop_map(|(v, p, n)| Spec::Product(v, p, n)),
        (any::<[u32; 3]>(), any::<[u16; 2]>()).prop_map(|(a, b)| Spec::Numeric(a, b)),
        (text(30), text(30), text(30)).prop_map(|(a, b, c)| Spec::StringVersion(a, b, c)),
        (0u8..4, 0u8..4, last_use()).prop_map(|(s, r, t)| Spec::Operational(s, r, t)),
        proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u16>()), 0..8)
            .prop_map(Spec::PortFilter),
        proptest::collection::vec((text(20), text(20)), 0..12).prop_map(Spec::Packages),
        (0u32..5).prop_map(Spec::Assessment),
        proptest::string::string_regex("[a-z]{1,8}://[a-z0-9./]{0,40}")
            .unwrap()
            .prop_map(Spec::RemediationUri),
        (
            text(60),
            proptest::string::string_regex("[a-z]{0,3}").unwrap()
        )
            .prop_map(|(t, l)| Spec::RemediationString(t, l)),
        (0u32..3).prop_map(Spec::Forwarding),
        any::<bool>().prop_map(Spec::DefaultPassword),
        (
            1u32..0xFF_FFFF,
            0u32..0xFFFF_FFFE,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(v, t, b)| Spec::Vendor(v, t, b)),
    ]
}

fn build(s: &Spec) -> Attribute<'_> {
    match s {
        Spec::Testing(b) => Attribute::Testing(b),
        Spec::Request(ids) => Attribute::AttributeRequest(
            ids.iter()
                .map(|&(v, t)| AttributeId {
                    vendor: U24::truncate(v),
                    attr_type: t,
                })
                .collect(),
        ),
        Spec::Product(v, p, n) => Attribute::ProductInformation(ProductInformation {
            vendor: U24::truncate(*v),
            product_id: *p,
            name: n,
        }),
        Spec::Numeric([a, b, c], [d, e]) => Attribute::NumericVersion(NumericVersion {
            major: *a,
            minor: *b,
            build: *c,
            service_pack_major: *d,
            service_pack_minor: *e,
        }),
        Spec::StringVersion(a, b, c) => {
            Attribute::StringVersion(StringVersion::new(a, b, c).unwrap())
        }
        Spec::Operational(s, r, t) => Attribute::OperationalStatus(
            OperationalStatus::new(
                OperationalState::from_u8(*s).unwrap(),
                OperationalResult::from_u8(*r).unwrap(),
                t,
            )
            .unwrap(),
        ),
        Spec::PortFilter(e) => Attribute::PortFilter(
            e.iter()
                .map(|&(blocked, protocol, port)| PortFilterEntry {
                    blocked,
                    protocol,
                    port,
                })
                .collect(),
        ),
        Spec::Packages(p) => Attribute::InstalledPackages(
            InstalledPackages::new(p.iter().map(|(n, v)| Package::new(n, v).unwrap()).collect())
                .unwrap(),
        ),
        Spec::Assessment(r) => Attribute::AssessmentResult(AssessmentResult::from_u32(*r).unwrap()),
        Spec::RemediationUri(u) => Attribute::RemediationInstructions(Remediation::Uri(u)),
        Spec::RemediationString(t, l) => {
            Attribute::RemediationInstructions(Remediation::String { text: t, lang: l })
        }
        Spec::Forwarding(f) => {
            Attribute::ForwardingEnabled(ForwardingEnabled::from_u32(*f).unwrap())
        }
        Spec::DefaultPassword(b) => Attribute::FactoryDefaultPasswordEnabled(if *b {
            FactoryDefaultPassword::Enabled
        } else {
            FactoryDefaultPassword::Disabled
        }),
        Spec::Vendor(v, t, b) => Attribute::Other {
            vendor: U24::truncate(*v),
            attr_type: *t,
            value: b,
        },
    }
}

proptest! {
    #[test]
    fn messages_round_trip(id in any::<u32>(), specs in proptest::collection::vec((spec(), any::<bool>()), 0..10)) {
        let attrs: Vec<_> = specs.iter().map(|(s, noskip)| (build(s), *noskip)).collect();
        let bytes = attrs
            .iter()
            .fold(PaMessageWriter::new(id), |w, (a, noskip)| w.attribute(*noskip, a))
            .finish();
        let msg = PaMessage::decode(&bytes).unwrap();
        prop_assert_eq!(msg.identifier, id);
        prop_assert_eq!(msg.attributes.len(), attrs.len());
        for (raw, (attr, noskip)) in msg.attributes.iter().zip(&attrs) {
            prop_assert_eq!(raw.noskip, *noskip);
            prop_assert_eq!(&raw.parse().unwrap(), attr);
        }
        let mut again = Vec::new();
        msg.encode(&mut again);
        prop_assert_eq!(again, bytes);
    }

    /// Cutting an attribute anywhere inside it is refused: the length field no
    /// longer fits, or the value is short.
    #[test]
    fn truncated_attribute_is_refused(s in spec(), cut in any::<proptest::sample::Index>()) {
        let bytes = PaMessageWriter::new(1).attribute(false, &build(&s)).finish();
        let cut = 8 + 1 + cut.index(bytes.len() - 9);
        prop_assume!(cut < bytes.len());
        prop_assert!(PaMessage::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = PaMessage::decode(&bytes) {
            let _ = m.check_supported(|v, _| v == U24::IETF);
            for a in &m.attributes {
                if let Ok(t) = a.parse() {
                    // Reserved bits are not kept, so compare typed values, not bytes.
                    let again = PaMessageWriter::new(0).attribute(a.noskip, &t).finish();
                    let m2 = PaMessage::decode(&again).unwrap();
                    prop_assert_eq!(m2.attributes[0].parse().unwrap(), t);
                }
            }
        } else if let Err(e) = PaMessage::decode(&bytes) {
            let _ = e.to_error(&bytes);
        }
    }
}
