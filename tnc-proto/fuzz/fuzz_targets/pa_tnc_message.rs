//! PA-TNC (RFC 5792): the message codec and the typed IETF attributes.
//!
//! The input is one PA-TNC message (the body of a PB-PA message).
//!
//! Properties:
//! - a decoded message re-encodes to the same length and decodes to the same
//!   attributes (flag bits other than NOSKIP are reserved and written as zero);
//! - every attribute that parses encodes back to a value that parses the same;
//! - every error offset lies within the message, and every error can be answered:
//!   `to_error` builds a PA-TNC Error attribute that encodes and parses back equal;
//! - `check_supported` names the first unsupported NOSKIP attribute.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::pa_tnc::{
    ietf_attr, ietf_attribute_name, Attribute, PaDecodeError, PaMessage, RawAttribute,
    ATTRIBUTE_HEADER_LEN, FLAG_NOSKIP,
};
use tnc_proto::{Reader, U24};

fuzz_target!(|data: &[u8]| {
    let message = match PaMessage::decode(data) {
        Ok(m) => m,
        Err(e) => {
            answer(&e, data);
            return;
        }
    };
    round_trip_message(&message, data);

    // What a recipient supports: vary it so that both outcomes are reached.
    let choice = data.last().copied().unwrap_or(0) % 3;
    let supported = |vendor: U24, attr_type: u32| match choice {
        0 => vendor == U24::IETF && ietf_attribute_name(attr_type).is_some(),
        1 => vendor == U24::IETF,
        _ => false,
    };
    match message.check_supported(supported) {
        Ok(()) => assert!(message
            .attributes
            .iter()
            .all(|a| !a.noskip || supported(a.vendor, a.attr_type))),
        Err(e) => {
            let PaDecodeError::AttributeTypeNotSupported { offset, .. } = e else {
                panic!("check_supported returned {e:?}");
            };
            let first = message
                .attributes
                .iter()
                .find(|a| a.noskip && !supported(a.vendor, a.attr_type))
                .expect("an unsupported NOSKIP attribute exists");
            assert_eq!(offset, first.offset);
            answer(&e, data);
        }
    }

    for raw in &message.attributes {
        assert!(raw.value_offset() + raw.value.len() <= data.len());
        match raw.parse() {
            Ok(attribute) => round_trip_attribute(raw, &attribute),
            Err(e) => answer(&e, data),
        }
    }
});

fn round_trip_message(message: &PaMessage<'_>, data: &[u8]) {
    let mut again = Vec::new();
    message.encode(&mut again);
    assert_eq!(again.len(), data.len(), "re-encoding changed the length");
    let redecoded = match PaMessage::decode(&again) {
        Ok(m) => m,
        Err(e) => panic!("re-encoding does not decode: {e}"),
    };
    assert_eq!(redecoded.reserved, message.reserved);
    assert_eq!(redecoded.identifier, message.identifier);
    assert_eq!(redecoded.attributes.len(), message.attributes.len());
    for (b, a) in redecoded.attributes.iter().zip(&message.attributes) {
        let normalised = RawAttribute {
            flags: a.flags & FLAG_NOSKIP,
            ..*a
        };
        assert_eq!(*b, normalised);
    }
}

fn round_trip_attribute<'a>(raw: &RawAttribute<'a>, attribute: &Attribute<'a>) {
    assert_eq!(attribute.id(), (raw.vendor, raw.attr_type));
    let mut value = Vec::new();
    attribute.encode_value(&mut value);
    let again = RawAttribute {
        value: &value,
        ..*raw
    };
    match again.parse() {
        Ok(a) => assert_eq!(&a, attribute),
        Err(e) => panic!("re-encoding of {attribute:?} does not parse: {e}"),
    }
    // With the header: the same bytes once more, framed.
    let mut whole = Vec::new();
    attribute.encode(&mut whole, raw.noskip);
    assert_eq!(whole.len(), ATTRIBUTE_HEADER_LEN + value.len());
    let mut r = Reader::new(&whole);
    match RawAttribute::read(&mut r) {
        Ok(framed) => {
            assert_eq!(framed.value, &value[..]);
            assert_eq!((framed.vendor, framed.attr_type), attribute.id());
            assert_eq!(framed.noskip, raw.noskip);
        }
        Err(e) => panic!("encoded attribute does not frame: {e}"),
    }
    assert!(!r.any_left());
}

/// A receiver answers every refused message with a PA-TNC Error (§4.2.8).
fn answer(e: &PaDecodeError, message: &[u8]) {
    if let PaDecodeError::InvalidParameter(m) = e {
        assert!(
            m.offset <= message.len(),
            "offset {} beyond a {}-byte message",
            m.offset,
            message.len()
        );
    }
    let error = Attribute::PaTncError(e.to_error(message));
    let mut value = Vec::new();
    error.encode_value(&mut value);
    let raw = RawAttribute {
        noskip: true,
        flags: FLAG_NOSKIP,
        vendor: U24::IETF,
        attr_type: ietf_attr::PA_TNC_ERROR,
        value: &value,
        offset: 8,
    };
    match raw.parse() {
        Ok(parsed) => assert_eq!(parsed, error),
        Err(err) => panic!("our PA-TNC Error {error:?} does not parse: {err}"),
    }
}
