//! Two PT-TLS endpoints joined in memory: for tests, demos and benchmarks that
//! drive whole sessions through the state machines with no socket in between.

use super::{ClientConnection, Event, ServerConnection};

/// A client and a server whose output is delivered to each other, with a copy of
/// everything each side sent (the plaintext a TLS session would have carried).
#[derive(Debug)]
pub struct Loopback {
    pub client: ClientConnection,
    pub server: ServerConnection,
    /// Everything the client sent, in order.
    pub c2s: Vec<u8>,
    /// Everything the server sent, in order.
    pub s2c: Vec<u8>,
}

/// What each side reported during one [`Loopback::pump`].
#[derive(Debug, Default)]
pub struct Pumped {
    pub client: Vec<Event>,
    pub server: Vec<Event>,
}

impl Loopback {
    pub fn new(client: ClientConnection, server: ServerConnection) -> Self {
        Self {
            client,
            server,
            c2s: Vec::new(),
            s2c: Vec::new(),
        }
    }

    /// Delivers output both ways until neither side has anything to send, and
    /// returns the events raised meanwhile. Events that need an answer (such as
    /// [`Event::Authenticate`]) are the caller's: answer, then pump again.
    pub fn pump(&mut self) -> Pumped {
        let mut events = Pumped::default();
        loop {
            let to_server = self.client.take_output();
            let to_client = self.server.take_output();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            self.c2s.extend_from_slice(&to_server);
            self.s2c.extend_from_slice(&to_client);
            self.server.receive(&to_server);
            self.client.receive(&to_client);
            events
                .server
                .extend(std::iter::from_fn(|| self.server.poll_event()));
            events
                .client
                .extend(std::iter::from_fn(|| self.client.poll_event()));
        }
        events
    }
}
