//! Frames of the records and checkpoints files: `u32 length LE | u32 crc32c(payload) LE | payload`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::MAX_RECORD_BYTES;

pub(crate) const FRAME_HEADER_BYTES: usize = 8;

/// Appends one frame holding `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!payload.is_empty() && payload.len() <= u32::MAX as usize);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameParse<'a> {
    /// A whole frame whose checksum matches.
    Valid {
        payload: &'a [u8],
    },
    /// The buffer ends inside the frame; `needed` bytes (header included) would complete it.
    Incomplete {
        needed: usize,
    },
    /// The length is zero or above `max_payload`. Zero is refused because the checksum of an
    /// empty payload is zero, so a zero-filled tail left by a crash would otherwise parse as
    /// endless empty frames.
    BadLength {
        length: u32,
    },
    ChecksumMismatch,
}

/// Parses the frame at the start of `bytes`.
pub(crate) fn parse_frame(bytes: &[u8], max_payload: usize) -> FrameParse<'_> {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
        return FrameParse::Incomplete {
            needed: FRAME_HEADER_BYTES,
        };
    };
    let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes"));
    let checksum = u32::from_le_bytes(header[4..].try_into().expect("four bytes"));
    if length == 0 || length as usize > max_payload {
        return FrameParse::BadLength { length };
    }
    let total = FRAME_HEADER_BYTES + length as usize;
    if bytes.len() < total {
        return FrameParse::Incomplete { needed: total };
    }
    let payload = &bytes[FRAME_HEADER_BYTES..total];
    if crc32c::crc32c(payload) != checksum {
        return FrameParse::ChecksumMismatch;
    }
    FrameParse::Valid { payload }
}

/// Whether every byte of `file` from `offset` to its end is zero. The writer keeps the space
/// past its last record zero-filled (see `ledger::writer`), and a zero frame length is never
/// written, so such a tail is free space, not a torn write.
pub(crate) fn zeroed_to_end(file: &File, mut offset: u64) -> std::io::Result<bool> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match file.read_at(&mut buffer, offset) {
            Ok(0) => return Ok(true),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer[..read].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        offset += read as u64;
    }
}

/// The largest payload of a record frame.
pub(crate) const MAX_RECORD_PAYLOAD: usize = MAX_RECORD_BYTES;
/// Checkpoint notes are short; the bound only stops a corrupt length from looking plausible.
pub(crate) const MAX_CHECKPOINT_PAYLOAD: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut bytes = Vec::new();
        encode_frame(b"hello", &mut bytes);
        assert_eq!(bytes.len(), 13);
        assert_eq!(
            parse_frame(&bytes, 100),
            FrameParse::Valid { payload: b"hello" }
        );
        assert_eq!(
            parse_frame(&bytes[..10], 100),
            FrameParse::Incomplete { needed: 13 }
        );
        assert_eq!(parse_frame(&bytes, 4), FrameParse::BadLength { length: 5 });
        bytes[9] ^= 1;
        assert_eq!(parse_frame(&bytes, 100), FrameParse::ChecksumMismatch);
        assert_eq!(
            parse_frame(&[0u8; 64], 100),
            FrameParse::BadLength { length: 0 }
        );
    }
}
