//! Frames: a u32 big-endian length, then that many bytes of JSON.
//!
//! The length is checked against [`MAX_FRAME`] before anything is allocated, so a peer
//! can never make the other side reserve more than that.

use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts (16 MiB): far above any store answer a CNI call
/// needs, small enough that a bogus length cannot exhaust memory.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The announced length exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(u64),
    /// The socket failed (including a connection cut inside a frame, or a timeout).
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// The length prefix of a payload, or [`FrameError::TooLarge`].
pub fn header(payload: &[u8]) -> Result<[u8; 4], FrameError> {
    match u32::try_from(payload.len()) {
        Ok(len) if len <= MAX_FRAME => Ok(len.to_be_bytes()),
        _ => Err(FrameError::TooLarge(payload.len() as u64)),
    }
}

/// One whole frame (prefix and payload) as bytes.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&header(payload)?);
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Splits one frame off the front of `bytes`: `Ok(None)` while it is incomplete, else the
/// payload and the number of bytes consumed.
pub fn decode(bytes: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = bytes.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    let end = 4 + len as usize;
    Ok(bytes.get(4..end).map(|payload| (payload, end)))
}

/// Reads one frame from a blocking stream.
pub fn read_sync(stream: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        other => other?,
    }
    let len = checked_len(prefix)?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

/// Writes one frame to a blocking stream.
pub fn write_sync(stream: &mut impl Write, payload: &[u8]) -> Result<(), FrameError> {
    stream.write_all(&encode(payload)?)?;
    stream.flush()?;
    Ok(())
}

/// Reads one frame from an async stream.
pub async fn read_async(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix).await {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        other => other?,
    };
    let len = checked_len(prefix)?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes one frame to an async stream.
pub async fn write_async(
    stream: &mut (impl AsyncWrite + Unpin),
    payload: &[u8],
) -> Result<(), FrameError> {
    stream.write_all(&encode(payload)?).await?;
    stream.flush().await?;
    Ok(())
}

fn checked_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frames_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)) {
            let mut stream = Vec::new();
            for payload in &payloads {
                stream.extend_from_slice(&encode(payload).unwrap());
            }
            // Incremental decode sees the same payloads, and every strict prefix is incomplete.
            let mut rest = &stream[..];
            for payload in &payloads {
                for cut in 0..4 + payload.len() {
                    prop_assert!(decode(&rest[..cut]).unwrap().is_none());
                }
                let (got, used) = decode(rest).unwrap().unwrap();
                prop_assert_eq!(got, &payload[..]);
                rest = &rest[used..];
            }
            prop_assert!(rest.is_empty());
            // The blocking reader agrees, then reports a clean close.
            let mut reader = std::io::Cursor::new(stream);
            for payload in &payloads {
                prop_assert_eq!(&read_sync(&mut reader).unwrap(), payload);
            }
            prop_assert!(matches!(read_sync(&mut reader), Err(FrameError::Closed)));
        }

        #[test]
        fn oversized_lengths_are_refused_before_allocating(len in (MAX_FRAME + 1)..=u32::MAX) {
            let bytes = len.to_be_bytes();
            prop_assert!(matches!(decode(&bytes), Err(FrameError::TooLarge(_))));
            let mut reader = std::io::Cursor::new(bytes.to_vec());
            prop_assert!(matches!(read_sync(&mut reader), Err(FrameError::TooLarge(_))));
        }
    }

    #[test]
    fn cut_inside_a_frame_is_an_io_error_not_a_clean_close() {
        let mut bytes = encode(b"hello").unwrap();
        bytes.truncate(6);
        let mut reader = std::io::Cursor::new(bytes);
        assert!(matches!(read_sync(&mut reader), Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn async_reader_matches_blocking_writer() {
        let mut bytes = Vec::new();
        write_sync(&mut bytes, br#"{"a":1}"#).unwrap();
        let mut reader = &bytes[..];
        assert_eq!(read_async(&mut reader).await.unwrap(), br#"{"a":1}"#);
        assert!(matches!(
            read_async(&mut reader).await,
            Err(FrameError::Closed)
        ));
    }
}
