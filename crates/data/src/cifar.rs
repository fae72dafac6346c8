//! CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in their binary form: records of a label byte
//! (CIFAR-100: coarse then fine label) and 3072 bytes of 32x32 RGB, channel-planar.

use std::path::{Path, PathBuf};

use crate::dataset::InMemory;
use crate::error::DataError;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes, `data_batch_1..5.bin` + `test_batch.bin`, names in `batches.meta.txt`.
    Ten,
    /// 100 classes, `train.bin` + `test.bin`, fine labels used, names in `fine_label_names.txt`.
    Hundred,
}

const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE * 3;

impl Cifar {
    /// The sub-folder the published archive extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            Cifar::Hundred => "cifar-100-binary",
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    /// Per-channel mean and std of the training images (pixels in [0, 1]).
    pub fn stats(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Cifar::Ten => ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
            Cifar::Hundred => ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
        }
    }

    fn files(self, train: bool) -> Vec<String> {
        match (self, train) {
            (Cifar::Ten, true) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            (Cifar::Ten, false) => vec!["test_batch.bin".into()],
            (Cifar::Hundred, true) => vec!["train.bin".into()],
            (Cifar::Hundred, false) => vec!["test.bin".into()],
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::Hundred => "fine_label_names.txt",
        }
    }

    /// Finds the batch files in `dir` or in its archive sub-folder.
    pub fn find(dir: &Path) -> Option<(Cifar, PathBuf)> {
        for kind in [Cifar::Ten, Cifar::Hundred] {
            for d in [dir.to_path_buf(), dir.join(kind.folder())] {
                if d.join(&kind.files(false)[0]).is_file() {
                    return Some((kind, d));
                }
            }
        }
        None
    }

    /// Class names from the names file, else `0..N`.
    pub fn classes(self, dir: &Path) -> Result<Vec<String>, DataError> {
        let path = dir.join(self.names_file());
        if !path.exists() {
            return Ok((0..self.num_classes()).map(|i| i.to_string()).collect());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() != self.num_classes() {
            return Err(DataError::format(
                &path,
                format!(
                    "{} class names, expected {}",
                    names.len(),
                    self.num_classes()
                ),
            ));
        }
        Ok(names)
    }

    /// Loads the training (`train = true`) or test batches of `dir` into memory as RGB.
    pub fn load(self, dir: &Path, train: bool) -> Result<InMemory, DataError> {
        let classes = self.classes(dir)?;
        let skip = match self {
            Cifar::Ten => 0,
            Cifar::Hundred => 1, // coarse label, then fine
        };
        let record = skip + 1 + PIXELS;
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for name in self.files(train) {
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
                return Err(DataError::format(
                    &path,
                    format!(
                        "{} bytes is not a whole number of {record}-byte records; \
                         download the archive again",
                        bytes.len()
                    ),
                ));
            }
            pixels.reserve(bytes.len());
            for (n, r) in bytes.chunks_exact(record).enumerate() {
                let label = r[skip] as usize;
                if label >= classes.len() {
                    return Err(DataError::format(
                        &path,
                        format!("record {n}: label {label} out of range"),
                    ));
                }
                labels.push(label);
                let planes = &r[skip + 1..];
                let plane = SIDE * SIDE;
                for p in 0..plane {
                    pixels.extend([planes[p], planes[plane + p], planes[2 * plane + p]]);
                }
            }
        }
        Ok(InMemory::rgb(pixels, [SIDE, SIDE], labels, classes))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dataset::Dataset;

    /// Writes a small CIFAR folder: `n` records per file, pixel values derived from the
    /// record and channel so a test can check the layout.
    pub(crate) fn write(dir: &Path, kind: Cifar, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let k = kind.num_classes();
        for (f, name) in kind
            .files(true)
            .iter()
            .chain(&kind.files(false))
            .enumerate()
        {
            let mut bytes = Vec::new();
            for r in 0..n {
                if kind == Cifar::Hundred {
                    bytes.push(((r * 7) % 20) as u8);
                }
                bytes.push(((r + f) % k) as u8);
                for c in 0..3u8 {
                    bytes.extend(std::iter::repeat_n(c * 100 + r as u8, SIDE * SIDE));
                }
            }
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let names: String = (0..k).map(|i| format!("class{i}\n")).collect();
        std::fs::write(dir.join(kind.names_file()), names + "\n").unwrap();
    }

    #[test]
    fn reads_batches_as_rgb_with_fine_labels() {
        for kind in [Cifar::Ten, Cifar::Hundred] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().join(kind.folder());
            write(&d, kind, 3);
            let (found, at) = Cifar::find(dir.path()).unwrap();
            assert_eq!((found, at.as_path()), (kind, d.as_path()));
            let train = kind.load(&d, true).unwrap();
            let files = kind.files(true).len();
            assert_eq!(train.len(), 3 * files);
            assert_eq!(train.classes().len(), kind.num_classes());
            assert_eq!(train.classes()[1], "class1");
            assert_eq!(train.label(2), 2 % kind.num_classes());
            let img = train.image(1).unwrap().into_rgb8();
            assert_eq!(img.dimensions(), (32, 32));
            assert_eq!(img.get_pixel(5, 7).0, [1, 101, 201]);
            let test = kind.load(&d, false).unwrap();
            assert_eq!(test.len(), 3);
        }
    }

    #[test]
    fn bad_batches_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Cifar::Ten, 2);
        std::fs::write(dir.path().join("test_batch.bin"), [0u8; 100]).unwrap();
        let err = Cifar::Ten
            .load(dir.path(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("test_batch.bin") && err.contains("3073"),
            "{err}"
        );
        let mut rec = vec![42u8];
        rec.extend([0u8; PIXELS]);
        std::fs::write(dir.path().join("test_batch.bin"), rec).unwrap();
        let err = Cifar::Ten
            .load(dir.path(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("label 42"), "{err}");
    }
}
