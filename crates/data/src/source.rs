//! Resolving a `--data` argument to datasets: a named IDX set or an image folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dataset::{Dataset, Subset, split_indices};
use crate::error::DataError;
use crate::fashion::{self, IdxSet};
use crate::folder::ImageFolder;

/// ImageNet channel statistics (torchvision's), the default for colour folders.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A training set and, when there is one, its validation set.
pub type TrainVal = (Arc<dyn Dataset>, Option<Arc<dyn Dataset>>);

/// Where images come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A named IDX set with its own train and test files.
    Idx(&'static IdxSet),
    /// `ROOT/train/CLASS/…` plus `ROOT/val/…` and/or `ROOT/test/…`.
    SplitFolders {
        /// The root.
        root: PathBuf,
        /// Optional JSON map of folder → class name.
        class_map: Option<PathBuf>,
    },
    /// `ROOT/CLASS/…`: one folder, split by the training code.
    Folder {
        /// The root.
        root: PathBuf,
        /// Optional JSON map of folder → class name.
        class_map: Option<PathBuf>,
    },
}

impl Source {
    /// Parses `--data`: a known set name (`fashion-mnist`, `mnist`) or a folder path.
    pub fn parse(spec: &str, class_map: Option<&Path>) -> Result<Self, DataError> {
        if let Some(set) = fashion::by_name(spec) {
            return Ok(Source::Idx(set));
        }
        let root = PathBuf::from(spec);
        if !root.is_dir() {
            let names: Vec<&str> = fashion::IDX_SETS.iter().map(|s| s.name).collect();
            return Err(DataError::io(
                &root,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("not a folder, nor a known dataset ({})", names.join(", ")),
                ),
            ));
        }
        let class_map = class_map.map(Path::to_path_buf);
        let has = |d: &str| root.join(d).is_dir();
        if has("train") && (has("val") || has("test")) {
            Ok(Source::SplitFolders { root, class_map })
        } else {
            Ok(Source::Folder { root, class_map })
        }
    }

    fn folder(root: &Path, class_map: &Option<PathBuf>) -> Result<ImageFolder, DataError> {
        let f = ImageFolder::open(root)?;
        match class_map {
            Some(m) => f.with_class_map(m),
            None => Ok(f),
        }
    }

    /// Training and validation sets. Validation is the `val/` folder when there is one,
    /// otherwise a seeded `val_split` fraction of the training data (none at 0).
    pub fn train_val(&self, val_split: f64, seed: u64) -> Result<TrainVal, DataError> {
        let split = |all: Arc<dyn Dataset>| -> TrainVal {
            if val_split <= 0.0 {
                return (all, None);
            }
            let (tr, va) = split_indices(all.len(), val_split, seed);
            let val: Arc<dyn Dataset> = Arc::new(Subset::new(all.clone(), va));
            (Arc::new(Subset::new(all, tr)), Some(val))
        };
        match self {
            Source::Idx(set) => Ok(split(Arc::new(set.load(true)?))),
            Source::Folder { root, class_map } => {
                Ok(split(Arc::new(Self::folder(root, class_map)?)))
            }
            Source::SplitFolders { root, class_map } => {
                let train: Arc<dyn Dataset> =
                    Arc::new(Self::folder(&root.join("train"), class_map)?);
                if root.join("val").is_dir() {
                    let val = Self::folder(&root.join("val"), class_map)?;
                    check_same_classes(train.classes(), &val, &root.join("val"))?;
                    Ok((train, Some(Arc::new(val))))
                } else {
                    Ok(split(train))
                }
            }
        }
    }

    /// The held-out set for evaluation: the IDX test files, `test/` (else `val/`), or the whole
    /// folder.
    pub fn test(&self) -> Result<Arc<dyn Dataset>, DataError> {
        match self {
            Source::Idx(set) => Ok(Arc::new(set.load(false)?)),
            Source::Folder { root, class_map } => Ok(Arc::new(Self::folder(root, class_map)?)),
            Source::SplitFolders { root, class_map } => {
                let dir = if root.join("test").is_dir() {
                    root.join("test")
                } else {
                    root.join("val")
                };
                Ok(Arc::new(Self::folder(&dir, class_map)?))
            }
        }
    }

    /// Class names in label order (scans the training folder; loads nothing else).
    pub fn classes(&self) -> Result<Vec<String>, DataError> {
        match self {
            Source::Idx(set) => Ok(set.classes.iter().map(|c| c.to_string()).collect()),
            Source::Folder { root, class_map } => {
                Ok(Self::folder(root, class_map)?.classes().to_vec())
            }
            Source::SplitFolders { root, class_map } => {
                Ok(Self::folder(&root.join("train"), class_map)?
                    .classes()
                    .to_vec())
            }
        }
    }

    /// Default per-channel mean and std for `channels` channels.
    pub fn stats(&self, channels: usize) -> (Vec<f32>, Vec<f32>) {
        match self {
            Source::Idx(set) => (vec![set.mean; channels], vec![set.std; channels]),
            _ if channels == 3 => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            _ => (vec![0.5; channels], vec![0.5; channels]),
        }
    }

    /// A short name for messages and run folders.
    pub fn name(&self) -> String {
        match self {
            Source::Idx(set) => set.name.to_string(),
            Source::Folder { root, .. } | Source::SplitFolders { root, .. } => root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into()),
        }
    }
}

/// Refuses a validation folder whose classes differ from training's, since labels would not
/// line up.
fn check_same_classes(train: &[String], val: &ImageFolder, path: &Path) -> Result<(), DataError> {
    if train != val.classes() {
        return Err(DataError::format(
            path,
            format!(
                "classes {:?} differ from the training classes {:?}",
                val.classes(),
                train
            ),
        ));
    }
    Ok(())
}
