//! Writing files so that a crash or a full disk never leaves half a file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Marker in the names of the temporary files [`write_atomic`] writes (`.NAME.tmpPID`).
const TMP_MARK: &str = ".tmp";

/// The temporary name [`write_atomic`] uses for `name` in this process.
fn temporary_name(name: &str) -> String {
    format!(".{name}{TMP_MARK}{}", std::process::id())
}

/// Whether `name` is a temporary file left by [`write_atomic`] (`.NAME.tmpPID`).
fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rfind(TMP_MARK).is_some_and(|i| {
            let pid = &name[i + TMP_MARK.len()..];
            i > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Writes `bytes` to `path` through a temporary file in the same folder: written, flushed to
/// disk, renamed over `path`, then the folder itself is flushed so the rename survives a power
/// cut. On any error the old `path` (if any) is left untouched and the temporary is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temporary_name(&name));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

/// Flushes a folder's entries (the rename) to disk; a no-op where folders cannot be opened.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Deletes the temporary files a killed process left in `dir` (`.NAME.tmpPID`, written by
/// [`write_atomic`]) and returns their paths; run it before writing into a folder again.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary_name(&name) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Turns an I/O error into advice when the cause is one a user can fix by changing something:
/// a full disk or quota, or a read-only or forbidden folder. `None` for other errors.
pub fn io_advice(e: &std::io::Error) -> Option<&'static str> {
    // ENOSPC = 28, EDQUOT = 122, EROFS = 30 on Linux; `ErrorKind` names them on newer Rust.
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::StorageFull, _) | (_, Some(28)) => {
            Some("the disk is full: free space there, or write the run elsewhere with --out")
        }
        (std::io::ErrorKind::QuotaExceeded, _) | (_, Some(122)) => Some(
            "the disk quota is exceeded: free space there, or write the run elsewhere with --out",
        ),
        (std::io::ErrorKind::ReadOnlyFilesystem, _) | (_, Some(30)) => {
            Some("the file system is read-only: write the run elsewhere with --out")
        }
        (std::io::ErrorKind::PermissionDenied, _) => {
            Some("permission denied: write the run to a folder you own with --out")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A folder where the file should go: error, nothing left behind.
        let d = dir.path().join("sub");
        std::fs::create_dir(&d).unwrap();
        assert!(write_atomic(&d, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn stale_temporaries_are_recognised_and_removed() {
        assert!(is_temporary_name(&temporary_name("last.ckpt")));
        assert!(is_temporary_name(".history.csv.tmp123"));
        for keep in [
            ".tmp1",
            "a.tmp1",
            ".a.tmp",
            ".a.tmpx",
            ".a.tmp12b",
            "last.ckpt",
        ] {
            assert!(!is_temporary_name(keep), "{keep}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".last.ckpt.tmp4242"), b"half").unwrap();
        std::fs::write(dir.path().join("last.ckpt"), b"whole").unwrap();
        let removed = remove_stale_temporaries(dir.path()).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(dir.path().join("last.ckpt").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(
            remove_stale_temporaries(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn full_disk_and_read_only_errors_name_what_to_change() {
        let full = std::io::Error::from_raw_os_error(28);
        assert!(io_advice(&full).unwrap().contains("disk is full"));
        let ro = std::io::Error::from_raw_os_error(30);
        assert!(io_advice(&ro).unwrap().contains("read-only"));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(io_advice(&denied).unwrap().contains("--out"));
        assert!(io_advice(&std::io::Error::from(std::io::ErrorKind::NotFound)).is_none());
    }
}
