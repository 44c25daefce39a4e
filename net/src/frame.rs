//! The framing of envelopes on a QUIC stream: `| length u32 BE | codec::encode(envelope) |`.
//!
//! The reader checks the length against the bound before it allocates, so a peer cannot
//! make a node reserve more than `max_frame` bytes per stream.

use quinn::{ReadError, ReadExactError, RecvStream, SendStream, WriteError};
use thiserror::Error;

/// Length of the prefix.
pub(crate) const PREFIX: usize = 4;

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub(crate) enum FrameError {
    /// The length prefix exceeds the bound; nothing was allocated.
    #[error("frame of {len} bytes exceeds the bound of {max}")]
    Oversized {
        /// The claimed length.
        len: u64,
        /// The bound.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream finished inside a frame")]
    Truncated,
    /// The stream or its connection failed.
    #[error("read: {0}")]
    Read(ReadError),
}

impl From<ReadExactError> for FrameError {
    fn from(error: ReadExactError) -> Self {
        match error {
            ReadExactError::FinishedEarly(_) => FrameError::Truncated,
            ReadExactError::ReadError(e) => FrameError::Read(e),
        }
    }
}

/// How much of a frame's body is read (and allocated) at a time.
const CHUNK: usize = 64 * 1024;

/// Reads one frame's body, or `None` if the stream finished cleanly between frames.
pub(crate) async fn read(
    stream: &mut RecvStream,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX];
    match stream.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(prefix);
    let body_len =
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(FrameError::Oversized {
                len: u64::from(len),
                max,
            })?;
    // The body grows as its bytes arrive, a chunk at a time: a peer that announces a
    // large frame and sends nothing holds one chunk of this node's memory, not the frame.
    let mut body = Vec::with_capacity(body_len.min(CHUNK));
    while body.len() < body_len {
        let start = body.len();
        body.resize(start + (body_len - start).min(CHUNK), 0);
        stream.read_exact(&mut body[start..]).await?;
    }
    Ok(Some(body))
}

/// The length prefix of `body`, or `None` if it does not fit in one.
pub(crate) fn prefix(body: &[u8]) -> Option<[u8; PREFIX]> {
    u32::try_from(body.len()).ok().map(u32::to_be_bytes)
}

/// Writes `prefix` and `body` as one frame.
pub(crate) async fn write(
    stream: &mut SendStream,
    prefix: [u8; PREFIX],
    body: &[u8],
) -> Result<(), WriteError> {
    stream.write_all(&prefix).await?;
    stream.write_all(body).await
}
