//! Feeds arbitrary bytes to the ubus frame decoder and the blobmsg-to-JSON decoder: they
//! must never panic, and whatever frames they accept must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplinkd::ubus::blobmsg;
use uplinkd::ubus::msg::{FrameDecoder, Message, MAX_MSGLEN};

fuzz_target!(|data: &[u8]| {
    // As a stream, split at a point taken from the input itself.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut d = FrameDecoder::new();
    for piece in [&data[..split], &data[split..]] {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_MSGLEN + 8);
                    let m = Message::decode(&frame).expect("a split frame decodes");
                    // The body's own length may leave bytes of a nested attribute
                    // unparsed; only well-formed bodies must round-trip.
                    let again = m.encode();
                    if let Ok(m2) = Message::decode(&again) {
                        assert_eq!(m2, m);
                    }
                    if let Some(data) = m.data() {
                        let _ = blobmsg::decode_table(data);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // As a bare blobmsg list.
    if let Ok(map) = blobmsg::decode_table(data) {
        let bytes = blobmsg::encode_table(&map);
        assert_eq!(blobmsg::decode_table(&bytes).as_ref(), Ok(&map));
    }
    let _ = blobmsg::decode_array(data);
});
