//! The sans-IO PT-TLS endpoints: negotiation (RFC 6876 §3.7, §3.8) and transport.
//!
//! Each endpoint takes the TLS plaintext it received ([`ClientConnection::receive`]),
//! queues the bytes to send ([`ClientConnection::take_output`]) and reports what
//! happened as [`Event`]s. The caller owns the socket, the TLS session and the clock.
//!
//! Flow (§3.3): the client sends a Version Request; the server answers with a
//! Version Response and SASL Mechanisms (empty when it wants no SASL). With PLAIN
//! the client selects it with the credentials as initial response, the server asks
//! its caller to check them ([`Event::Authenticate`]), sends a SASL Result and a
//! final empty SASL Mechanisms. Then both sides exchange PB-TNC batches.

use super::sasl::PlainCredentials;
use super::{
    error_message, ErrorCode, Framer, Mechanism, Message, MessageBody, MessageType, PtTlsError,
    SaslResultCode, SaslResultWidth, DEFAULT_MAX_MESSAGE_LEN, HEADER_LEN, VERSION,
};
use crate::codec::U24;
use std::collections::VecDeque;

/// What an endpoint reports to its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Both sides agreed on PT-TLS version 1.
    VersionNegotiated(u8),
    /// Server only: a client presented PLAIN credentials. Answer with
    /// [`ServerConnection::authentication_result`].
    Authenticate(PlainCredentials),
    /// SASL authentication succeeded (client: the server said so).
    Authenticated,
    /// SASL authentication failed with this result code.
    AuthenticationFailed(SaslResultCode),
    /// The negotiation phase is over: PB-TNC batches may flow.
    Ready,
    /// A PB-TNC batch from the peer (the batch bytes, without the PT-TLS header).
    Batch(Vec<u8>),
    /// The peer sent a message type we do not know; it was answered with a
    /// non-fatal Type Not Supported error and ignored.
    UnsupportedType { vendor: U24, message_type: u32 },
    /// The peer sent a PT-TLS Error. Not answered (§3.9). If fatal, a
    /// [`Event::Closed`] follows.
    PeerError {
        vendor: U24,
        code: ErrorCode,
        original: Vec<u8>,
    },
    /// The session is over: flush the output, then close TLS.
    Closed(CloseReason),
}

/// Why a PT-TLS session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// We sent a fatal PT-TLS Error for this.
    LocalError(PtTlsError),
    /// The peer sent a fatal PT-TLS Error.
    PeerError(ErrorCode),
    /// The caller closed the session.
    Local,
}

/// Settings shared by both sides.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message accepted, header included.
    pub max_message_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

/// Returned when a batch is offered before the negotiation phase is over or after
/// the session closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("PT-TLS session is not in the data transport phase")]
pub struct NotReady;

/// The parts both sides share: framing, message numbering, output and events.
/// The largest message accepted before the data transport phase: version
/// and SASL messages are small, and an unauthenticated peer must not make
/// the other side buffer a whole batch's worth (an Error's copy of at most
/// 1024 bytes fits).
pub const NEGOTIATION_MAX_MESSAGE_LEN: u32 = 8 * 1024;

#[derive(Debug)]
struct Endpoint {
    framer: Framer,
    /// The bound once negotiation is over ([`Limits::max_message_len`]).
    data_max_len: u32,
    /// Identifier of the next message we send: a counter from 0, as strongSwan
    /// numbers them (§3.5 asks only for uniqueness within the session).
    next_id: u32,
    out: Vec<u8>,
    events: VecDeque<Event>,
    closed: bool,
}

impl Endpoint {
    fn new(limits: &Limits) -> Self {
        Self {
            framer: Framer::new(limits.max_message_len.min(NEGOTIATION_MAX_MESSAGE_LEN)),
            data_max_len: limits.max_message_len,
            next_id: 0,
            out: Vec::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    fn send(&mut self, body: MessageBody<'_>) {
        let m = Message {
            identifier: self.next_id,
            body,
        };
        self.next_id = self.next_id.wrapping_add(1);
        m.encode(&mut self.out);
    }

    /// Sends a PT-TLS Error for `original`; a fatal one ends the session.
    fn fail(&mut self, error: PtTlsError, original: &[u8]) {
        let code = error.code();
        let m = error_message(self.next_id, code, original);
        self.next_id = self.next_id.wrapping_add(1);
        m.encode(&mut self.out);
        if code.is_fatal() {
            self.closed = true;
            self.events
                .push_back(Event::Closed(CloseReason::LocalError(error)));
        }
    }

    /// The next whole frame, with framing errors answered.
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.closed {
            return None;
        }
        match self.framer.next_frame() {
            Ok(frame) => frame,
            Err(e) => {
                self.fail(e.error, &e.header);
                None
            }
        }
    }

    /// Decodes a frame and deals with what is the same on both sides: errors from
    /// the peer, unknown types, Experimental. Returns the message to handle, if any.
    fn triage<'f>(&mut self, frame: &'f [u8]) -> Option<Message<'f>> {
        let msg = match Message::decode(frame, self.framer.max_len()) {
            Ok(m) => m,
            Err(e) => {
                self.fail(e, frame);
                return None;
            }
        };
        match msg.body {
            MessageBody::Error {
                vendor,
                code,
                original,
            } => {
                let code = ErrorCode::from_u32(code);
                self.events.push_back(Event::PeerError {
                    vendor,
                    code,
                    original: original.to_vec(),
                });
                // Vendor-defined codes are not ours to judge; end the session on
                // them too, as strongSwan ends on any error.
                if vendor != U24::IETF || code.is_fatal() {
                    self.closed = true;
                    self.events
                        .push_back(Event::Closed(CloseReason::PeerError(code)));
                }
                None
            }
            MessageBody::Unknown {
                vendor,
                message_type,
                ..
            } => {
                self.events.push_back(Event::UnsupportedType {
                    vendor,
                    message_type,
                });
                let m = error_message(self.next_id, ErrorCode::TypeNotSupported, frame);
                self.next_id = self.next_id.wrapping_add(1);
                m.encode(&mut self.out);
                None
            }
            // §3.6: a receiver answers Experimental with Invalid Message.
            MessageBody::Experimental(_) => {
                self.fail(PtTlsError::InvalidMessage("Experimental"), frame);
                None
            }
            _ => Some(msg),
        }
    }

    fn unexpected(&mut self, frame: &[u8], msg: &Message<'_>) {
        let name = match msg.body.type_id() {
            (v, t) if v == U24::IETF => MessageType::from_u32(t).map_or("message", |t| t.name()),
            _ => "message",
        };
        self.fail(PtTlsError::InvalidMessage(name), frame);
    }

    fn deliver_batch(&mut self, mut frame: Vec<u8>) {
        frame.drain(..HEADER_LEN);
        self.events.push_back(Event::Batch(frame));
    }

    fn send_batch(&mut self, ready: bool, batch: &[u8]) -> Result<(), NotReady> {
        if !ready || self.closed {
            return Err(NotReady);
        }
        self.send(MessageBody::PbTncBatch(batch));
        Ok(())
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(Event::Closed(CloseReason::Local));
        }
    }
}

macro_rules! endpoint_io {
    () => {
        /// Feeds bytes received from the TLS session (any chunking).
        pub fn receive(&mut self, bytes: &[u8]) {
            if self.ep.closed {
                return;
            }
            self.ep.framer.push(bytes);
            while let Some(frame) = self.ep.next_frame() {
                self.handle(frame);
            }
        }

        /// Bytes to write to the TLS session, in order.
        pub fn take_output(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.ep.out)
        }

        /// Whether output is waiting.
        pub fn wants_write(&self) -> bool {
            !self.ep.out.is_empty()
        }

        pub fn poll_event(&mut self) -> Option<Event> {
            let event = self.ep.events.pop_front();
            if event.is_none() && self.ep.events.capacity() > 0 {
                // Drained: an idle kept session holds no queue.
                self.ep.events = VecDeque::new();
            }
            event
        }

        /// The session ended: no more input is processed.
        /// Bytes received that do not yet form a whole message (what a
        /// slow peer makes the receiver hold).
        pub fn buffered(&self) -> usize {
            self.ep.framer.buffered()
        }

        pub fn is_closed(&self) -> bool {
            self.ep.closed
        }

        /// Ends the session from our side (no message is sent: PT-TLS closes by
        /// closing TLS; PB-TNC says goodbye with a CLOSE batch first).
        pub fn close(&mut self) {
            self.ep.close()
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    AwaitVersion,
    AwaitMechanisms,
    AwaitResult,
    Data,
}

/// The NEA Client (TLS client) side.
#[derive(Debug)]
pub struct ClientConnection {
    ep: Endpoint,
    state: ClientState,
    credentials: Option<PlainCredentials>,
    /// Set after a failed attempt: re-offered mechanisms are then declined, since
    /// the client has no other credentials to try.
    failed: bool,
}

impl ClientConnection {
    /// Starts a session; the Version Request is queued at once. With credentials
    /// the client authenticates with PLAIN when the server offers it.
    pub fn new(limits: Limits, credentials: Option<PlainCredentials>) -> Self {
        let mut ep = Endpoint::new(&limits);
        ep.send(MessageBody::VersionRequest {
            min: VERSION,
            max: VERSION,
            preferred: VERSION,
        });
        Self {
            ep,
            state: ClientState::AwaitVersion,
            credentials,
            failed: false,
        }
    }

    endpoint_io!();

    /// Queues a PB-TNC batch; only in the data transport phase.
    pub fn send_batch(&mut self, batch: &[u8]) -> Result<(), NotReady> {
        self.ep.send_batch(self.state == ClientState::Data, batch)
    }

    pub fn is_ready(&self) -> bool {
        self.state == ClientState::Data && !self.ep.closed
    }

    fn handle(&mut self, frame: Vec<u8>) {
        let Some(msg) = self.ep.triage(&frame) else {
            return;
        };
        match (self.state, &msg.body) {
            (ClientState::AwaitVersion, MessageBody::VersionResponse { version }) => {
                if *version != VERSION {
                    let e = PtTlsError::VersionNotSupported {
                        min: *version,
                        max: *version,
                    };
                    self.ep.fail(e, &frame);
                    return;
                }
                self.ep.events.push_back(Event::VersionNegotiated(*version));
                self.state = ClientState::AwaitMechanisms;
            }
            (ClientState::AwaitMechanisms, MessageBody::SaslMechanisms(list)) => {
                if list.is_empty() {
                    self.state = ClientState::Data;
                    self.ep.framer.set_max_len(self.ep.data_max_len);
                    self.ep.events.push_back(Event::Ready);
                    return;
                }
                let plain_offered = list.contains(&Mechanism::PLAIN);
                let initial = match (&self.credentials, plain_offered, self.failed) {
                    (Some(c), true, false) => c.encode(),
                    _ => {
                        let why = if self.failed {
                            "authentication failed and no other credentials are configured"
                        } else if self.credentials.is_none() {
                            "the server requires SASL and no credentials are configured"
                        } else {
                            "the server offers no mechanism this client supports (PLAIN)"
                        };
                        self.ep.fail(PtTlsError::SaslMechanism(why), &frame);
                        return;
                    }
                };
                match initial {
                    Ok(initial) => {
                        self.ep.send(MessageBody::SaslMechanismSelection {
                            mechanism: Mechanism::PLAIN,
                            initial: &initial,
                        });
                        self.state = ClientState::AwaitResult;
                    }
                    Err(_) => self.ep.fail(
                        PtTlsError::SaslMechanism("credentials do not fit SASL PLAIN"),
                        &frame,
                    ),
                }
            }
            (ClientState::AwaitResult, MessageBody::SaslAuthenticationData(challenge)) => {
                // RFC 4616: a server that ignored the initial response sends an
                // empty challenge; answer it with the message again.
                match (
                    challenge.is_empty(),
                    self.credentials.as_ref().map(|c| c.encode()),
                ) {
                    (true, Some(Ok(response))) => {
                        self.ep.send(MessageBody::SaslAuthenticationData(&response))
                    }
                    _ => self.ep.fail(
                        PtTlsError::SaslMechanism("unexpected PLAIN challenge"),
                        &frame,
                    ),
                }
            }
            (ClientState::AwaitResult, MessageBody::SaslResult { code, .. }) => {
                let code = *code;
                if code == SaslResultCode::Success {
                    self.ep.events.push_back(Event::Authenticated);
                    self.state = ClientState::AwaitMechanisms;
                    return;
                }
                self.ep.events.push_back(Event::AuthenticationFailed(code));
                self.failed = true;
                if code == SaslResultCode::Abort {
                    // §3.8.10: on Abort the client ends the authentication.
                    self.ep
                        .fail(PtTlsError::SaslMechanism("the server aborted SASL"), &frame);
                } else {
                    self.state = ClientState::AwaitMechanisms;
                }
            }
            (ClientState::Data, MessageBody::PbTncBatch(_)) => {
                drop(msg);
                self.ep.deliver_batch(frame);
            }
            _ => self.ep.unexpected(&frame, &msg),
        }
    }
}

/// How the server authenticates clients inside PT-TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslPolicy {
    /// No SASL: an empty SASL Mechanisms right after the version exchange (the
    /// client may have been authenticated by its TLS certificate).
    None,
    /// SASL PLAIN (RFC 4616), with this many attempts before the session ends.
    Plain { max_attempts: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    AwaitVersion,
    AwaitSelection,
    AwaitAuthData,
    /// The caller is checking credentials.
    AwaitDecision,
    Data,
}

/// The NEA Server (TLS server) side.
#[derive(Debug)]
pub struct ServerConnection {
    ep: Endpoint,
    state: ServerState,
    policy: SaslPolicy,
    result_width: SaslResultWidth,
    attempts: u8,
    /// Header of the client's last authentication message: the copy a SASL
    /// Mechanism Error carries once attempts run out. Only the header, so that
    /// the PLAIN credentials are never echoed back in an error.
    auth_header: [u8; HEADER_LEN],
}

impl ServerConnection {
    pub fn new(limits: Limits, policy: SaslPolicy) -> Self {
        Self {
            ep: Endpoint::new(&limits),
            state: ServerState::AwaitVersion,
            policy,
            result_width: SaslResultWidth::default(),
            attempts: 0,
            auth_header: [0; HEADER_LEN],
        }
    }

    /// The SASL Result code width to send (default: one byte, as strongSwan reads).
    pub fn with_result_width(mut self, width: SaslResultWidth) -> Self {
        self.result_width = width;
        self
    }

    endpoint_io!();

    pub fn send_batch(&mut self, batch: &[u8]) -> Result<(), NotReady> {
        self.ep.send_batch(self.state == ServerState::Data, batch)
    }

    pub fn is_ready(&self) -> bool {
        self.state == ServerState::Data && !self.ep.closed
    }

    /// Answers an [`Event::Authenticate`]: `true` when the credentials are good.
    /// Ignored unless credentials are being checked.
    pub fn authentication_result(&mut self, accepted: bool) {
        if self.state != ServerState::AwaitDecision || self.ep.closed {
            return;
        }
        if accepted {
            self.send_result(SaslResultCode::Success);
            self.ep.events.push_back(Event::Authenticated);
            self.finish_negotiation();
        } else {
            self.reject(SaslResultCode::Failure);
        }
    }

    fn send_result(&mut self, code: SaslResultCode) {
        self.ep.send(MessageBody::SaslResult {
            code,
            data: &[],
            width: self.result_width,
        });
    }

    fn offer_mechanisms(&mut self) {
        self.ep
            .send(MessageBody::SaslMechanisms(vec![Mechanism::PLAIN]));
        self.state = ServerState::AwaitSelection;
    }

    fn finish_negotiation(&mut self) {
        self.ep.send(MessageBody::SaslMechanisms(Vec::new()));
        self.state = ServerState::Data;
        self.ep.framer.set_max_len(self.ep.data_max_len);
        self.ep.events.push_back(Event::Ready);
    }

    /// A failed attempt: say so, and offer another one while attempts are left.
    fn reject(&mut self, code: SaslResultCode) {
        self.send_result(code);
        self.ep.events.push_back(Event::AuthenticationFailed(code));
        self.attempts = self.attempts.saturating_add(1);
        let max = match self.policy {
            SaslPolicy::Plain { max_attempts } => max_attempts,
            SaslPolicy::None => 0,
        };
        if self.attempts < max {
            self.offer_mechanisms();
        } else {
            let header = self.auth_header;
            self.ep.fail(
                PtTlsError::SaslMechanism("too many failed authentication attempts"),
                &header,
            );
        }
    }

    fn check_plain(&mut self, message: &[u8]) {
        match PlainCredentials::decode(message) {
            Ok(c) => {
                self.state = ServerState::AwaitDecision;
                self.ep.events.push_back(Event::Authenticate(c));
            }
            Err(_) => self.reject(SaslResultCode::Failure),
        }
    }

    fn handle(&mut self, frame: Vec<u8>) {
        let Some(msg) = self.ep.triage(&frame) else {
            return;
        };
        match (self.state, &msg.body) {
            (ServerState::AwaitVersion, MessageBody::VersionRequest { min, max, .. }) => {
                if !(*min..=*max).contains(&VERSION) {
                    let e = PtTlsError::VersionNotSupported {
                        min: *min,
                        max: *max,
                    };
                    self.ep.fail(e, &frame);
                    return;
                }
                self.ep
                    .send(MessageBody::VersionResponse { version: VERSION });
                self.ep.events.push_back(Event::VersionNegotiated(VERSION));
                match self.policy {
                    SaslPolicy::None => self.finish_negotiation(),
                    SaslPolicy::Plain { .. } => self.offer_mechanisms(),
                }
            }
            (
                ServerState::AwaitSelection,
                MessageBody::SaslMechanismSelection { mechanism, initial },
            ) => {
                if *mechanism != Mechanism::PLAIN {
                    self.ep.fail(
                        PtTlsError::SaslMechanism("client selected a mechanism not offered"),
                        &frame,
                    );
                } else if initial.is_empty() {
                    // RFC 4616 §2: no initial response, so send an empty challenge.
                    self.ep.send(MessageBody::SaslAuthenticationData(&[]));
                    self.state = ServerState::AwaitAuthData;
                } else {
                    let initial = initial.to_vec();
                    self.auth_header.copy_from_slice(&frame[..HEADER_LEN]);
                    self.check_plain(&initial);
                }
            }
            (ServerState::AwaitAuthData, MessageBody::SaslAuthenticationData(data)) => {
                let data = data.to_vec();
                self.auth_header.copy_from_slice(&frame[..HEADER_LEN]);
                self.check_plain(&data);
            }
            (ServerState::Data, MessageBody::PbTncBatch(_)) => {
                drop(msg);
                self.ep.deliver_batch(frame);
            }
            _ => self.ep.unexpected(&frame, &msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_connection_holds_no_event_queue() {
        // What thousands of kept sessions hold between rounds.
        let limits = Limits {
            max_message_len: 1 << 20,
        };
        let mut client = ClientConnection::new(limits.clone(), None);
        let mut server = ServerConnection::new(limits, SaslPolicy::None);
        server.receive(&client.take_output());
        client.receive(&server.take_output());
        let mut events = 0;
        while server.poll_event().is_some() || client.poll_event().is_some() {
            events += 1;
        }
        assert!(events > 0, "negotiation raised events");
        assert!(client.is_ready());
        assert_eq!(server.ep.events.capacity(), 0);
        assert_eq!(client.ep.events.capacity(), 0);
    }
}
