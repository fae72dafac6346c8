//! Kaggle's dogs-vs-cats layout: one flat folder of `cat.123.jpg`, `dog.45.jpg`, … whose
//! class is the file name's prefix before the first dot.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::folder::{ImageFolder, is_image, sorted_entries};

/// The class of a `NAME.NUMBER.EXT` file name, or `None` for any other name.
fn class_of(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.split('.');
    let (class, number, ext) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none()
        && !class.is_empty()
        && !ext.is_empty()
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(class)
}

/// Opens `dir` as a flat `NAME.NUMBER.EXT` folder: `Ok(None)` when it is not one (it has
/// sub-folders, an image named otherwise, or fewer than two classes). Classes are the sorted
/// prefixes; non-image files are skipped.
pub fn open(dir: &Path) -> Result<Option<ImageFolder>, DataError> {
    let entries = sorted_entries(dir)?;
    if entries.iter().any(|p| p.is_dir()) {
        return Ok(None);
    }
    let (mut named, mut skipped): (Vec<(PathBuf, String)>, Vec<PathBuf>) = (vec![], vec![]);
    for p in entries {
        if !is_image(&p) {
            skipped.push(p);
            continue;
        }
        match class_of(&p) {
            Some(c) => {
                let c = c.to_string();
                named.push((p, c));
            }
            None => return Ok(None),
        }
    }
    let mut classes: Vec<String> = named.iter().map(|(_, c)| c.clone()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Ok(None);
    }
    let files = named
        .into_iter()
        .map(|(p, c)| {
            let label = classes.binary_search(&c).expect("class collected above");
            (p, label)
        })
        .collect();
    Ok(Some(ImageFolder::from_files(dir, files, classes, skipped)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;
    use image::RgbImage;

    #[test]
    fn classes_come_from_the_prefix_and_other_layouts_are_declined() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "cat.0.jpg",
            "cat.10.jpg",
            "dog.3.jpg",
            "dog.11.png",
            "cat.2.jpg",
        ] {
            RgbImage::new(4, 4).save(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("README.txt"), "x").unwrap();
        let ds = open(dir.path()).unwrap().unwrap();
        assert_eq!(ds.classes(), &["cat".to_string(), "dog".to_string()]);
        assert_eq!(ds.len(), 5);
        let dogs: Vec<_> = (0..5).filter(|&i| ds.label(i) == 1).collect();
        assert_eq!(dogs.len(), 2);
        assert!(ds.describe(dogs[0]).contains("dog."));
        assert_eq!(ds.skipped.len(), 1);

        // Any image not named NAME.NUMBER.EXT: not this layout.
        RgbImage::new(4, 4)
            .save(dir.path().join("bird.png"))
            .unwrap();
        assert!(open(dir.path()).unwrap().is_none());
        std::fs::remove_file(dir.path().join("bird.png")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(open(dir.path()).unwrap().is_none());

        // One class only (frames of a video): declined.
        let one = tempfile::tempdir().unwrap();
        RgbImage::new(4, 4)
            .save(one.path().join("frame.1.png"))
            .unwrap();
        assert!(open(one.path()).unwrap().is_none());
    }
}
