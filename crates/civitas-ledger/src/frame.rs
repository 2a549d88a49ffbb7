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
pub(crate) fn zeroed_to_end(file: &File, offset: u64) -> std::io::Result<bool> {
    zeroed_between(file, offset, u64::MAX)
}

/// Whether every byte of `file` from `offset` up to `end` (or its end, if sooner) is zero.
pub(crate) fn zeroed_between(file: &File, mut offset: u64, end: u64) -> std::io::Result<bool> {
    let mut buffer = vec![0u8; 64 * 1024];
    while offset < end {
        let wanted =
            usize::try_from(end - offset).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = match file.read_at(&mut buffer[..wanted], offset) {
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
    Ok(true)
}

/// Bytes of the file whose offsets one window of [`next_valid_frame`] tries.
const SCAN_STEP: usize = 1 << 20;

/// Where the first whole frame with a matching checksum starts after byte `after` of `file`, if
/// any. Frame boundaries are lost at a damaged frame, so every byte offset is tried.
///
/// A crash can only tear the write in progress at the end of the records, so a valid frame after
/// damage means the damage sits among records that were written and synced before: corruption,
/// not a torn tail.
pub(crate) fn next_valid_frame(
    file: &File,
    after: u64,
    max_payload: usize,
) -> std::io::Result<Option<u64>> {
    // Each window is read whole, so that a frame starting anywhere in its first `SCAN_STEP`
    // bytes lies entirely inside it unless the file ends first.
    let window_bytes = SCAN_STEP + FRAME_HEADER_BYTES + max_payload;
    let mut window = vec![0u8; window_bytes];
    let mut start = after + 1;
    loop {
        let mut filled = 0;
        while filled < window_bytes {
            match file.read_at(&mut window[filled..], start + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let at_end = filled < window_bytes;
        let candidates = if at_end { filled } else { SCAN_STEP };
        let bytes = &window[..filled];
        if let Some(position) = (0..candidates).find(|&position| {
            matches!(
                parse_frame(&bytes[position..], max_payload),
                FrameParse::Valid { .. }
            )
        }) {
            return Ok(Some(start + position as u64));
        }
        if at_end {
            return Ok(None);
        }
        start += SCAN_STEP as u64;
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

    #[test]
    fn the_next_valid_frame_is_found_at_any_offset_after_damage() {
        let check = |bytes: &[u8], after: u64, expected: Option<u64>| {
            let mut file = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut file, bytes).unwrap();
            assert_eq!(
                next_valid_frame(&file, after, 100).unwrap(),
                expected,
                "after {after}"
            );
        };
        let mut frame = Vec::new();
        encode_frame(b"hello", &mut frame);
        let mut damaged = frame.clone();
        damaged[9] ^= 1;

        // Zeros, a torn frame or garbage with nothing valid after them.
        check(&[0; 300], 0, None);
        check(&frame[..10], 0, None);
        check(&[damaged.as_slice(), &[0; 50]].concat(), 0, None);
        // A valid frame after damage, at a frame boundary or not.
        check(&[damaged.as_slice(), &frame].concat(), 0, Some(13));
        check(&[damaged.as_slice(), &[7; 5], &frame].concat(), 0, Some(18));
        // The frame at `after` itself does not count.
        check(&frame, 0, None);
        check(&[frame.as_slice(), &frame].concat(), 0, Some(13));
        // Frames near and past the end of the first window of offsets tried.
        for at in [SCAN_STEP - 2, SCAN_STEP, SCAN_STEP + 1, 2 * SCAN_STEP + 7] {
            let mut bytes = vec![0u8; at + 40];
            bytes[at..at + frame.len()].copy_from_slice(&frame);
            check(&bytes, 0, Some(at as u64));
        }
    }
}
