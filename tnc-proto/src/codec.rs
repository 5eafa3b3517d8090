//! The one codec discipline every wire format of this crate follows.
//!
//! Modelled on rustls' `msgs/codec.rs`: a [`Reader`] over a borrowed slice, a
//! [`Codec`] trait with `encode` and `read`, explicit integer widths (a distinct
//! [`U24`] for SMI Private Enterprise Numbers) and length fields patched after the
//! body is written. All integers on these wires are unsigned and big-endian.
//!
//! A `Reader` knows the absolute offset of its first byte within the outermost
//! buffer it was cut from, because the NEA protocols report errors by offset: a
//! PB-TNC Invalid Parameter names a byte offset from the start of the batch
//! (RFC 5793 §4.9.1) and a PA-TNC Invalid Parameter one from the start of the PA-TNC
//! message (RFC 5792 §4.2.8).

use core::fmt;

/// A wire enum written once, as rustls' `enum_builder!` does: the variants
/// with their codes and RFC names give the enum, `ALL`, the decoder, the
/// encoder and `name`.
///
/// `enum T: u16 as from_u16 / to_u16 { .. }` is closed: an unassigned code
/// decodes to `None` (the caller answers it with the protocol's error).
/// `enum T: u16 as from_u16 / to_u16, Unknown { .. }` is open: an unassigned
/// code is data, `Unknown(code)`, kept for unassigned codes only.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $ty:ty as $from:ident / $to:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every assigned value, in code order.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The value of `code`, or `None` if it is unassigned.
            pub fn $from(code: $ty) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )+
                    _ => None,
                }
            }

            pub fn $to(self) -> $ty {
                match self {
                    $( Self::$variant => $code, )+
                }
            }

            /// The name the RFC gives the value.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $ty:ty as $from:ident / $to:ident, Unknown {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A code no RFC assigns (kept as data).
            Unknown($ty),
        }

        impl $name {
            pub fn $from(code: $ty) -> Self {
                match code {
                    $( $code => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }

            pub fn $to(self) -> $ty {
                match self {
                    $( Self::$variant => $code, )+
                    Self::Unknown(code) => code,
                }
            }

            /// The name the RFC gives the value ("unassigned" for `Unknown`).
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Unknown(_) => "unassigned",
                }
            }
        }
    };
}

/// A 24-bit unsigned integer, as used for vendor IDs (SMI Private Enterprise
/// Numbers) in all three NEA protocols.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct U24(u32);

impl U24 {
    /// The largest value, 0xFFFFFF. As a vendor ID it is reserved in PB-TNC and
    /// PA-TNC (RFC 5793 §4.2, RFC 5792 §4.1).
    pub const MAX: U24 = U24(0x00FF_FFFF);
    /// Vendor ID 0: the IETF namespace.
    pub const IETF: U24 = U24(0);
    /// The Trusted Computing Group's PEN (0x005597).
    pub const TCG: U24 = U24(0x0000_5597);

    /// Returns `None` when `value` does not fit in 24 bits.
    pub const fn new(value: u32) -> Option<Self> {
        if value > Self::MAX.0 {
            None
        } else {
            Some(Self(value))
        }
    }

    /// Keeps the low 24 bits of `value`.
    pub const fn truncate(value: u32) -> Self {
        Self(value & Self::MAX.0)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for U24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for U24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<U24> for u32 {
    fn from(v: U24) -> u32 {
        v.0
    }
}

/// A cursor over a borrowed byte slice. Nothing read through it is copied.
///
/// Every accessor returns `None` when fewer bytes are left than asked for, so a
/// caller checks a length against what is left before it allocates or slices.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the outermost buffer, for error offsets.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    /// A reader whose first byte sits at absolute offset `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Absolute offset of the next unread byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not yet read.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn any_left(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The next `n` bytes, or `None` if fewer are left (nothing is consumed then).
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.left() {
            return None;
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Some(s)
    }

    /// A reader over the next `n` bytes that keeps absolute offsets.
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        let base = self.offset();
        self.take(n).map(|buf| Reader::with_base(buf, base))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// The next `n` bytes without consuming them.
    pub fn peek(&self, n: usize) -> Option<&'a [u8]> {
        self.buf.get(self.pos..self.pos.checked_add(n)?)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u24(&mut self) -> Option<U24> {
        self.take(3)
            .map(|b| U24(u32::from_be_bytes([0, b[0], b[1], b[2]])))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A field that failed a check: where it starts (absolute offset) and what it is.
///
/// Layer-neutral: PB-TNC turns it into a PB-Error Invalid Parameter, PA-TNC into a
/// PA-TNC Error Invalid Parameter, PT-TLS into a Malformed Message error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.what, self.offset)
    }
}

impl<'a> Reader<'a> {
    /// `Malformed` at the current offset.
    pub fn malformed(&self, what: &'static str) -> Malformed {
        Malformed {
            offset: self.offset(),
            what,
        }
    }

    /// Like [`Reader::take`], naming the field when it is cut short.
    pub fn take_or(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        let m = self.malformed(what);
        self.take(n).ok_or(m)
    }

    pub fn sub_or(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, Malformed> {
        let m = self.malformed(what);
        self.sub(n).ok_or(m)
    }

    pub fn u8_or(&mut self, what: &'static str) -> Result<u8, Malformed> {
        let m = self.malformed(what);
        self.u8().ok_or(m)
    }

    pub fn u16_or(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let m = self.malformed(what);
        self.u16().ok_or(m)
    }

    pub fn u24_or(&mut self, what: &'static str) -> Result<U24, Malformed> {
        let m = self.malformed(what);
        self.u24().ok_or(m)
    }

    pub fn u32_or(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let m = self.malformed(what);
        self.u32().ok_or(m)
    }

    /// Fails unless every byte was read.
    pub fn expect_empty(&self, what: &'static str) -> Result<(), Malformed> {
        if self.any_left() {
            Err(self.malformed(what))
        } else {
            Ok(())
        }
    }

    /// `n` bytes of UTF-8 text (RFC 5792 and RFC 5793 strings carry no NUL).
    pub fn utf8_or(&mut self, n: usize, what: &'static str) -> Result<&'a str, Malformed> {
        let start = self.malformed(what);
        let bytes = self.take(n).ok_or(start)?;
        check_text(bytes, start.offset, what)
    }
}

/// Checks that `bytes` (at absolute `offset`) are UTF-8 without NUL, naming the
/// offending byte's offset otherwise.
pub fn check_text<'a>(
    bytes: &'a [u8],
    offset: usize,
    what: &'static str,
) -> Result<&'a str, Malformed> {
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Err(Malformed {
            offset: offset + i,
            what,
        });
    }
    core::str::from_utf8(bytes).map_err(|e| Malformed {
        offset: offset + e.valid_up_to(),
        what,
    })
}

/// Appends big-endian integers to an output buffer.
pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u24(&mut self, v: U24);
    fn put_u32(&mut self, v: u32);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u24(&mut self, v: U24) {
        self.extend_from_slice(&v.0.to_be_bytes()[1..]);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
}

/// A u32 length field that counts every byte from the start of its header,
/// as the PT-TLS message, PB-TNC batch and message, and PA-TNC attribute
/// headers all do. The field is written as a placeholder when this is made
/// and patched when it is dropped (rustls' `LengthPrefixedBuffer`), so no
/// encoder can forget it; in between it is the output buffer.
#[derive(Debug)]
pub struct LengthFromHeader<'a> {
    buf: &'a mut Vec<u8>,
    header_start: usize,
    field_at: usize,
}

impl<'a> LengthFromHeader<'a> {
    /// Writes the placeholder at the end of `buf`; the header began at
    /// `header_start`.
    pub fn new(buf: &'a mut Vec<u8>, header_start: usize) -> Self {
        let field_at = buf.len();
        buf.put_u32(0);
        Self {
            buf,
            header_start,
            field_at,
        }
    }
}

impl core::ops::Deref for LengthFromHeader<'_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        self.buf
    }
}

impl core::ops::DerefMut for LengthFromHeader<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        self.buf
    }
}

impl Drop for LengthFromHeader<'_> {
    fn drop(&mut self) {
        // Lengths above u32::MAX cannot be produced by this crate's encoders:
        // every container is bounded by a u32 length field checked on the way
        // in, and outgoing bodies are at most what a caller fits in memory.
        // Saturate rather than wrap so an oversized message is refused by the
        // peer, never misframed.
        let len = u32::try_from(self.buf.len() - self.header_start).unwrap_or(u32::MAX);
        self.buf[self.field_at..self.field_at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// A wire type with one encoding.
pub trait Codec<'a>: Sized {
    /// The decode error, in the protocol's own terms.
    type Error;

    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes one value from `r`, borrowing from its buffer.
    fn read(r: &mut Reader<'a>) -> Result<Self, Self::Error>;

    /// The encoding of `self` as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Reads `T`s to the end of `r`: the messages of a PB-TNC batch, the
/// attributes of a PA-TNC message. Each takes at least `min_len` bytes (its
/// header), which bounds the capacity: what a peer declares never makes this
/// allocate more than `r` holds.
pub fn read_to_end<'a, T: Codec<'a>>(
    r: &mut Reader<'a>,
    min_len: usize,
) -> Result<Vec<T>, T::Error> {
    let mut out = Vec::with_capacity(r.left() / min_len.max(1));
    while r.any_left() {
        out.push(T::read(r)?);
    }
    Ok(out)
}

/// Writes `u8 length || bytes`, the short strings of PT-TLS SASL names and PA-TNC
/// String Version and Installed Packages. Bytes beyond 255 are cut: callers check
/// lengths when they build a message (see each type's `new`).
pub(crate) fn put_u8_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len().min(usize::from(u8::MAX));
    out.put_u8(n as u8);
    out.extend_from_slice(&bytes[..n]);
}

/// Writes `u32 length || bytes`.
pub(crate) fn put_u32_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_tracks_absolute_offsets() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let mut r = Reader::with_base(&bytes, 100);
        assert_eq!(r.u8(), Some(1));
        let mut sub = r.sub(4).unwrap();
        assert_eq!(sub.offset(), 101);
        assert_eq!(sub.u24(), Some(U24::truncate(0x020304)));
        assert_eq!(sub.offset(), 104);
        assert_eq!(sub.u16(), None, "one byte left, two asked");
        assert_eq!(sub.left(), 1, "a failed read consumes nothing");
        assert_eq!(r.offset(), 105);
        assert_eq!(r.rest(), &[6, 7, 8]);
        assert!(!r.any_left());
        assert_eq!(r.take(1), None);
    }

    #[test]
    fn u24_bounds() {
        assert_eq!(U24::new(0x1_000_000), None);
        assert_eq!(U24::new(0xFF_FFFF), Some(U24::MAX));
        let mut v = Vec::new();
        v.put_u24(U24::truncate(0x12_3456));
        assert_eq!(v, [0x12, 0x34, 0x56]);
    }

    #[test]
    fn length_patch_counts_from_start() {
        let mut v = vec![0xAA];
        let start = v.len();
        {
            let mut body = LengthFromHeader::new(&mut v, start);
            body.extend_from_slice(b"xyz");
        }
        assert_eq!(v, [0xAA, 0, 0, 0, 7, b'x', b'y', b'z']);
    }

    #[test]
    fn length_counts_the_header_fields_before_it() {
        let mut v = vec![0xEE];
        let start = v.len();
        v.put_u8(1);
        v.put_u24(U24::truncate(2));
        {
            let mut body = LengthFromHeader::new(&mut v, start);
            body.put_u32(9);
            let mut nested = LengthFromHeader::new(&mut body, 5 + 4);
            nested.put_u8(7);
        }
        // Outer: 17 bytes from its header at 1; nested: 9 from its at 9.
        assert_eq!(
            v,
            [0xEE, 1, 0, 0, 2, 0, 0, 0, 17, 0, 0, 0, 9, 0, 0, 0, 9, 7]
        );
    }

    wire_enum! {
        /// A closed test enum.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Closed: u16 as from_u16 / to_u16 {
            One = 1 => "one",
            Three = 3 => "three",
        }
    }

    wire_enum! {
        /// An open test enum.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Open: u8 as from_u8 / to_u8, Unknown {
            Zero = 0 => "zero",
        }
    }

    #[test]
    fn wire_enums_round_trip_and_keep_unassigned_codes_apart() {
        assert_eq!(Closed::ALL, [Closed::One, Closed::Three]);
        for v in Closed::ALL {
            assert_eq!(Closed::from_u16(v.to_u16()), Some(v));
        }
        assert_eq!(Closed::from_u16(2), None);
        assert_eq!(Closed::from_u16(0xFFFF), None);
        assert_eq!(Closed::Three.name(), "three");
        assert_eq!(Open::from_u8(0), Open::Zero);
        for code in 1..=u8::MAX {
            assert_eq!(Open::from_u8(code), Open::Unknown(code));
            assert_eq!(Open::from_u8(code).to_u8(), code);
        }
        assert_eq!(Open::Unknown(9).name(), "unassigned");
    }
}
