//! The CBOR values of the project's PA-TNC attributes (the attestation and
//! credential pairs): one map each, read whole, bounded.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CborError {
    TooLong(usize),
    Cbor(String),
    Trailing(usize),
}

/// One CBOR value filling `value`, at most `max` bytes.
pub(crate) fn decode<T: DeserializeOwned>(value: &[u8], max: usize) -> Result<T, CborError> {
    if value.len() > max {
        return Err(CborError::TooLong(value.len()));
    }
    let mut rest = value;
    let v = ciborium::de::from_reader(&mut rest).map_err(|e| CborError::Cbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CborError::Trailing(rest.len()));
    }
    Ok(v)
}

/// The CBOR encoding of `v`.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing plain structs to a Vec cannot fail.
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}

/// An attribute of the project's vendor ID whose value is one CBOR map (the
/// attestation and credential pairs).
pub trait VendorAttribute {
    fn attr_type(&self) -> u32;
    fn encode_value(&self) -> Vec<u8>;
}

/// A PA-TNC message (identifier `id`) carrying `attrs`, each NOSKIP, of
/// the project's vendor ID.
pub fn vendor_message<A: VendorAttribute>(id: u32, attrs: &[A]) -> Vec<u8> {
    attrs
        .iter()
        .fold(crate::pa_tnc::PaMessageWriter::new(id), |w, a| {
            w.raw(
                true,
                crate::attestation::VENDOR,
                a.attr_type(),
                &a.encode_value(),
            )
        })
        .finish()
}
