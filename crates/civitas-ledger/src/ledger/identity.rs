//! The ledger's id: random, written once into the directory, so that whoever keeps data derived
//! from a ledger (the node's store) can tell it from any other ledger. The records cannot serve:
//! a new ledger has none, a salvage may cut them all, and two ledgers signed by one node key
//! have the same checkpoints for the same records.

use std::io::Write;
use std::path::Path;

use super::{Error, Result, create_temporary, io_error, sync_directory};

pub(crate) const LEDGER_ID_FILE: &str = "ledger-id";
/// Where a new id is written before it is renamed into place.
const LEDGER_ID_PARTIAL_FILE: &str = "ledger-id.partial";
/// Random bytes in an id, written as twice as many lowercase hex digits.
const LEDGER_ID_BYTES: usize = 16;

/// Reads the id of the ledger in `dir`, or makes one if the directory has none (a new ledger, or
/// one from before ledgers had ids): written to a side file, synced, renamed into place and the
/// directory synced, so that a crash leaves the whole id or none, and an id that anyone was told
/// is durable. The caller holds the directory's lock.
pub(crate) fn load_or_create(dir: &Path) -> Result<String> {
    let path = dir.join(LEDGER_ID_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => parse(&bytes).ok_or(Error::CorruptLedgerId(path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut random = [0; LEDGER_ID_BYTES];
            getrandom::fill(&mut random).expect("the operating system provides randomness");
            let id: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
            let partial = dir.join(LEDGER_ID_PARTIAL_FILE);
            // A side file left by a crash is overwritten: its id was never in place.
            let mut file = create_temporary(&partial)?;
            file.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_error("write", &partial))?;
            std::fs::rename(&partial, &path).map_err(io_error("rename into place", &path))?;
            sync_directory(dir)?;
            Ok(id)
        }
        Err(error) => Err(io_error("read", &path)(error)),
    }
}

/// The id in a file's bytes: 32 lowercase hex digits and a newline.
fn parse(bytes: &[u8]) -> Option<String> {
    let id = bytes.strip_suffix(b"\n")?;
    let well_formed = id.len() == 2 * LEDGER_ID_BYTES
        && id
            .iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte));
    well_formed.then(|| String::from_utf8_lossy(id).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create(dir.path()).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(load_or_create(dir.path()).unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), id);
        assert!(!dir.path().join(LEDGER_ID_PARTIAL_FILE).exists());
    }

    #[test]
    fn a_damaged_id_is_refused_not_replaced() {
        for content in [
            &b""[..],
            b"0123456789abcdef0123456789abcdef",
            b"0123456789ABCDEF0123456789abcdef\n",
            b"0123456789abcdef0123456789abcde\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(LEDGER_ID_FILE), content).unwrap();
            assert!(matches!(
                load_or_create(dir.path()),
                Err(Error::CorruptLedgerId(_))
            ));
            assert_eq!(
                std::fs::read(dir.path().join(LEDGER_ID_FILE)).unwrap(),
                content
            );
        }
    }
}
