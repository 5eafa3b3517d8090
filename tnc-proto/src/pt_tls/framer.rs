//! Cutting the TLS plaintext stream into PT-TLS messages (RFC 6876 §3.5).

use super::{Header, PtTlsError, HEADER_LEN};
use crate::codec::Reader;

/// Accepts the stream in chunks of any size (a header split across chunks, several
/// messages in one) and yields whole messages, header included, in order.
///
/// A header is checked as soon as its 16 bytes are in: a Message Length below 16
/// or above the maximum is refused before any of the value is waited for, so a
/// peer cannot make the framer hold more than the maximum plus one chunk. After an
/// error the framer yields that error forever: PT-TLS has no way to resynchronise.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`; consumed bytes are dropped in
    /// bulk so that many small messages in one chunk cost no quadratic moves.
    start: usize,
    max_len: u32,
    failed: Option<FramingError>,
}

/// A header that could not be accepted, with the header bytes for the copy that
/// the PT-TLS Error carries (§3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramingError {
    pub error: PtTlsError,
    pub header: [u8; HEADER_LEN],
}

impl Framer {
    /// `max_len` bounds a whole message, header included.
    pub fn new(max_len: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len,
            failed: None,
        }
    }

    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Changes the bound for the messages not yet read (a connection raises
    /// it once negotiation is over).
    pub fn set_max_len(&mut self, max_len: u32) {
        self.max_len = max_len;
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message (header and value), or `None` until more bytes come.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        if pending.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = match Header::read(&mut Reader::new(pending), self.max_len) {
            Ok(h) => h,
            Err(error) => {
                let mut copy = [0u8; HEADER_LEN];
                copy.copy_from_slice(&pending[..HEADER_LEN]);
                let e = FramingError {
                    error,
                    header: copy,
                };
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                return Err(e);
            }
        };
        let len = header.length as usize;
        if pending.len() < len {
            return Ok(None);
        }
        let frame = pending[..len].to_vec();
        self.start += len;
        if self.start == self.buf.len() {
            // All consumed: the buffer is given back, so an idle session
            // holds none (thousands of kept sessions wait between rounds;
            // one allocation per read while busy costs little).
            self.buf = Vec::new();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pt_tls::{ErrorCode, Message, MessageBody};

    fn version_request(id: u32) -> Vec<u8> {
        Message {
            identifier: id,
            body: MessageBody::VersionRequest {
                min: 1,
                max: 1,
                preferred: 1,
            },
        }
        .to_bytes()
    }

    #[test]
    fn any_chunking_yields_the_same_messages() {
        let mut stream = Vec::new();
        for id in 0..5 {
            stream.extend(version_request(id));
        }
        stream.extend(
            Message {
                identifier: 5,
                body: MessageBody::PbTncBatch(&[2, 0, 0, 1, 0, 0, 0, 8]),
            }
            .to_bytes(),
        );
        for chunk in [1, 2, 3, 7, 15, 16, 17, 19, 20, 21, 64, stream.len()] {
            let mut f = Framer::new(1024);
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c);
                while let Some(frame) = f.next_frame().unwrap() {
                    got.extend(frame);
                }
            }
            assert_eq!(got, stream, "chunk size {chunk}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn an_idle_framer_holds_no_buffer() {
        // What thousands of kept sessions hold between rounds.
        let mut f = Framer::new(1 << 20);
        let big = Message {
            identifier: 1,
            body: MessageBody::PbTncBatch(&[7; 3000]),
        }
        .to_bytes();
        for chunk in [big.len(), 100, 16] {
            for c in big.chunks(chunk) {
                f.push(c);
            }
            assert_eq!(f.next_frame().unwrap().as_deref(), Some(&big[..]));
            assert_eq!(f.buffered(), 0);
            assert_eq!(
                f.buf.capacity(),
                0,
                "chunks of {chunk}: the buffer is given back"
            );
        }
        // A partial message is kept, of course.
        f.push(&big[..20]);
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.buffered(), 20);
    }

    #[test]
    fn oversized_length_is_refused_from_the_header_alone() {
        let mut f = Framer::new(64);
        let mut header = version_request(9);
        header[8..12].copy_from_slice(&65u32.to_be_bytes());
        f.push(&header[..16]);
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.error.code(), ErrorCode::InvalidParameter);
        assert_eq!(
            &e.header[12..16],
            &9u32.to_be_bytes(),
            "copy keeps the identifier"
        );
        // Poisoned: more bytes change nothing.
        f.push(&[0; 100]);
        assert!(f.next_frame().is_err());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn length_below_header_is_invalid_parameter_not_wraparound() {
        for len in [0u32, 1, 15] {
            let mut f = Framer::new(1 << 20);
            let mut m = version_request(1);
            m[8..12].copy_from_slice(&len.to_be_bytes());
            f.push(&m);
            let e = f.next_frame().unwrap_err();
            assert_eq!(e.error.code(), ErrorCode::InvalidParameter, "length {len}");
        }
        // Exactly 16 is an empty value: legal framing.
        let mut f = Framer::new(1 << 20);
        let mut m = version_request(1);
        m.truncate(16);
        m[8..12].copy_from_slice(&16u32.to_be_bytes());
        f.push(&m);
        assert_eq!(f.next_frame().unwrap().unwrap().len(), 16);
    }
}
