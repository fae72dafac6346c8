//! MNIST and Fashion-MNIST: found in Debian's dataset package, the cache, or downloaded.

use std::path::{Path, PathBuf};

use crate::dataset::InMemory;
use crate::download::{cache_dir, fetch};
use crate::error::DataError;
use crate::idx;

/// One of the IDX datasets convnet knows by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdxSet {
    /// Name on the command line.
    pub name: &'static str,
    /// Class names, in label order.
    pub classes: &'static [&'static str],
    /// Where Debian's package puts the files.
    pub system_dir: &'static str,
    /// Base URL of the published files.
    pub url: &'static str,
    /// `(file, published MD5)` for train images, train labels, test images, test labels.
    pub files: [(&'static str, &'static str); 4],
    /// Per-channel mean of the training images (pixels scaled to [0, 1]).
    pub mean: f32,
    /// Per-channel standard deviation of the training images.
    pub std: f32,
}

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), convnet's default data.
pub const FASHION_MNIST: IdxSet = IdxSet {
    name: "fashion-mnist",
    classes: &[
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    system_dir: "/usr/share/datasets/fashion-mnist",
    url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    files: [
        (
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ],
    mean: 0.2860,
    std: 0.3530,
};

/// MNIST (LeCun et al. 1998), from torchvision's mirror.
pub const MNIST: IdxSet = IdxSet {
    name: "mnist",
    classes: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    system_dir: "/usr/share/datasets/mnist",
    url: "https://ossci-datasets.s3.amazonaws.com/mnist",
    files: [
        (
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ],
    mean: 0.1307,
    std: 0.3081,
};

/// The IDX sets known by name.
pub const IDX_SETS: &[IdxSet] = &[FASHION_MNIST, MNIST];

/// The set called `name`, if it is one of [`IDX_SETS`].
pub fn by_name(name: &str) -> Option<&'static IdxSet> {
    IDX_SETS.iter().find(|s| s.name == name)
}

impl IdxSet {
    /// The folder holding all four files: the system package's, else the cache (downloading
    /// what is missing there, with checksums).
    pub fn locate(&self) -> Result<PathBuf, DataError> {
        let system = Path::new(self.system_dir);
        if self.files.iter().all(|(f, _)| system.join(f).exists()) {
            return Ok(system.to_path_buf());
        }
        let cache = cache_dir().join(self.name);
        for (file, md5) in self.files {
            let dest = cache.join(file);
            if !dest.exists() {
                fetch(&format!("{}/{file}", self.url), &dest, md5)?;
            }
        }
        Ok(cache)
    }

    /// Loads the training (`train = true`) or test split into memory.
    pub fn load(&self, train: bool) -> Result<InMemory, DataError> {
        let dir = self.locate()?;
        let (imgs, labels) = if train { (0, 1) } else { (2, 3) };
        let images = idx::read_images(&dir.join(self.files[imgs].0))?;
        let label_path = dir.join(self.files[labels].0);
        let labels = idx::read_labels(&label_path)?;
        if labels.len() != images.count {
            return Err(DataError::format(
                label_path,
                format!("{} labels for {} images", labels.len(), images.count),
            ));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= self.classes.len()) {
            return Err(DataError::format(
                label_path,
                format!("label {bad} out of range"),
            ));
        }
        Ok(InMemory::gray(
            images.pixels,
            [images.rows, images.cols],
            labels.into_iter().map(usize::from).collect(),
            self.classes.iter().map(|s| s.to_string()).collect(),
        ))
    }
}
