//! PT-TLS (RFC 6876): the framer, the message codec and both sans-IO endpoints.
//!
//! Input layout: 5 control bytes, then the TLS plaintext stream.
//! - byte 0: the answers to successive `Event::Authenticate` (bit n for the n-th,
//!   cycling), so the fuzzer reaches both the accepted and the rejected path;
//! - bytes 1..5: the seed of the chunk lengths the stream is cut into (the low 3
//!   bits of byte 1 choose the largest chunk).
//!
//! Properties:
//! - the framer yields the same frames (and the same error) for any chunking, never
//!   holds a whole message's worth of bytes after it said "need more", and its
//!   frames concatenate to a prefix of the stream;
//! - every message that decodes re-encodes to the same bytes, except for reserved
//!   fields (written as zero) and an Error's copy (cut to 1024 bytes): then the
//!   re-encoding decodes to the same message, and re-encodes to itself;
//! - the endpoints never panic, their output stays within a constant factor of the
//!   input, nothing comes out after they closed, and the client (which takes no
//!   decisions from its caller) behaves the same for any chunking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{
    ClientConnection, Event, Framer, FramingError, Limits, Message, MessageBody, SaslPolicy,
    ServerConnection, HEADER_LEN, MAX_ERROR_COPY,
};

/// A small bound so that the fuzzer reaches "message too long" cheaply.
const MAX_LEN: u32 = 4096;
const CONTROL_LEN: usize = 5;

fuzz_target!(|data: &[u8]| {
    if data.len() < CONTROL_LEN {
        return;
    }
    let (control, stream) = data.split_at(CONTROL_LEN);
    let decisions = control[0];
    let seed = u32::from_be_bytes([control[1], control[2], control[3], control[4]]);
    let max_chunk = [1, 2, 7, 16, 17, 64, 1500, usize::MAX][usize::from(control[1] & 7)];
    let chunked = split(stream, seed, max_chunk);
    let whole = [stream];

    let (frames, error) = frame_all(&chunked);
    let (whole_frames, whole_error) = frame_all(&whole);
    assert_eq!(
        (&frames, &error),
        (&whole_frames, &whole_error),
        "chunking changed the frames"
    );
    let framed: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(
        frames.concat(),
        stream[..framed],
        "frames are not the stream's prefix"
    );
    for frame in &frames {
        round_trip(frame);
    }

    drive_server(&chunked, decisions, stream.len());
    let client_chunked = drive_client(&chunked, stream.len());
    let client_whole = drive_client(&whole, stream.len());
    assert_eq!(
        client_chunked, client_whole,
        "the client depends on chunking"
    );
});

/// Cuts `stream` into chunks of 1..=max_chunk bytes chosen by a xorshift PRNG.
fn split(stream: &[u8], seed: u32, max_chunk: usize) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max_chunk.min(rest.len())) + 1;
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

fn frame_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FramingError>) {
    let mut framer = Framer::new(MAX_LEN);
    let mut frames = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() >= HEADER_LEN && frame.len() <= MAX_LEN as usize);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(framer.buffered(), 0, "a failed framer keeps no bytes");
                    return (frames, Some(e));
                }
            }
        }
        // "Need more" means less than one whole message is held.
        assert!(framer.buffered() < MAX_LEN as usize);
    }
    (frames, None)
}

fn round_trip(frame: &[u8]) {
    let Ok(msg) = Message::decode(frame, MAX_LEN) else {
        return;
    };
    let again = msg.to_bytes();
    if again == frame {
        return;
    }
    // Reserved bits are ignored on receipt and sent as zero (RFC 6876 §3.5 and the
    // value layouts), and an Error carries at most 1024 bytes of the original
    // (§3.9): the re-encoding differs then, but must mean the same message.
    let expected = match msg.body {
        MessageBody::Error {
            vendor,
            code,
            original,
        } => Message {
            identifier: msg.identifier,
            body: MessageBody::Error {
                vendor,
                code,
                original: &original[..original.len().min(MAX_ERROR_COPY)],
            },
        },
        ref other => {
            assert_eq!(
                again.len(),
                frame.len(),
                "re-encoding changed the length of {}",
                other.name()
            );
            msg.clone()
        }
    };
    let redecoded = match Message::decode(&again, MAX_LEN) {
        Ok(m) => m,
        Err(e) => panic!("re-encoding of {msg:?} does not decode: {e}"),
    };
    assert_eq!(redecoded, expected);
    assert_eq!(redecoded.to_bytes(), again, "re-encoding is not canonical");
}

/// Output may grow by a bounded factor: every input message (at least 16 bytes)
/// is answered by at most two short messages or one Error with a copy of it.
fn bounded(output: usize, fed: usize) -> bool {
    output <= 4 * fed + 1024
}

fn limits() -> Limits {
    Limits {
        max_message_len: MAX_LEN,
    }
}

fn drive_server(chunks: &[&[u8]], decisions: u8, total: usize) {
    let mut server = ServerConnection::new(limits(), SaslPolicy::Plain { max_attempts: 3 });
    let mut fed = 0;
    let mut output = 0;
    let mut asked = 0u32;
    for chunk in chunks {
        let was_closed = server.is_closed();
        server.receive(chunk);
        fed += chunk.len();
        while let Some(event) = server.poll_event() {
            match event {
                Event::Authenticate(_) => {
                    let accept = (decisions >> (asked % 8)) & 1 == 1;
                    asked += 1;
                    server.authentication_result(accept);
                }
                Event::Batch(batch) => assert!(batch.len() + HEADER_LEN <= fed),
                _ => {}
            }
        }
        let out = server.take_output();
        assert!(!was_closed || out.is_empty(), "output after close");
        output += out.len();
        assert!(
            bounded(output, fed),
            "server wrote {output} bytes for {fed}"
        );
    }
    assert_eq!(fed, total);
    assert_eq!(server.send_batch(&[]).is_ok(), server.is_ready());
}

/// Returns everything the client said and reported, for comparison across chunkings.
fn drive_client(chunks: &[&[u8]], total: usize) -> (Vec<u8>, Vec<Event>) {
    let credentials = PlainCredentials::new("tnc-user", "tnc-secret");
    let mut client = ClientConnection::new(limits(), Some(credentials));
    let mut fed = 0;
    let mut output = client.take_output();
    let mut events = Vec::new();
    for chunk in chunks {
        let was_closed = client.is_closed();
        client.receive(chunk);
        fed += chunk.len();
        while let Some(event) = client.poll_event() {
            if let Event::Batch(batch) = &event {
                assert!(batch.len() + HEADER_LEN <= fed);
            }
            events.push(event);
        }
        let out = client.take_output();
        assert!(!was_closed || out.is_empty(), "output after close");
        output.extend_from_slice(&out);
        assert!(
            bounded(output.len(), fed),
            "client wrote {} bytes for {fed}",
            output.len()
        );
    }
    assert_eq!(fed, total);
    assert_eq!(client.send_batch(&[]).is_ok(), client.is_ready());
    (output, events)
}
