//! Streaming reads of the checkpoints file. A busy node signs a checkpoint every second, so the
//! file is read frame by frame and never held in memory whole.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;

use crate::frame::{FRAME_HEADER_BYTES, MAX_CHECKPOINT_PAYLOAD, zeroed_between};

/// Reads a file from an offset with positioned reads, leaving the shared file cursor alone so
/// that any number of readers can use one handle at once.
pub(crate) struct PositionedReader<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read_at(buffer, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

pub(crate) fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// One stored checkpoint note and where it lies.
pub(crate) struct StoredNote {
    pub(crate) ordinal: usize,
    /// Byte offset of its frame in the checkpoints file.
    pub(crate) offset: u64,
    pub(crate) note: String,
}

#[derive(Debug)]
pub(crate) enum CheckpointFileError {
    Io(std::io::Error),
    Corrupt { offset: u64, reason: String },
}

impl From<std::io::Error> for CheckpointFileError {
    fn from(error: std::io::Error) -> CheckpointFileError {
        CheckpointFileError::Io(error)
    }
}

/// Reads checkpoint frames in order up to a given end offset.
pub(crate) struct CheckpointReader<'a> {
    reader: BufReader<PositionedReader<'a>>,
    /// Offset of the next frame; after the last valid frame, the end of the valid data.
    offset: u64,
    end: u64,
    ordinal: usize,
    torn_tail_at: Option<u64>,
    finished: bool,
    payload: Vec<u8>,
}

impl<'a> CheckpointReader<'a> {
    /// Starts at the frame at `offset`, which is checkpoint number `ordinal`, and stops at `end`.
    pub(crate) fn new(
        file: &'a File,
        offset: u64,
        ordinal: usize,
        end: u64,
    ) -> CheckpointReader<'a> {
        CheckpointReader {
            reader: BufReader::with_capacity(64 * 1024, PositionedReader { file, offset }),
            offset,
            end,
            ordinal,
            torn_tail_at: None,
            finished: false,
            payload: Vec::new(),
        }
    }

    /// Where the valid frames end so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The offset of a torn last frame, once the reader has met one.
    pub(crate) fn torn_tail_at(&self) -> Option<u64> {
        self.torn_tail_at
    }

    /// The next checkpoint note, or `None` at the end of the data or at a torn last frame.
    pub(crate) fn next_note(&mut self) -> Result<Option<StoredNote>, CheckpointFileError> {
        if self.finished || self.offset >= self.end {
            self.finished = true;
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        if read_up_to(&mut self.reader, &mut header)? < FRAME_HEADER_BYTES {
            return self.damaged("torn frame header", FRAME_HEADER_BYTES);
        }
        let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes")) as usize;
        let checksum = u32::from_le_bytes(header[4..].try_into().expect("four bytes"));
        if length == 0 || length > MAX_CHECKPOINT_PAYLOAD {
            return self.damaged("invalid frame length", FRAME_HEADER_BYTES);
        }
        let frame_bytes = FRAME_HEADER_BYTES + length;
        let frame_end = self.offset + frame_bytes as u64;
        self.payload.resize(length, 0);
        if frame_end > self.end || read_up_to(&mut self.reader, &mut self.payload)? < length {
            return self.damaged("torn frame", frame_bytes);
        }
        if crc32c::crc32c(&self.payload) != checksum {
            return self.damaged("frame checksum mismatch", frame_bytes);
        }
        let note =
            String::from_utf8(self.payload.clone()).map_err(|_| CheckpointFileError::Corrupt {
                offset: self.offset,
                reason: "note is not utf-8".into(),
            })?;
        let stored = StoredNote {
            ordinal: self.ordinal,
            offset: self.offset,
            note,
        };
        self.ordinal += 1;
        self.offset = frame_end;
        Ok(Some(stored))
    }

    /// Damage at the current offset, where a frame of `frame_bytes` (as far as its header could
    /// tell) starts. Each checkpoint is synced before the next is written, so a crash can tear
    /// only the last frame: the damage is a torn write if the bytes left fit within that frame,
    /// or are all zero (space the file grew by whose data never reached the disk). Anything else
    /// would cut off checkpoints that were synced and may already stand in issued receipts.
    fn damaged(
        &mut self,
        reason: &str,
        frame_bytes: usize,
    ) -> Result<Option<StoredNote>, CheckpointFileError> {
        let remaining = self.end - self.offset;
        let file = self.reader.get_ref().file;
        if remaining > frame_bytes as u64 && !zeroed_between(file, self.offset, self.end)? {
            return Err(CheckpointFileError::Corrupt {
                offset: self.offset,
                reason: format!(
                    "{reason} with {remaining} bytes from there to the end of the file, more than the {frame_bytes} of the one incomplete last frame a torn write leaves"
                ),
            });
        }
        self.torn_tail_at = Some(self.offset);
        self.finished = true;
        Ok(None)
    }
}
