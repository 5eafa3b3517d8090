//! The Posture Broker Client and Server state machine (RFC 5793 §3.2).
//!
//! Both sides run the same machine; a batch moves it when it is sent or received.
//! The transition table is strongSwan's (`pb_tnc_state_machine.c`), which is the
//! RFC 5793 §3.2 diagram with one reading of its self-loops settled: SRETRY in
//! Server Working hands the turn to the client, like SDATA, and CRETRY in Client
//! Working hands it to the server. Using the same table for sending and receiving
//! keeps both of our sides in step with each other and with strongSwan.

use super::{
    Batch, BatchError, BatchType, PbErrorCode, PbMessage, Side, BATCH_HEADER_LEN,
    MESSAGE_HEADER_LEN,
};
use thiserror::Error;

/// States of RFC 5793 §3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PbState {
    Init,
    ServerWorking,
    ClientWorking,
    Decided,
    End,
}

impl PbState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Init => "Init",
            Self::ServerWorking => "Server Working",
            Self::ClientWorking => "Client Working",
            Self::Decided => "Decided",
            Self::End => "End",
        }
    }

    /// The state after a batch of type `t` is sent or received, or `None` when a
    /// batch of that type is not allowed now.
    pub fn after(self, t: BatchType) -> Option<PbState> {
        use BatchType::*;
        use PbState::*;
        Some(match (self, t) {
            (_, Close) => End,
            (Init, CData) => ServerWorking,
            (Init, SData) => ClientWorking,
            (ServerWorking, SData | SRetry) => ClientWorking,
            (ServerWorking, Result) => Decided,
            (ServerWorking, CRetry) => ServerWorking,
            (ClientWorking, CData | CRetry) => ServerWorking,
            (ClientWorking, SRetry) => ClientWorking,
            (Decided, CRetry | SRetry) => ServerWorking,
            _ => return None,
        })
    }
}

/// A batch received in violation of RFC 5793. The session is over: send `close`
/// (a CLOSE batch with the fatal PB-Error), then close the transport.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct Violation {
    pub error: BatchError,
    pub close: Vec<u8>,
}

/// Why a batch may not be sent.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("a {role} may not send {batch} in state {state}", role = .side.name(), batch = .batch_type.name(), state = .state.name())]
    NotAllowed {
        side: Side,
        batch_type: BatchType,
        state: PbState,
    },
    #[error("{0}")]
    Content(&'static str),
    #[error("the PB-TNC session has ended")]
    Ended,
}

/// One side of a PB-TNC session.
#[derive(Clone, Debug)]
pub struct PbSession {
    side: Side,
    state: PbState,
    /// The peer ended the session with a fatal PB-Error: §4.9 forbids answering.
    silenced: bool,
}

impl PbSession {
    pub fn new(side: Side) -> Self {
        Self {
            side,
            state: PbState::Init,
            silenced: false,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn state(&self) -> PbState {
        self.state
    }

    pub fn is_ended(&self) -> bool {
        self.state == PbState::End
    }

    /// Whether this side may send a batch of type `t` now.
    pub fn can_send(&self, t: BatchType) -> bool {
        !self.silenced && t.sendable_by(self.side) && self.state.after(t).is_some()
    }

    /// Encodes a batch to send and moves the state machine.
    pub fn send(
        &mut self,
        batch_type: BatchType,
        messages: Vec<PbMessage<'_>>,
    ) -> Result<Vec<u8>, SendError> {
        if self.silenced || (self.state == PbState::End && batch_type != BatchType::Close) {
            return Err(SendError::Ended);
        }
        if !self.can_send(batch_type) {
            return Err(SendError::NotAllowed {
                side: self.side,
                batch_type,
                state: self.state,
            });
        }
        // §4.6, §4.7: these belong in RESULT only. A receiving client ignores them
        // elsewhere, so only the sending side can catch the mistake.
        if batch_type != BatchType::Result
            && messages.iter().any(|m| {
                matches!(
                    m,
                    PbMessage::AssessmentResult(_) | PbMessage::AccessRecommendation(_)
                )
            })
        {
            return Err(SendError::Content(
                "PB-Assessment-Result and PB-Access-Recommendation go in RESULT only",
            ));
        }
        let batch = Batch::new(self.side, batch_type, messages);
        let bytes = batch.to_bytes();
        // The peer's checks, run before sending: we never send what it must refuse.
        check_content(&batch_with_offsets(&batch, &bytes), self.side.peer()).map_err(
            |e| match e {
                BatchError::InvalidParameter { what, .. } => SendError::Content(what),
                _ => SendError::Content("batch content breaks RFC 5793"),
            },
        )?;
        if let Some(next) = self.state.after(batch_type) {
            self.state = next;
        }
        Ok(bytes)
    }

    /// Ends the session with a CLOSE batch, carrying `error` as a fatal PB-Error if
    /// given. Returns nothing when the peer already ended it with a fatal error.
    pub fn close(&mut self, error: Option<&BatchError>) -> Option<Vec<u8>> {
        if self.silenced {
            self.state = PbState::End;
            return None;
        }
        self.state = PbState::End;
        let messages = error
            .map(|e| vec![PbMessage::Error(e.to_pb_error())])
            .unwrap_or_default();
        Some(Batch::new(self.side, BatchType::Close, messages).to_bytes())
    }

    /// Ends the session because of a local failure (PB-Error Local Error).
    pub fn abort(&mut self, why: &'static str) -> Option<Vec<u8>> {
        self.close(Some(&BatchError::LocalError(why)))
    }

    /// Decodes and checks a received batch and moves the state machine.
    ///
    /// On a violation the session ends and the returned [`Violation`] holds the
    /// CLOSE batch to send. A batch that carries a fatal PB-Error is returned (its
    /// other messages are still to be processed) and ends the session; nothing may
    /// be sent after it.
    pub fn receive<'a>(&mut self, bytes: &'a [u8]) -> Result<Batch<'a>, Violation> {
        match self.check(bytes) {
            Ok(batch) => {
                if batch.fatal_error().is_some() {
                    self.silenced = true;
                    self.state = PbState::End;
                } else if let Some(next) = self.state.after(batch.batch_type) {
                    self.state = next;
                }
                Ok(batch)
            }
            Err(error) => {
                let close = self.close(Some(&error)).unwrap_or_default();
                Err(Violation { error, close })
            }
        }
    }

    fn check<'a>(&self, bytes: &'a [u8]) -> Result<Batch<'a>, BatchError> {
        let mut batch = Batch::decode(bytes)?;
        if batch.sender == self.side {
            return Err(BatchError::InvalidParameter {
                offset: 1,
                what: "the direction bit names the receiver as sender",
            });
        }
        let t = batch.batch_type;
        if !t.sendable_by(batch.sender) {
            return Err(BatchError::UnexpectedBatchType {
                batch_type: t.to_u8(),
                why: "may not be sent by this side",
            });
        }
        if self.state.after(t).is_none() {
            return Err(BatchError::UnexpectedBatchType {
                batch_type: t.to_u8(),
                why: "is not allowed in this state",
            });
        }
        check_content(&batch_with_offsets(&batch, bytes), self.side)?;
        if self.side == Side::Client && t != BatchType::Result {
            // §4.6, §4.7: a client ignores these outside a RESULT batch.
            batch.messages.retain(|m| {
                !matches!(
                    m,
                    PbMessage::AssessmentResult(_) | PbMessage::AccessRecommendation(_)
                )
            });
        }
        Ok(batch)
    }
}

/// A batch with the offset of each message, for error reports.
struct Located<'b, 'a> {
    batch: &'b Batch<'a>,
    offsets: Vec<usize>,
}

fn batch_with_offsets<'b, 'a>(batch: &'b Batch<'a>, bytes: &[u8]) -> Located<'b, 'a> {
    // The batch decoded, so every length field here is valid.
    let mut offsets = Vec::with_capacity(batch.messages.len());
    let mut at = BATCH_HEADER_LEN;
    while at + MESSAGE_HEADER_LEN <= bytes.len() {
        offsets.push(at);
        let len =
            u32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        at += (len as usize).max(MESSAGE_HEADER_LEN);
    }
    Located { batch, offsets }
}

/// Rules on which messages a batch may carry (§4.6–§4.11), as seen by `receiver`.
fn check_content(located: &Located<'_, '_>, receiver: Side) -> Result<(), BatchError> {
    let batch = located.batch;
    let at = |i: usize| located.offsets.get(i).copied().unwrap_or(0);
    let mut results = 0;
    let mut recommendations = 0;
    for (i, m) in batch.messages.iter().enumerate() {
        let server_only = matches!(
            m,
            PbMessage::AssessmentResult(_)
                | PbMessage::AccessRecommendation(_)
                | PbMessage::RemediationParameters(_)
                | PbMessage::ReasonString { .. }
        );
        if server_only && receiver == Side::Server {
            return Err(BatchError::InvalidParameter {
                offset: at(i),
                what: "a client may not send this message type",
            });
        }
        match m {
            PbMessage::AssessmentResult(_) => {
                results += 1;
                if results > 1 && batch.batch_type == BatchType::Result {
                    return Err(BatchError::InvalidParameter {
                        offset: at(i),
                        what: "more than one PB-Assessment-Result in a RESULT batch",
                    });
                }
            }
            PbMessage::AccessRecommendation(_) => {
                recommendations += 1;
                if recommendations > 1 && batch.batch_type == BatchType::Result {
                    return Err(BatchError::InvalidParameter {
                        offset: at(i),
                        what: "more than one PB-Access-Recommendation in a RESULT batch",
                    });
                }
            }
            _ => {}
        }
    }
    if batch.batch_type == BatchType::Result && results == 0 {
        return Err(BatchError::InvalidParameter {
            offset: 3,
            what: "RESULT batch without PB-Assessment-Result",
        });
    }
    Ok(())
}

/// The IETF code of the fatal PB-Error a batch carries, if any.
pub fn fatal_code(batch: &Batch<'_>) -> Option<PbErrorCode> {
    batch.fatal_error().and_then(|e| e.ietf_code())
}
