//! The IDX format of MNIST and Fashion-MNIST (gzipped or not, detected by content).

use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// A stack of 8-bit grayscale images.
#[derive(Debug, Clone)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` bytes, row-major.
    pub pixels: Vec<u8>,
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("broken gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses the IDX header; returns the dimensions and the payload.
fn parse(path: &Path, bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, usize), DataError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(
            path,
            "not an IDX file (bad magic number)",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::format(
            path,
            format!("IDX element type 0x{:02x} is not unsigned bytes", bytes[2]),
        ));
    }
    let dims = bytes[3] as usize;
    if dims != want_dims {
        return Err(DataError::format(
            path,
            format!("expected an IDX file of {want_dims} dimension(s), found {dims}"),
        ));
    }
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let need = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::format(path, "IDX dimensions overflow"))?;
    if bytes.len() - header != need {
        return Err(DataError::format(
            path,
            format!(
                "IDX payload is {} bytes but the header promises {need}; the file is truncated or corrupt",
                bytes.len() - header
            ),
        ));
    }
    Ok((shape, header))
}

/// Reads an IDX image file (`idx3-ubyte`).
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (shape, header) = parse(path, &bytes, 3)?;
    Ok(IdxImages {
        count: shape[0],
        rows: shape[1],
        cols: shape[2],
        pixels: bytes[header..].to_vec(),
    })
}

/// Reads an IDX label file (`idx1-ubyte`).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (_, header) = parse(path, &bytes, 1)?;
    Ok(bytes[header..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_bytes(dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn reads_plain_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("x-idx3-ubyte");
        std::fs::write(
            &plain,
            idx_bytes(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        )
        .unwrap();
        let img = read_images(&plain).unwrap();
        assert_eq!((img.count, img.rows, img.cols), (2, 2, 3));
        assert_eq!(img.pixels[11], 12);

        let gz = dir.path().join("y-idx1-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&idx_bytes(&[3], &[7, 8, 9])).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_labels(&gz).unwrap(), vec![7, 8, 9]);
    }

    #[test]
    fn truncated_or_foreign_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short-idx3-ubyte");
        std::fs::write(&p, idx_bytes(&[2, 2, 2], &[1, 2, 3])).unwrap();
        let err = read_images(&p).unwrap_err().to_string();
        assert!(
            err.contains("short-idx3-ubyte") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&p, b"\x89PNG....").unwrap();
        assert!(
            read_images(&p)
                .unwrap_err()
                .to_string()
                .contains("bad magic")
        );
        // A label file given where images are expected.
        std::fs::write(&p, idx_bytes(&[3], &[1, 2, 3])).unwrap();
        assert!(
            read_images(&p)
                .unwrap_err()
                .to_string()
                .contains("dimension")
        );
    }

    /// The real Fashion-MNIST files from Debian's `dataset-fashion-mnist`, when installed.
    #[test]
    fn real_fashion_mnist_labels_start_as_published() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.exists() {
            eprintln!("skipped: {} not installed", dir.display());
            return;
        }
        let labels = read_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(labels.len(), 60_000);
        // Ankle boot, T-shirt, T-shirt, Dress, T-shirt, Pullover, Sneaker, Pullover, Sandal, Sandal.
        assert_eq!(&labels[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
        let test = read_labels(&dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(&test[..5], &[9, 2, 1, 1, 6]);
        let imgs = read_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!((imgs.count, imgs.rows, imgs.cols), (10_000, 28, 28));
    }
}
