//! Resolving a `--data` argument to datasets: a named set (IDX, CIFAR, GTSRB, Flowers-102) or a
//! folder, whose layout is detected from its content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cifar::Cifar;
use crate::dataset::{Dataset, Subset, per_class_indices, split_indices};
use crate::download::cache_dir;
use crate::error::DataError;
use crate::fashion::{self, IdxSet};
use crate::folder::{ImageFolder, skipped_summary};
use crate::{fetch, flat, gtsrb};

/// ImageNet channel statistics (torchvision's), the default for colour folders.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A training set and, when there is one, its validation set.
pub type TrainVal = (Arc<dyn Dataset>, Option<Arc<dyn Dataset>>);

/// A split's name (`train`, `val`, `test`, `all`) and its data.
pub type NamedSplit = (String, Arc<dyn Dataset>);

/// How the data is laid out.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// A named IDX set with its own train and test files.
    Idx(&'static IdxSet),
    /// A downloadable set (`cifar10`, `cifar100`, `gtsrb`, `flowers102`), fetched into the
    /// cache on first use and then read as one of the layouts below.
    Named(&'static str),
    /// CIFAR-10/100 binary batches in `dir`.
    Cifar {
        /// Which CIFAR.
        kind: Cifar,
        /// The folder holding the batch files.
        dir: PathBuf,
    },
    /// GTSRB as published: `ROOT/Final_Training/Images/000NN/`, `ROOT/Final_Test/Images/`.
    Gtsrb {
        /// The folder holding `Final_Training/`.
        root: PathBuf,
    },
    /// `ROOT/train/CLASS/…` plus `ROOT/val/…` (or `valid/`) and/or `ROOT/test/…`.
    SplitFolders {
        /// The root.
        root: PathBuf,
    },
    /// `ROOT/CLASS/…` (or a flat `cat.1.jpg` folder): one folder, split by the training code.
    Folder {
        /// The root.
        root: PathBuf,
    },
}

/// Where images come from, and how the training part is cut down.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The layout found.
    pub layout: Layout,
    /// Optional JSON map of folder → class name (`cat_to_name.json`); a `cat_to_name.json` in
    /// the data folder is used when none is given.
    pub class_map: Option<PathBuf>,
    /// Keep at most this many training images per class (a seeded, class-balanced subset).
    pub per_class: Option<usize>,
}

/// Names of the validation folder of a split layout, in order of preference.
const VAL_DIRS: &[&str] = &["val", "valid"];

/// The layout of folder `root`, detected from its content.
fn detect(root: &Path) -> Layout {
    if let Some((kind, dir)) = Cifar::find(root) {
        return Layout::Cifar { kind, dir };
    }
    if let Some(root) = gtsrb::find(root) {
        return Layout::Gtsrb { root };
    }
    let has = |d: &str| root.join(d).is_dir();
    if has("train") && (VAL_DIRS.iter().any(|d| has(d)) || has("test")) {
        Layout::SplitFolders {
            root: root.to_path_buf(),
        }
    } else {
        Layout::Folder {
            root: root.to_path_buf(),
        }
    }
}

impl Layout {
    /// A few words on the layout, for messages.
    pub fn describe(&self) -> String {
        match self {
            Layout::Idx(set) => format!("{} IDX files", set.name),
            Layout::Named(name) => format!("{name} (downloaded on first use)"),
            Layout::Cifar { kind, dir } => format!(
                "CIFAR-{} binary batches in {}",
                kind.num_classes(),
                dir.display()
            ),
            Layout::Gtsrb { root } => format!("GTSRB in {}", root.display()),
            Layout::SplitFolders { root } => {
                format!("train/val/test class folders in {}", root.display())
            }
            Layout::Folder { root } => format!("class folders in {}", root.display()),
        }
    }
}

impl Source {
    /// Parses `--data`: a known set name (`fashion-mnist`, `mnist`, `cifar10`, `cifar100`,
    /// `gtsrb`, `flowers102`) or a folder path.
    pub fn parse(spec: &str, class_map: Option<&Path>) -> Result<Self, DataError> {
        let layout = if let Some(set) = fashion::by_name(spec) {
            Layout::Idx(set)
        } else if let Some(name) = fetch::NAMES.iter().find(|n| **n == spec) {
            Layout::Named(name)
        } else {
            let root = PathBuf::from(spec);
            if !root.is_dir() {
                return Err(DataError::io(
                    &root,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "not a folder, nor a known dataset ({})",
                            fetch::NAMES.join(", ")
                        ),
                    ),
                ));
            }
            detect(&root)
        };
        let class_map = class_map.map(Path::to_path_buf).or_else(|| match &layout {
            Layout::SplitFolders { root } | Layout::Folder { root } => {
                Some(root.join("cat_to_name.json")).filter(|p| p.is_file())
            }
            _ => None,
        });
        Ok(Self {
            layout,
            class_map,
            per_class: None,
        })
    }

    /// The same source, keeping at most `n` training images per class.
    pub fn with_per_class(mut self, n: Option<usize>) -> Self {
        self.per_class = n;
        self
    }

    /// The concrete layout: a named set is downloaded into the cache (when not there yet)
    /// and its folder detected.
    pub fn resolve(&self) -> Result<Layout, DataError> {
        match &self.layout {
            Layout::Named(name) => {
                let dir = fetch::fetch_dataset(name, &cache_dir(), &mut |_, _, _| {})?;
                match detect(&dir) {
                    Layout::Folder { root } => Err(DataError::Empty {
                        path: root,
                        why: format!("not a {name} folder after download; delete it and retry"),
                    }),
                    l => Ok(l),
                }
            }
            l => Ok(l.clone()),
        }
    }

    /// Opens an image folder (class sub-folders, else the flat `cat.1.jpg` layout), renames
    /// its classes by the class map, and prints one line about non-image files when `report`.
    fn folder(&self, dir: &Path, report: bool) -> Result<ImageFolder, DataError> {
        let f = match flat::open(dir)? {
            Some(f) => f,
            None => ImageFolder::open(dir)?,
        };
        if report && let Some(line) = skipped_summary(dir, &f.skipped) {
            eprintln!("{line}");
        }
        match &self.class_map {
            Some(m) => f.with_class_map(m),
            None => Ok(f),
        }
    }

    /// Training and validation sets. Validation is the `val/` (or `valid/`) folder when there
    /// is one, otherwise a seeded `val_split` fraction of the training data (none at 0). With
    /// `per_class`, the training set is then cut to that many images per class.
    pub fn train_val(&self, val_split: f64, seed: u64) -> Result<TrainVal, DataError> {
        let split = |all: Arc<dyn Dataset>| -> TrainVal {
            if val_split <= 0.0 {
                return (all, None);
            }
            let (tr, va) = split_indices(all.len(), val_split, seed);
            let val: Arc<dyn Dataset> = Arc::new(Subset::new(all.clone(), va));
            (Arc::new(Subset::new(all, tr)), Some(val))
        };
        let (train, val) = match self.resolve()? {
            Layout::Idx(set) => split(Arc::new(set.load(true)?)),
            Layout::Cifar { kind, dir } => split(Arc::new(kind.load(&dir, true)?)),
            Layout::Gtsrb { root } => split(Arc::new(self.renamed(gtsrb::train(&root)?)?)),
            Layout::Folder { root } => split(Arc::new(self.folder(&root, true)?)),
            Layout::SplitFolders { root } => {
                let train: Arc<dyn Dataset> = Arc::new(self.folder(&root.join("train"), true)?);
                match VAL_DIRS.iter().map(|d| root.join(d)).find(|d| d.is_dir()) {
                    Some(dir) => {
                        let val = self.folder(&dir, true)?;
                        check_same_classes(train.classes(), &val, &dir)?;
                        (train, Some(Arc::new(val) as Arc<dyn Dataset>))
                    }
                    None => split(train),
                }
            }
            Layout::Named(_) => unreachable!("resolve() returns a concrete layout"),
        };
        let train = match self.per_class {
            Some(n) => {
                let keep = per_class_indices(train.as_ref(), n, seed);
                Arc::new(Subset::new(train, keep)) as Arc<dyn Dataset>
            }
            None => train,
        };
        Ok((train, val))
    }

    fn renamed(&self, f: ImageFolder) -> Result<ImageFolder, DataError> {
        match &self.class_map {
            Some(m) => f.with_class_map(m),
            None => Ok(f),
        }
    }

    /// The held-out set for evaluation: the test files or batches, GTSRB's labelled test
    /// images, `test/` (else `val/`/`valid/`), or the whole folder.
    pub fn test(&self) -> Result<Arc<dyn Dataset>, DataError> {
        Ok(match self.resolve()? {
            Layout::Idx(set) => Arc::new(set.load(false)?),
            Layout::Cifar { kind, dir } => Arc::new(kind.load(&dir, false)?),
            Layout::Gtsrb { root } => {
                let classes = gtsrb::train(&root)?.classes().to_vec();
                Arc::new(self.renamed(gtsrb::test(&root, &classes)?)?)
            }
            Layout::Folder { root } => Arc::new(self.folder(&root, true)?),
            Layout::SplitFolders { root } => {
                let dir = ["test", "val", "valid"]
                    .iter()
                    .map(|d| root.join(d))
                    .find(|d| d.is_dir())
                    .expect("detected with a test or validation folder");
                Arc::new(self.folder(&dir, true)?)
            }
            Layout::Named(_) => unreachable!("resolve() returns a concrete layout"),
        })
    }

    /// Every split the data has, by name (`train`, `val`, `test`), unsplit and uncut, for
    /// `convnet data info`.
    pub fn splits(&self) -> Result<Vec<NamedSplit>, DataError> {
        let mut out: Vec<NamedSplit> = Vec::new();
        match self.resolve()? {
            Layout::Folder { root } => {
                out.push(("all".into(), Arc::new(self.folder(&root, true)?)))
            }
            Layout::SplitFolders { root } => {
                for (name, dirs) in [
                    ("train", &["train"][..]),
                    ("val", VAL_DIRS),
                    ("test", &["test"]),
                ] {
                    if let Some(d) = dirs.iter().map(|d| root.join(d)).find(|d| d.is_dir()) {
                        out.push((name.into(), Arc::new(self.folder(&d, true)?)));
                    }
                }
            }
            Layout::Gtsrb { root } => {
                let train = self.renamed(gtsrb::train(&root)?)?;
                if gtsrb::test_labels(&root).is_some() {
                    let classes = gtsrb::train(&root)?.classes().to_vec();
                    out.push((
                        "test".into(),
                        Arc::new(self.renamed(gtsrb::test(&root, &classes)?)?),
                    ));
                }
                out.insert(0, ("train".into(), Arc::new(train)));
            }
            _ => {
                out.push(("train".into(), self.train_val(0.0, 0)?.0));
                out.push(("test".into(), self.test()?));
            }
        }
        Ok(out)
    }

    /// Class names in label order (scans the training folder; loads nothing else, except
    /// that a named set not yet in the cache is downloaded).
    pub fn classes(&self) -> Result<Vec<String>, DataError> {
        match self.resolve()? {
            Layout::Idx(set) => Ok(set.classes.iter().map(|c| c.to_string()).collect()),
            Layout::Cifar { kind, dir } => kind.classes(&dir),
            Layout::Gtsrb { root } => Ok(self.renamed(gtsrb::train(&root)?)?.classes().to_vec()),
            Layout::Folder { root } => Ok(self.folder(&root, false)?.classes().to_vec()),
            Layout::SplitFolders { root } => {
                Ok(self.folder(&root.join("train"), false)?.classes().to_vec())
            }
            Layout::Named(_) => unreachable!("resolve() returns a concrete layout"),
        }
    }

    /// Default per-channel mean and std for `channels` channels: the set's own statistics
    /// where known, ImageNet's for colour folders.
    pub fn stats(&self, channels: usize) -> (Vec<f32>, Vec<f32>) {
        let cifar = match &self.layout {
            Layout::Cifar { kind, .. } => Some(*kind),
            Layout::Named("cifar10") => Some(Cifar::Ten),
            Layout::Named("cifar100") => Some(Cifar::Hundred),
            _ => None,
        };
        match (&self.layout, cifar) {
            (Layout::Idx(set), _) => (vec![set.mean; channels], vec![set.std; channels]),
            (_, Some(kind)) if channels == 3 => {
                let (m, s) = kind.stats();
                (m.to_vec(), s.to_vec())
            }
            (_, Some(kind)) => {
                let (m, s) = kind.stats();
                let avg = |v: [f32; 3]| v.iter().sum::<f32>() / 3.0;
                (vec![avg(m); channels], vec![avg(s); channels])
            }
            _ if channels == 3 => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            _ => (vec![0.5; channels], vec![0.5; channels]),
        }
    }

    /// A short name for messages and run folders.
    pub fn name(&self) -> String {
        match &self.layout {
            Layout::Idx(set) => set.name.to_string(),
            Layout::Named(name) => name.to_string(),
            Layout::Cifar { kind, .. } => format!("cifar{}", kind.num_classes()),
            Layout::Gtsrb { .. } => "gtsrb".into(),
            Layout::Folder { root } | Layout::SplitFolders { root } => root
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

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn images(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            RgbImage::new(3, 3).save(dir.join(n)).unwrap();
        }
    }

    #[test]
    fn flowers_layout_with_valid_folder_and_class_map() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for split in ["train", "valid", "test"] {
            for class in ["1", "10", "2"] {
                images(
                    &r.join(split).join(class),
                    &["image_00001.jpg", "image_00002.jpg"],
                );
            }
        }
        std::fs::write(
            r.join("cat_to_name.json"),
            r#"{"1": "pink primrose", "10": "globe thistle", "2": "hard-leaved pocket orchid"}"#,
        )
        .unwrap();
        let s = Source::parse(r.to_str().unwrap(), None).unwrap();
        assert!(matches!(s.layout, Layout::SplitFolders { .. }));
        // Folder names sort as strings, as torchvision's ImageFolder sorts them.
        assert_eq!(
            s.classes().unwrap(),
            [
                "pink primrose",
                "globe thistle",
                "hard-leaved pocket orchid"
            ]
        );
        let (train, val) = s.train_val(0.5, 1).unwrap();
        assert_eq!(train.len(), 6);
        assert_eq!(val.unwrap().len(), 6, "valid/ is the validation set");
        assert_eq!(s.test().unwrap().len(), 6);
    }

    #[test]
    fn per_class_cuts_training_data_only() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..10).map(|i| format!("{i}.png")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        images(&dir.path().join("a"), &names);
        images(&dir.path().join("b"), &names[..4]);
        let s = Source::parse(dir.path().to_str().unwrap(), None)
            .unwrap()
            .with_per_class(Some(3));
        let (train, val) = s.train_val(0.0, 5).unwrap();
        assert!(val.is_none());
        assert_eq!(train.len(), 6);
        assert_eq!((0..6).filter(|&i| train.label(i) == 0).count(), 3);
        assert_eq!(s.test().unwrap().len(), 14);
    }

    #[test]
    fn detects_flat_cifar_and_gtsrb_folders() {
        let flat = tempfile::tempdir().unwrap();
        images(flat.path(), &["cat.1.jpg", "cat.2.jpg", "dog.1.jpg"]);
        let s = Source::parse(flat.path().to_str().unwrap(), None).unwrap();
        assert_eq!(s.classes().unwrap(), ["cat", "dog"]);
        assert_eq!(s.train_val(0.0, 0).unwrap().0.len(), 3);

        let c = tempfile::tempdir().unwrap();
        crate::cifar::tests::write(c.path(), Cifar::Hundred, 4);
        let s = Source::parse(c.path().to_str().unwrap(), None).unwrap();
        assert_eq!(s.classes().unwrap().len(), 100);
        assert_eq!(s.test().unwrap().len(), 4);
        assert_eq!(s.stats(3).0, Cifar::Hundred.stats().0.to_vec());

        let g = tempfile::tempdir().unwrap();
        crate::gtsrb::tests::write(g.path(), 3);
        let s = Source::parse(g.path().to_str().unwrap(), None).unwrap();
        assert_eq!(s.name(), "gtsrb");
        assert_eq!(s.classes().unwrap().len(), 3);
        assert_eq!(s.test().unwrap().len(), 3);
        let names: Vec<String> = s.splits().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["train", "test"]);
    }
}
