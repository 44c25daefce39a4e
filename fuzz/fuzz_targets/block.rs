//! The block decoder: arbitrary bytes as an [`AnyBlock`]. It may not panic or abort;
//! whatever decodes re-encodes to the same bytes and can be hashed and inspected.
#![no_main]

use ieschain_core::codec;
use ieschain_core::AnyBlock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = codec::decode::<AnyBlock>(data) else {
        return;
    };
    assert_eq!(codec::encode(&block), data, "a decoded block re-encodes");
    let _ = block.chain();
    let _ = block.height();
    let _ = block.prev();
    let _ = block.hash();
    let _ = block.records().len();
});
