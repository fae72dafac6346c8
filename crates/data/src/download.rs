//! Downloads into a cache folder with a checksum check, written atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

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
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Md5::new();
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

/// Downloads `url` to `dest` unless a file with the right MD5 is already there.
///
/// The body goes to `dest.part`, is checked against `md5`, and only then renamed to `dest`,
/// so an interrupted or corrupt transfer never leaves a file that looks complete.
pub fn fetch(url: &str, dest: &Path, md5: &str) -> Result<(), DataError> {
    if dest.exists() && md5_file(dest)? == md5 {
        return Ok(());
    }
    let fail = |why: String| DataError::Download {
        url: url.to_string(),
        why,
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    let part = dest.with_extension("part");
    eprintln!("downloading {url}");
    let resp = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = resp.into_body().into_reader();
    let mut out = std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(&part, e))?;
    }
    out.sync_all().map_err(|e| DataError::io(&part, e))?;
    let got = hex(&h.finalize());
    if got != md5 {
        let _ = std::fs::remove_file(&part);
        return Err(fail(format!(
            "checksum mismatch: expected MD5 {md5}, got {got}"
        )));
    }
    std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `body` once per connection on 127.0.0.1; returns the base URL.
    fn serve(body: &'static [u8], connections: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(body).unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn good_download_lands_and_bad_checksum_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve(b"hello convnet", 2);
        let good = hex(&Md5::digest(b"hello convnet"));
        let dest = dir.path().join("a.bin");
        fetch(&format!("{url}/a.bin"), &dest, &good).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello convnet");

        let bad = dir.path().join("b.bin");
        let err = fetch(
            &format!("{url}/b.bin"),
            &bad,
            "00000000000000000000000000000000",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(!bad.exists() && !bad.with_extension("part").exists());
    }
}
