//! The SASL PLAIN mechanism (RFC 4616), as carried in PT-TLS.
//!
//! `message = [authzid] NUL authcid NUL passwd`, each part UTF-8 without NUL and at
//! most 255 octets. Written by hand: it is twenty lines, and the SASL crates on
//! crates.io bring I/O and mechanisms this transport does not use.

use core::fmt;
use thiserror::Error;

/// Longest part RFC 4616 §2 allows.
pub const MAX_PART_LEN: usize = 255;

/// A password held so that `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The three parts of a PLAIN message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Authorization identity; empty means "the same as `authcid`".
    pub authzid: String,
    /// Authentication identity: the user name.
    pub authcid: String,
    pub password: Password,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PlainError {
    #[error("PLAIN message needs exactly two NUL separators")]
    Separators,
    #[error("PLAIN {0} is empty")]
    Empty(&'static str),
    #[error("PLAIN {0} is longer than 255 octets")]
    TooLong(&'static str),
    #[error("PLAIN {0} is not UTF-8")]
    NotUtf8(&'static str),
}

impl PlainCredentials {
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            authzid: String::new(),
            authcid: user.to_owned(),
            password: Password::new(password),
        }
    }

    /// Encodes the message; fails if a part breaks RFC 4616's rules.
    pub fn encode(&self) -> Result<Vec<u8>, PlainError> {
        for (part, what) in [
            (&self.authzid, "authzid"),
            (&self.authcid, "authcid"),
            (&self.password.0, "password"),
        ] {
            if part.len() > MAX_PART_LEN {
                return Err(PlainError::TooLong(what));
            }
            if part.contains('\0') {
                return Err(PlainError::Separators);
            }
        }
        if self.authcid.is_empty() {
            return Err(PlainError::Empty("authcid"));
        }
        if self.password.0.is_empty() {
            return Err(PlainError::Empty("password"));
        }
        let mut out =
            Vec::with_capacity(self.authzid.len() + self.authcid.len() + self.password.0.len() + 2);
        out.extend_from_slice(self.authzid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.authcid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.0.as_bytes());
        Ok(out)
    }

    /// Decodes a message received from a client.
    pub fn decode(message: &[u8]) -> Result<Self, PlainError> {
        let mut parts = message.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PlainError::Separators);
        };
        let text = |bytes: &[u8], what| -> Result<String, PlainError> {
            if bytes.len() > MAX_PART_LEN {
                return Err(PlainError::TooLong(what));
            }
            String::from_utf8(bytes.to_vec()).map_err(|_| PlainError::NotUtf8(what))
        };
        let creds = Self {
            authzid: text(authzid, "authzid")?,
            authcid: text(authcid, "authcid")?,
            password: Password(text(password, "password")?),
        };
        if creds.authcid.is_empty() {
            return Err(PlainError::Empty("authcid"));
        }
        if creds.password.0.is_empty() {
            return Err(PlainError::Empty("password"));
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4616_example_bytes() {
        // RFC 4616 §4: "\0tim\0tanstaaftanstaaf" and "Ursel\0Kurt\0xipj3plmq".
        let c = PlainCredentials::decode(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!((c.authzid.as_str(), c.authcid.as_str()), ("", "tim"));
        assert_eq!(c.password.expose(), "tanstaaftanstaaf");
        assert_eq!(c.encode().unwrap(), b"\0tim\0tanstaaftanstaaf");
        let c = PlainCredentials::decode(b"Ursel\0Kurt\0xipj3plmq").unwrap();
        assert_eq!(c.authzid, "Ursel");
        assert!(
            !format!("{c:?}").contains("xipj3plmq"),
            "Debug must not print the password"
        );
    }

    #[test]
    fn refuses_bad_messages() {
        assert_eq!(
            PlainCredentials::decode(b"tim\0pw"),
            Err(PlainError::Separators)
        );
        assert_eq!(
            PlainCredentials::decode(b"\0tim\0pw\0"),
            Err(PlainError::Separators)
        );
        assert_eq!(
            PlainCredentials::decode(b"\0\0pw"),
            Err(PlainError::Empty("authcid"))
        );
        assert_eq!(
            PlainCredentials::decode(b"\0tim\0"),
            Err(PlainError::Empty("password"))
        );
        assert_eq!(
            PlainCredentials::decode(b"\0\xff\0pw"),
            Err(PlainError::NotUtf8("authcid"))
        );
        let long = [b"\0".as_slice(), &[b'a'; 256], b"\0pw"].concat();
        assert_eq!(
            PlainCredentials::decode(&long),
            Err(PlainError::TooLong("authcid"))
        );
        assert_eq!(
            PlainCredentials::new("u\0x", "p").encode(),
            Err(PlainError::Separators)
        );
    }
}
