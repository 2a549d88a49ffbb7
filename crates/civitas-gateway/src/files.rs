//! Files written whole: whatever happens during a write (a crash, a full disk, an error of what
//! produces the contents), the path afterwards holds either the whole new file or what it held
//! before, never a part. Every file the node and the command line write for themselves or for
//! the user goes through [`write_file_whole`].

use std::{
    fs::{self, File},
    io::{Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use anyhow::{Context, bail};

/// What [`write_file_whole`] does with a file already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// The write is an error and the file stays as it is: a secret is never replaced.
    Refuse,
    /// The file is replaced, once the new one is whole.
    Replace,
}

/// The mode of an ordinary file, as `File::create` makes it: the process's umask decides.
pub const ORDINARY_FILE_MODE: u32 = 0o666;

/// Writes the file at `path` with what `write` writes into it, so that a failure or a crash at
/// any moment leaves either the whole new file there or what was there before: `write` writes
/// into a temporary file beside `path`, created with `mode` (less the umask), which is synced
/// and then moved into place, and the directory is synced so that the move survives too. If
/// `write` fails, or the file cannot be synced or placed, the temporary file is removed and the
/// error returned. `write` may stream; it is given the file itself, and buffers as it likes.
///
/// The temporary file's name is new for every write, so that two writers of one path never
/// write into each other's file; one that a crash left behind stays, hidden (`.{name}.….tmp`).
pub fn write_file_whole<T>(
    path: &Path,
    mode: u32,
    existing: Existing,
    write: impl FnOnce(&mut File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("reading randomness: {e}"))?;
    let temporary = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        u64::from_le_bytes(suffix)
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))
        .with_context(|| format!("writing {}", path.display()))?;
    let written = write(&mut file).and_then(|value| {
        file.sync_all()
            .with_context(|| format!("syncing {}", temporary.display()))?;
        Ok(value)
    });
    drop(file);
    let placed = written.and_then(|value| {
        match existing {
            Existing::Replace => fs::rename(&temporary, path),
            // A hard link, unlike a rename, refuses to replace a file that is there.
            Existing::Refuse => {
                fs::hard_link(&temporary, path).and_then(|()| fs::remove_file(&temporary))
            }
        }?;
        Ok(value)
    });
    let value = match placed {
        Ok(value) => value,
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            return Err(error).with_context(|| format!("writing {}", path.display()));
        }
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(value)
}

/// Creates `path` (which must not exist) readable by the owner only from the start, so that a
/// secret is never readable by others, not even for a moment, and writes `bytes` whole (see
/// [`write_file_whole`]). Every secret file of a node (its key, the CA key, keyed-hash secrets)
/// is written with this.
pub fn write_new_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_file_whole(path, 0o600, Existing::Refuse, |file| {
        Ok(file.write_all(bytes)?)
    })
}

/// Reads a secret file written by [`write_new_private_file`], refusing one that others than its
/// owner may read or write: whoever reads the CA key, say, can issue certificates that the
/// gateway takes as any system's identity.
pub fn read_private_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        );
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    pub(crate) fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_is_written_whole_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        write_new_private_file(&path, b"the key").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"the key");
        assert_eq!(names_in(dir.path()), ["node.key"]);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let error = write_new_private_file(&path, b"another key").unwrap_err();
        assert!(format!("{error:#}").contains("node.key"), "{error:#}");
        assert_eq!(fs::read(&path).unwrap(), b"the key", "left as it was");
        assert_eq!(names_in(dir.path()), ["node.key"]);
    }

    #[test]
    fn a_write_that_fails_partway_leaves_the_previous_file_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.jsonl");
        let failing = |file: &mut File| -> anyhow::Result<()> {
            // More than any buffer holds, so that a part reaches the disk before the error.
            file.write_all(&vec![b'x'; 256 * 1024])?;
            bail!("the store failed at row 1001")
        };

        let error =
            write_file_whole(&path, ORDINARY_FILE_MODE, Existing::Replace, failing).unwrap_err();
        assert!(
            format!("{error:#}").contains("the store failed at row 1001"),
            "{error:#}"
        );
        assert!(names_in(dir.path()).is_empty(), "no file, not even a part");

        let rows = write_file_whole(&path, ORDINARY_FILE_MODE, Existing::Replace, |file| {
            file.write_all(b"row 1\nrow 2\n")?;
            Ok(2)
        })
        .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(fs::read(&path).unwrap(), b"row 1\nrow 2\n");

        write_file_whole(&path, ORDINARY_FILE_MODE, Existing::Replace, failing).unwrap_err();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"row 1\nrow 2\n",
            "the previous file is left as it was"
        );
        assert_eq!(names_in(dir.path()), ["export.jsonl"]);

        write_file_whole(&path, ORDINARY_FILE_MODE, Existing::Replace, |file| {
            Ok(file.write_all(b"row 3\n")?)
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"row 3\n", "replaced once whole");
        assert_eq!(names_in(dir.path()), ["export.jsonl"]);
    }

    #[test]
    fn a_temporary_file_left_by_a_crash_is_not_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.json");
        let left = dir.path().join(".demo.json.0000000000000000.tmp");
        fs::write(&left, b"{\"half\":").unwrap();
        write_file_whole(&path, 0o600, Existing::Replace, |file| {
            Ok(file.write_all(b"{}")?)
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(fs::read(&left).unwrap(), b"{\"half\":");
    }
}
