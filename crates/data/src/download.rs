//! Downloads into a cache folder with a checksum check, written atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::error::DataError;

/// convnet's cache folder: `$CONVNET_CACHE`, else `$XDG_CACHE_HOME/convnet`, else
/// `~/.cache/convnet`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CONVNET_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("convnet");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".cache").join("convnet")
}

/// Hex MD5 of a file.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    digest_file::<Md5>(path)
}

/// Hex digest of a file, read in 64 KiB blocks.
fn digest_file<H: Digest>(path: &Path) -> Result<String, DataError> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = H::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` to `dest` unless a file with the right MD5 is already there (see
/// [`fetch_with`]; no progress reporting).
pub fn fetch(url: &str, dest: &Path, md5: &str) -> Result<(), DataError> {
    fetch_with(url, dest, md5, &mut |_, _| {})
}

/// The partial file of a download to `dest`: `dest` with `.part` appended.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest` unless a file with the right MD5 is already there, calling
/// `progress(bytes_done, total)` as data arrives (the library draws nothing itself).
///
/// The body goes to `dest.part`, is checked against `md5`, and only then renamed to `dest`,
/// so an interrupted or corrupt transfer never leaves a file that looks complete. An
/// interrupted transfer leaves the `.part` file; the next call resumes it with an HTTP `Range`
/// request (starting over when the server ignores the range). A checksum mismatch deletes the
/// `.part` file.
pub fn fetch_with(
    url: &str,
    dest: &Path,
    md5: &str,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), DataError> {
    fetch_checked(url, dest, Checksum::Md5(md5), progress)
}

/// What a downloaded file must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum<'a> {
    /// The whole hex MD5.
    Md5(&'a str),
    /// The leading hex digits of the SHA-256 (torchvision publishes the first 8 in its file
    /// names, e.g. `resnet18-f37072fd.pth`); the file's SHA-256 must start with them.
    Sha256Prefix(&'a str),
}

impl Checksum<'_> {
    fn name(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "MD5",
            Checksum::Sha256Prefix(_) => "SHA-256 prefix",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Md5(h) | Checksum::Sha256Prefix(h) => h,
        }
    }

    fn hasher(&self) -> Hasher {
        match self {
            Checksum::Md5(_) => Hasher::Md5(Md5::new()),
            Checksum::Sha256Prefix(_) => Hasher::Sha256(Sha256::new()),
        }
    }

    /// Whether the hex digest `got` satisfies this checksum.
    fn accepts(&self, got: &str) -> bool {
        match self {
            Checksum::Md5(h) => got.eq_ignore_ascii_case(h),
            Checksum::Sha256Prefix(p) => {
                !p.is_empty() && got.len() >= p.len() && got[..p.len()].eq_ignore_ascii_case(p)
            }
        }
    }

    /// Whether the file at `path` satisfies this checksum.
    pub fn matches_file(&self, path: &Path) -> Result<bool, DataError> {
        let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut h = self.hasher();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(self.accepts(&h.hex()))
    }
}

/// An MD5 or SHA-256 in progress.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
        }
    }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    digest_file::<Sha256>(path)
}

/// [`fetch_with`] for any [`Checksum`]: downloads `url` to `dest` (resumable, through
/// `dest.part`) unless a file satisfying `check` is already there.
pub fn fetch_checked(
    url: &str,
    dest: &Path,
    check: Checksum<'_>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), DataError> {
    if dest.exists() && check.matches_file(dest)? {
        return Ok(());
    }
    let fail = |why: String| DataError::Download {
        url: url.to_string(),
        why,
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    let part = part_path(dest);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut request = ureq::get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let resp = match request.call() {
        // The part is already whole (or longer than the file): start over.
        Err(ureq::Error::StatusCode(416)) if have > 0 => {
            std::fs::remove_file(&part).map_err(|e| DataError::io(&part, e))?;
            return fetch_checked(url, dest, check, progress);
        }
        r => r.map_err(|e| fail(e.to_string()))?,
    };
    let resumed = have > 0 && resp.status().as_u16() == 206;
    let length = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut h = check.hasher();
    let mut out = if resumed {
        // Hash what is already there, then append.
        let mut f = std::fs::File::open(&part).map_err(|e| DataError::io(&part, e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| DataError::io(&part, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        eprintln!("resuming {url} at {have} bytes");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&part)
            .map_err(|e| DataError::io(&part, e))?
    } else {
        eprintln!("downloading {url}");
        std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?
    };
    let mut done = if resumed { have } else { 0 };
    let total = length.map(|l| l + done);
    progress(done, total);
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = out.sync_all();
                return Err(fail(format!(
                    "{e} after {done} bytes; {} is kept and the next attempt resumes it",
                    part.display()
                )));
            }
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(&part, e))?;
        done += n as u64;
        progress(done, total);
    }
    out.sync_all().map_err(|e| DataError::io(&part, e))?;
    drop(out);
    if let Some(t) = total
        && done < t
    {
        return Err(fail(format!(
            "connection closed after {done} of {t} bytes; {} is kept and the next attempt resumes it",
            part.display()
        )));
    }
    let got = h.hex();
    if !check.accepts(&got) {
        let _ = std::fs::remove_file(&part);
        return Err(fail(format!(
            "checksum mismatch: expected {} {}, got {got}; the partial file was deleted, try again",
            check.name(),
            check.expected()
        )));
    }
    std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What the test server does with one request.
    #[derive(Clone, Copy)]
    enum Reply {
        /// The whole body (honouring `Range` when `ranges`).
        Whole { ranges: bool },
        /// Announce the whole length but close after `n` bytes.
        CutAfter(usize),
    }

    /// Serves `body` on 127.0.0.1, one connection per entry of `replies`, and records the
    /// `Range` header of each request; returns the base URL and that record.
    fn serve(
        body: &'static [u8],
        replies: Vec<Reply>,
    ) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (stream, reply) in listener.incoming().zip(replies) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut range = None;
                while reader.read_line(&mut line).unwrap() > 2 {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = Some(v.trim().trim_end_matches('-').to_string());
                    }
                    line.clear();
                }
                log.lock().unwrap().push(range.clone());
                let (status, from, upto) = match reply {
                    Reply::Whole { ranges: true } if range.is_some() => {
                        let from: usize = range.unwrap().parse().unwrap();
                        ("206 Partial Content", from, body.len())
                    }
                    Reply::Whole { .. } => ("200 OK", 0, body.len()),
                    Reply::CutAfter(n) => ("200 OK", 0, n),
                };
                let len = match reply {
                    Reply::CutAfter(_) => body.len(),
                    _ => upto - from,
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).unwrap();
                let _ = stream.write_all(&body[from..upto]);
                let _ = stream.flush();
            }
        });
        (format!("http://{addr}"), seen)
    }

    const BODY: &[u8] = b"convnet test payload: 0123456789abcdefghijklmnopqrstuvwxyz";

    fn md5(bytes: &[u8]) -> String {
        hex(&Md5::digest(bytes))
    }

    #[test]
    fn good_download_lands_and_bad_checksum_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (url, _) = serve(BODY, vec![Reply::Whole { ranges: false }; 2]);
        let dest = dir.path().join("a.bin");
        let mut calls = Vec::new();
        fetch_with(&format!("{url}/a.bin"), &dest, &md5(BODY), &mut |d, t| {
            calls.push((d, t))
        })
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), BODY);
        let last = *calls.last().unwrap();
        assert_eq!(last, (BODY.len() as u64, Some(BODY.len() as u64)));

        let bad = dir.path().join("b.bin");
        let err = fetch(
            &format!("{url}/b.bin"),
            &bad,
            "00000000000000000000000000000000",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(!bad.exists() && !part_path(&bad).exists());
    }

    #[test]
    fn interrupted_transfer_keeps_the_part_and_resumes_with_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let half = BODY.len() / 2;
        let (url, seen) = serve(
            BODY,
            vec![Reply::CutAfter(half), Reply::Whole { ranges: true }],
        );
        let dest = dir.path().join("c.tar.gz");
        let url = format!("{url}/c.tar.gz");
        let err = fetch(&url, &dest, &md5(BODY)).unwrap_err().to_string();
        assert!(err.contains("resumes"), "{err}");
        assert!(!dest.exists());
        assert_eq!(std::fs::read(part_path(&dest)).unwrap(), &BODY[..half]);

        fetch(&url, &dest, &md5(BODY)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), BODY);
        assert!(!part_path(&dest).exists());
        assert_eq!(*seen.lock().unwrap(), vec![None, Some(half.to_string())]);
    }

    #[test]
    fn a_server_ignoring_range_restarts_the_download_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d.bin");
        std::fs::write(part_path(&dest), b"stale bytes").unwrap();
        let (url, seen) = serve(BODY, vec![Reply::Whole { ranges: false }]);
        fetch(&format!("{url}/d.bin"), &dest, &md5(BODY)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), BODY);
        assert_eq!(seen.lock().unwrap()[0].as_deref(), Some("11"));
    }

    #[test]
    fn sha256_prefix_download_is_cached_and_a_wrong_prefix_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let full = hex(&Sha256::digest(BODY));
        // One connection only: the second fetch must be served from the cache.
        let (url, seen) = serve(BODY, vec![Reply::Whole { ranges: false }]);
        let dest = dir.path().join("w-12345678.pth");
        let check = Checksum::Sha256Prefix(&full[..8]);
        fetch_checked(&format!("{url}/w.pth"), &dest, check, &mut |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), BODY);
        assert_eq!(sha256_file(&dest).unwrap(), full);
        fetch_checked(&format!("{url}/w.pth"), &dest, check, &mut |_, _| {}).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);

        let (url, _) = serve(BODY, vec![Reply::Whole { ranges: false }]);
        let bad = dir.path().join("x.pth");
        let wrong = if full.starts_with('0') { "1" } else { "0" }.repeat(8);
        let err = fetch_checked(
            &format!("{url}/x.pth"),
            &bad,
            Checksum::Sha256Prefix(&wrong),
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SHA-256 prefix") && err.contains(&full),
            "{err}"
        );
        assert!(!bad.exists() && !part_path(&bad).exists());
    }
}
