//! The one canonical encoding of everything stored, sent, hashed or signed (SPEC §7).
//!
//! This module is the only place that names bincode. It pins three rules that bincode does
//! not give by default:
//! - **A size limit before any allocation.** Without `with_limit`, a 12-byte input that
//!   claims 2^40 elements aborts the process with an allocation failure that cannot be
//!   caught. Every decode here is limited to [`MAX_DECODE`] bytes.
//! - **No trailing bytes.** `decode_from_slice` silently accepts input that is not consumed
//!   in full; here that is an error.
//! - **Canonical bytes.** bincode's varints accept non-minimal forms, so a decoded value must
//!   re-encode to exactly the input (SPEC §12 D6). Otherwise two byte strings would carry
//!   the same value and hash differently.

use bincode::config::{self, Configuration, Limit};
use bincode::{Decode, Encode};
use thiserror::Error;

/// The largest value the codec will decode: 4 MiB, four times the relay block capacity.
/// Configured capacities above this are refused by the configuration checks.
pub const MAX_DECODE: usize = 4 << 20;

fn config() -> Configuration<config::LittleEndian, config::Varint, Limit<MAX_DECODE>> {
    config::standard().with_limit::<MAX_DECODE>()
}

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The input is longer than [`MAX_DECODE`].
    #[error("input of {len} bytes exceeds the decode limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// bincode refused the input.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The value ended before the input did.
    #[error("{trailing} trailing bytes after the value")]
    Trailing {
        /// How many bytes were left over.
        trailing: usize,
    },
    /// The input decodes, but is not the canonical encoding of its value.
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes `value` canonically.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail: the writer never errors and the limit only applies
    // to decoding. A failure here would be a bug in a derive, stated as an invariant.
    #[allow(clippy::expect_used)]
    bincode::encode_to_vec(value, config()).expect("encoding into a Vec is infallible")
}

/// The encoded size of `value`, without allocating the encoding.
pub fn encoded_len<T: Encode>(value: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    // As in `encode`: a size writer never fails.
    #[allow(clippy::expect_used)]
    bincode::encode_into_writer(value, &mut counter, config()).expect("size writer is infallible");
    counter.bytes_written
}

/// Decodes a whole value from `bytes`: limited, complete and canonical.
pub fn decode<T: Decode<()> + Encode>(bytes: &[u8]) -> Result<T, CodecError> {
    let value = decode_lenient(bytes)?;
    if encode(&value) != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}

/// Decodes a whole value from `bytes`, limited and complete, without the canonical check.
/// Use only where the bytes are re-hashed from the decoded value, so that a non-canonical
/// form cannot change any digest.
pub fn decode_lenient<T: Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_DECODE {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: MAX_DECODE,
        });
    }
    let (value, used) = bincode::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing {
            trailing: bytes.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_length_prefix_is_an_error_not_an_abort() {
        // A varint length of 2^40 followed by nothing: must fail cleanly.
        let bytes = [0xfd, 0, 0, 0, 0, 0, 1, 0, 0];
        let result: Result<Vec<u64>, _> = decode(&bytes);
        assert!(
            matches!(result, Err(CodecError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert_eq!(
            decode::<u32>(&bytes),
            Err(CodecError::Trailing { trailing: 1 })
        );
    }

    #[test]
    fn non_minimal_varint_is_rejected() {
        // 5 encoded as a u16 varint marker (0xfb) instead of the single byte 5.
        let bytes = [0xfb, 5, 0];
        assert_eq!(decode::<u64>(&bytes), Err(CodecError::NonCanonical));
        assert_eq!(decode::<u64>(&[5]), Ok(5));
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let bytes = vec![0u8; MAX_DECODE + 1];
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn encoded_len_matches_encode() {
        let value = (vec![1u8; 300], 70_000u64, String::from("grid"));
        assert_eq!(encoded_len(&value), encode(&value).len());
    }
}
