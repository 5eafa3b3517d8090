//! Values PB-TNC and PA-TNC share: assessment results and remediation parameters.
//!
//! PB-Assessment-Result (RFC 5793 §4.6) and the PA-TNC Assessment Result attribute
//! (RFC 5792 §4.2.9) use the same numbers; PB-Remediation-Parameters (RFC 5793 §4.8)
//! and PA-TNC Remediation Instructions (RFC 5792 §4.2.10) the same layout.

use crate::codec::{check_text, put_u32_prefixed, put_u8_prefixed, Malformed, Put, Reader, U24};

wire_enum! {
    /// An assessment result (same values as IF-IMV `TNC_IMV_EVALUATION_RESULT_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum AssessmentResult: u32 as from_u32 / to_u32 {
        Compliant = 0 => "Compliant",
        NonCompliantMinor = 1 => "Non-compliant, minor",
        NonCompliantMajor = 2 => "Non-compliant, major",
        Error = 3 => "Error",
        DontKnow = 4 => "Don't know",
    }
}

impl AssessmentResult {
    /// Reads the 4-byte value; an undefined number is malformed at its offset.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let at = r.malformed("undefined assessment result");
        let v = r.u32_or("assessment result cut short")?;
        Self::from_u32(v).ok_or(at)
    }
}

/// IETF remediation parameter types (RFC 5793 §4.8.1, RFC 5792 §4.2.10).
pub const REMEDIATION_URI: u32 = 1;
pub const REMEDIATION_STRING: u32 = 2;

/// Remediation parameters: what the endpoint's user or software should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remediation<'a> {
    /// IETF type 1: a URI (RFC 3986), the rest of the value.
    Uri(&'a str),
    /// IETF type 2: UTF-8 text and its language tag (may be empty).
    String { text: &'a str, lang: &'a str },
    /// Any other (vendor, type): opaque parameters.
    Other {
        vendor: U24,
        param_type: u32,
        params: &'a [u8],
    },
}

impl<'a> Remediation<'a> {
    /// Reads `Reserved (8) | Vendor (24) | Type (32) | parameters` to the end of `r`.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, Malformed> {
        let _reserved = r.u8_or("remediation parameters cut short")?;
        let vendor = r.u24_or("remediation parameters cut short")?;
        let param_type = r.u32_or("remediation parameters cut short")?;
        if vendor != U24::IETF {
            return Ok(Self::Other {
                vendor,
                param_type,
                params: r.rest(),
            });
        }
        match param_type {
            REMEDIATION_URI => {
                let offset = r.offset();
                let uri = check_text(r.rest(), offset, "remediation URI is not text")?;
                if let Some(i) = uri.bytes().position(|b| !b.is_ascii()) {
                    return Err(Malformed {
                        offset: offset + i,
                        what: "remediation URI is not US-ASCII",
                    });
                }
                Ok(Self::Uri(uri))
            }
            REMEDIATION_STRING => {
                let (text, lang) = read_string_and_lang(r, "remediation string")?;
                r.expect_empty("bytes after the remediation string")?;
                Ok(Self::String { text, lang })
            }
            _ => Ok(Self::Other {
                vendor,
                param_type,
                params: r.rest(),
            }),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(0);
        match *self {
            Self::Uri(uri) => {
                out.put_u24(U24::IETF);
                out.put_u32(REMEDIATION_URI);
                out.extend_from_slice(uri.as_bytes());
            }
            Self::String { text, lang } => {
                out.put_u24(U24::IETF);
                out.put_u32(REMEDIATION_STRING);
                write_string_and_lang(out, text, lang);
            }
            Self::Other {
                vendor,
                param_type,
                params,
            } => {
                out.put_u24(vendor);
                out.put_u32(param_type);
                out.extend_from_slice(params);
            }
        }
    }
}

/// `String Length (32) | String | Lang Code Length (8) | Lang Code`: the layout of
/// PB-Reason-String (RFC 5793 §4.11) and of remediation strings.
pub fn read_string_and_lang<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<(&'a str, &'a str), Malformed> {
    let len_at = r.malformed(what);
    let len = r.u32_or(what)?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > r.left() {
        return Err(len_at);
    }
    let text = r.utf8_or(len, what)?;
    let lang_len = r.u8_or("language code length missing")?;
    let lang_at = r.offset();
    let lang = r.utf8_or(usize::from(lang_len), "language code")?;
    if let Some(i) = lang.bytes().position(|b| !b.is_ascii()) {
        return Err(Malformed {
            offset: lang_at + i,
            what: "language code is not US-ASCII",
        });
    }
    Ok((text, lang))
}

pub fn write_string_and_lang(out: &mut Vec<u8>, text: &str, lang: &str) {
    put_u32_prefixed(out, text.as_bytes());
    put_u8_prefixed(out, lang.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remediation_string_bytes() {
        let r = Remediation::String {
            text: "update",
            lang: "en",
        };
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(
            out,
            [
                0, 0, 0, 0, 0, 0, 0, 2, // reserved, IETF, type 2
                0, 0, 0, 6, b'u', b'p', b'd', b'a', b't', b'e', 2, b'e', b'n'
            ]
        );
        assert_eq!(Remediation::read(&mut Reader::new(&out)), Ok(r));
        for cut in 0..out.len() {
            if cut == 8 {
                continue; // the header alone with type 2 is still cut: checked below
            }
            assert!(
                Remediation::read(&mut Reader::new(&out[..cut])).is_err(),
                "cut {cut}"
            );
        }
        assert!(Remediation::read(&mut Reader::new(&out[..8])).is_err());
    }

    #[test]
    fn remediation_uri_and_nul() {
        let mut out = Vec::new();
        Remediation::Uri("https://remedy.example/x").encode(&mut out);
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            Remediation::read(&mut Reader::new(&out)),
            Ok(Remediation::Uri("https://remedy.example/x"))
        );
        out[10] = 0;
        let err = Remediation::read(&mut Reader::with_base(&out, 20)).unwrap_err();
        assert_eq!(err.offset, 30, "offset names the NUL byte");
    }

    #[test]
    fn assessment_result_values() {
        for v in 0..5 {
            assert_eq!(AssessmentResult::from_u32(v).unwrap().to_u32(), v);
        }
        assert_eq!(AssessmentResult::from_u32(5), None);
        let err = AssessmentResult::read(&mut Reader::with_base(&[0, 0, 0, 9], 4)).unwrap_err();
        assert_eq!(err.offset, 4);
    }
}
