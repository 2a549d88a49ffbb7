//! Frames of the records and checkpoints files: `u32 length LE | u32 crc32c(payload) LE | payload`.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use crate::checkpoint_file::read_up_to;
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
    let length = match declared_length(header, max_payload) {
        Ok(length) => length,
        Err(length) => return FrameParse::BadLength { length },
    };
    let checksum = u32::from_le_bytes(header[4..].try_into().expect("four bytes"));
    let total = FRAME_HEADER_BYTES + length;
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

/// A read buffer of fixed capacity whose first `length` bytes are valid, for walking the records
/// file chunk by chunk with [`split_frames`].
pub(crate) struct ChunkBuffer {
    pub(crate) bytes: Vec<u8>,
    length: usize,
}

impl ChunkBuffer {
    /// A buffer for chunks of `chunk_bytes` after a leftover partial frame.
    pub(crate) fn new(chunk_bytes: usize) -> ChunkBuffer {
        ChunkBuffer {
            bytes: vec![0; chunk_bytes + FRAME_HEADER_BYTES + MAX_RECORD_PAYLOAD],
            length: 0,
        }
    }

    pub(crate) fn valid(&self) -> &[u8] {
        &self.bytes[..self.length]
    }

    /// Keeps the first `kept` bytes and reads up to `chunk_bytes` of `reader` after them;
    /// returns whether the file has ended.
    pub(crate) fn fill(
        &mut self,
        reader: &mut impl Read,
        kept: usize,
        chunk_bytes: usize,
    ) -> std::io::Result<bool> {
        debug_assert!(kept + chunk_bytes <= self.bytes.len());
        let read = read_up_to(reader, &mut self.bytes[kept..kept + chunk_bytes])?;
        self.length = kept + read;
        Ok(read < chunk_bytes)
    }
}

/// How [`split_frames`] divided a buffer of record frames.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameSplit {
    /// Where the whole frames end in the buffer: the next frame, or the damage, starts here.
    pub(crate) end: usize,
    /// Why the bytes at `end` are not a frame, when they cannot become one: the frame length is
    /// invalid, or the file ends inside the frame. `None` when the buffer ends inside a frame
    /// that the next chunk may complete, or ends at a frame boundary.
    pub(crate) damage: Option<String>,
}

/// Splits `bytes`, read from the records file starting at a frame boundary, into whole frames,
/// pushing each one's payload start and length to `frames`. `end_of_file` says whether the file
/// ends where `bytes` do. Checksums are not checked here, so that callers can check them where
/// they like (in parallel, say); a frame whose checksum fails is damage at that frame.
pub(crate) fn split_frames(
    bytes: &[u8],
    end_of_file: bool,
    frames: &mut Vec<(usize, usize)>,
) -> FrameSplit {
    let mut position = 0;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let whole = match parse_frame_length(rest) {
            Ok(Some(length)) if rest.len() >= FRAME_HEADER_BYTES + length => Some(length),
            Ok(_) => None,
            Err(reason) => {
                return FrameSplit {
                    end: position,
                    damage: Some(reason),
                };
            }
        };
        let Some(length) = whole else {
            let damage = end_of_file.then(|| "torn frame at the end of the file".to_owned());
            return FrameSplit {
                end: position,
                damage,
            };
        };
        frames.push((position + FRAME_HEADER_BYTES, length));
        position += FRAME_HEADER_BYTES + length;
    }
    FrameSplit {
        end: position,
        damage: None,
    }
}

/// The payload length a record frame at the start of `bytes` declares, `None` when the bytes end
/// inside its header, or why it is invalid.
fn parse_frame_length(bytes: &[u8]) -> Result<Option<usize>, String> {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    declared_length(header, MAX_RECORD_PAYLOAD)
        .map(Some)
        .map_err(|length| format!("invalid frame length {length}"))
}

/// The payload length a frame header declares, or, when it is invalid (zero, or more than
/// `max_payload`), the length as declared.
fn declared_length(header: &[u8; FRAME_HEADER_BYTES], max_payload: usize) -> Result<usize, u32> {
    let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes"));
    if length == 0 || length as usize > max_payload {
        return Err(length);
    }
    Ok(length as usize)
}

/// The checksum a frame's header holds, for a frame that [`split_frames`] found with its payload
/// at `payload_start` of `bytes`.
pub(crate) fn frame_checksum(bytes: &[u8], payload_start: usize) -> u32 {
    let checksum_bytes = &bytes[payload_start - 4..payload_start];
    u32::from_le_bytes(checksum_bytes.try_into().expect("four bytes"))
}

/// What the records file holds from its first torn or corrupt frame on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordsTail {
    /// Nothing, or only the zero-filled space the writer keeps ahead of its records.
    Clean,
    /// A torn or corrupt frame with no valid frame starting anywhere after it: what a crash
    /// during a write leaves behind.
    Torn { reason: String },
    /// A torn or corrupt frame with a valid frame starting at byte `next_frame` after it. A crash
    /// tears only the end of the records, and the records before a frame were synced when it
    /// was, so this is damage among synced (and perhaps acknowledged) records.
    DamageBeforeValidFrames { reason: String, next_frame: u64 },
}

/// What follows the end of the valid records at byte `end` of `records`, where a frame is torn or
/// corrupt for `reason`. Opening, salvaging and verifying a ledger all decide this way.
pub(crate) fn records_tail(
    records: &File,
    end: u64,
    reason: String,
) -> std::io::Result<RecordsTail> {
    // The zero-filled space the writer keeps ahead of its records is where they end.
    if zeroed_to_end(records, end)? {
        return Ok(RecordsTail::Clean);
    }
    Ok(match next_valid_frame(records, end, MAX_RECORD_PAYLOAD)? {
        Some(next_frame) => RecordsTail::DamageBeforeValidFrames { reason, next_frame },
        None => RecordsTail::Torn { reason },
    })
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
    fn frames_are_split_up_to_damage_or_a_frame_the_next_chunk_completes() {
        let mut one = Vec::new();
        encode_frame(b"hello", &mut one);
        let two = [one.as_slice(), &one].concat();
        let check = |bytes: &[u8], end_of_file: bool, expected: (usize, Option<&str>)| {
            let mut frames = Vec::new();
            let split = split_frames(bytes, end_of_file, &mut frames);
            assert_eq!(
                (split.end, split.damage.as_deref()),
                expected,
                "{bytes:?} {end_of_file}"
            );
            assert_eq!(frames, vec![(8, 5), (21, 5)][..split.end / 13]);
        };
        check(&[], true, (0, None));
        check(&two, true, (26, None));
        check(&two, false, (26, None));
        // A frame or header cut short by the chunk, or by the end of the file.
        check(&two[..20], false, (13, None));
        check(
            &two[..20],
            true,
            (13, Some("torn frame at the end of the file")),
        );
        check(&two[..16], false, (13, None));
        check(
            &two[..16],
            true,
            (13, Some("torn frame at the end of the file")),
        );
        // A length no frame has, whether or not more bytes follow.
        check(
            &[one.as_slice(), &[0; 20]].concat(),
            false,
            (13, Some("invalid frame length 0")),
        );
        let mut too_long = two.clone();
        too_long[13..17].copy_from_slice(&(MAX_RECORD_PAYLOAD as u32 + 1).to_le_bytes());
        check(&too_long, false, (13, Some("invalid frame length 65536")));
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
