//! The network access gateway's framing (docs/gateway.md): the first bytes a
//! terminal sends on a connection to the gateway, and the gateway's one-byte
//! answer. After an admission, the connection carries the terminal's
//! end-to-end channel to the VM (ShangMi TLS) byte for byte.
//!
//! ```text
//! terminal -> gateway   01                     version
//!                       n (u8, 1..=253)        length of the VM's name
//!                       VM name                n bytes: letters, digits, '.', '-', '_'
//!                       m (u32, big-endian)    length of the ticket, 1..=16384
//!                       ticket                 the access ticket (COSE_Sign1)
//! gateway -> terminal   00                     admitted: bytes relayed both ways from here
//!                    or code (1..=9)           refused (see Refusal), then closed
//! ```

/// The framing's version byte.
pub const VERSION: u8 = 1;
/// The ALPN protocol of a terminal's QUIC connection to the gateway (the
/// framing then runs on its first bidirectional stream).
pub const QUIC_ALPN: &[u8] = b"tnc-gateway";
/// The largest ticket accepted.
pub const MAX_TICKET: usize = 16 * 1024;
/// The longest VM name (a DNS name).
pub const MAX_NAME: usize = 253;
/// The most bytes an admission takes.
pub const MAX_ADMISSION: usize = 2 + MAX_NAME + 4 + MAX_TICKET;

/// What a terminal asks the gateway for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The VM to reach, by the name tickets carry.
    pub vm: String,
    pub ticket: Vec<u8>,
}

/// Why the gateway refused a connection: its answer byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum Refusal {
    #[error("the ticket does not verify with the PDP's key, or is malformed")]
    BadTicket = 1,
    #[error("the ticket has expired or is not yet valid")]
    Expired = 2,
    #[error("the ticket does not name that VM")]
    NotForVm = 3,
    #[error("the gateway does not know that VM")]
    UnknownVm = 4,
    #[error("the ticket (or its certificate) has been revoked")]
    Revoked = 5,
    #[error("a connection limit of the gateway is reached (per ticket, per address or in total)")]
    Busy = 6,
    #[error("the gateway cannot reach its PDP and admits nobody (fail closed)")]
    Unavailable = 7,
    #[error("the gateway cannot reach the VM")]
    Unreachable = 8,
    #[error("the first frame is not an admission")]
    Malformed = 9,
}

impl Refusal {
    /// The refusal an answer byte means (an unknown code: malformed).
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::BadTicket,
            2 => Self::Expired,
            3 => Self::NotForVm,
            4 => Self::UnknownVm,
            5 => Self::Revoked,
            6 => Self::Busy,
            7 => Self::Unavailable,
            8 => Self::Unreachable,
            _ => Self::Malformed,
        }
    }
}

/// Whether `name` is a VM name the framing carries.
pub fn valid_vm_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl Admission {
    /// The frame; None when the name or ticket cannot be carried.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if !valid_vm_name(&self.vm) || self.ticket.is_empty() || self.ticket.len() > MAX_TICKET {
            return None;
        }
        let mut out = Vec::with_capacity(6 + self.vm.len() + self.ticket.len());
        out.push(VERSION);
        out.push(self.vm.len() as u8);
        out.extend_from_slice(self.vm.as_bytes());
        out.extend_from_slice(&(self.ticket.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ticket);
        Some(out)
    }

    /// An admission at the start of `buf`: Ok(None) while more bytes are
    /// needed, else the admission and the bytes it took (anything after
    /// them is the channel's). An error as soon as the bytes cannot be one.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Refusal> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(Refusal::Malformed);
        }
        let Some(&n) = buf.get(1) else {
            return Ok(None);
        };
        let n = usize::from(n);
        if n == 0 {
            return Err(Refusal::Malformed);
        }
        let Some(name) = buf.get(2..2 + n) else {
            return Ok(None);
        };
        let vm = std::str::from_utf8(name)
            .ok()
            .filter(|v| valid_vm_name(v))
            .ok_or(Refusal::Malformed)?;
        let Some(len) = buf.get(2 + n..6 + n) else {
            return Ok(None);
        };
        let m = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if m == 0 || m > MAX_TICKET {
            return Err(Refusal::Malformed);
        }
        let Some(ticket) = buf.get(6 + n..6 + n + m) else {
            return Ok(None);
        };
        Ok(Some((
            Self {
                vm: vm.to_string(),
                ticket: ticket.to_vec(),
            },
            6 + n + m,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Admission {
        Admission {
            vm: "vm-1".into(),
            ticket: vec![0xd2, 0x84, 1, 2, 3],
        }
    }

    #[test]
    fn the_frame_is_as_documented_and_parses_back() {
        let bytes = sample().encode().unwrap();
        assert_eq!(
            bytes,
            [1, 4, b'v', b'm', b'-', b'1', 0, 0, 0, 5, 0xd2, 0x84, 1, 2, 3]
        );
        for cut in 0..bytes.len() {
            assert_eq!(Admission::parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let mut more = bytes.clone();
        more.extend_from_slice(b"TLS");
        assert_eq!(Admission::parse(&more), Ok(Some((sample(), bytes.len()))));
    }

    #[test]
    fn what_cannot_be_an_admission_is_refused_at_once() {
        assert_eq!(Admission::parse(&[2]), Err(Refusal::Malformed));
        assert_eq!(Admission::parse(&[1, 0]), Err(Refusal::Malformed));
        assert_eq!(
            Admission::parse(&[1, 2, b'a', b'/']),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            Admission::parse(&[1, 1, b'a', 0, 0, 0, 0]),
            Err(Refusal::Malformed)
        );
        let too_long = ((MAX_TICKET + 1) as u32).to_be_bytes();
        assert_eq!(
            Admission::parse(&[
                1,
                1,
                b'a',
                too_long[0],
                too_long[1],
                too_long[2],
                too_long[3]
            ]),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            Admission {
                vm: "a b".into(),
                ticket: vec![1]
            }
            .encode(),
            None
        );
        for code in 1..=9u8 {
            assert_eq!(Refusal::from_code(code) as u8, code);
        }
        assert_eq!(Refusal::from_code(0xff), Refusal::Malformed);
    }
}
