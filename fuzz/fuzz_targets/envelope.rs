//! The envelope decoder: arbitrary bytes as an [`Envelope`], and, when they decode, its
//! payload as a [`Message`]. Neither may panic or abort; whatever decodes re-encodes to
//! the same bytes (the codec is canonical) and can be digested.
#![no_main]

use ieschain_core::codec;
use ieschain_core::message::{Envelope, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = codec::decode::<Envelope>(data) else {
        return;
    };
    assert_eq!(codec::encode(&envelope), data, "a decoded envelope re-encodes");
    let _ = envelope.digest();
    let _ = envelope.size();
    if let Ok(message) = codec::decode::<Message>(&envelope.payload) {
        assert_eq!(codec::encode(&message), &envelope.payload[..], "a decoded message re-encodes");
        let _ = message.name();
    }
});
