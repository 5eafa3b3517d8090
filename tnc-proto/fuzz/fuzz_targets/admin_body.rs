//! The admin API's JSON bodies (`tnc_proto::admin`): what the PDP decodes
//! from an admin's request and what the monitor and `--server` decode from
//! the PDP's answers.
//!
//! The input's first byte picks the type; the rest is the body.
//!
//! Properties:
//! - decoding never panics;
//! - a body that decodes re-encodes to JSON that decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tnc_proto::admin as api;

fn round_trip<T>(body: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        let again = serde_json::to_vec(&v).expect("a decoded value encodes");
        let w: T = serde_json::from_slice(&again)
            .unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}"));
        assert_eq!(v, w);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&t, body)) = data.split_first() else {
        return;
    };
    match t % 8 {
        0 => round_trip::<api::RevokeRequest>(body),
        1 => round_trip::<api::PolicyLoad>(body),
        2 => round_trip::<api::ActionResult>(body),
        3 => round_trip::<Vec<api::Device>>(body),
        4 => round_trip::<api::DeviceDetail>(body),
        5 => round_trip::<Vec<api::AuditEntry>>(body),
        6 => round_trip::<api::WhoAmI>(body),
        _ => round_trip::<api::ApiError>(body),
    }
});
