//! The German Traffic Sign Recognition Benchmark (Stallkamp et al. 2012) as published:
//! `Final_Training/Images/000NN/*.ppm` (one folder per class, each with a `GT-000NN.csv`) and
//! `Final_Test/Images/*.ppm` labelled by `GT-final_test.csv`.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::folder::ImageFolder;

/// The folder holding `Final_Training/` (`dir` itself or `dir/GTSRB`), if any.
pub fn find(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("GTSRB")]
        .into_iter()
        .find(|d| d.join("Final_Training").join("Images").is_dir())
}

/// The training images: class folders `00000` … `00042`; the per-class CSV files are not
/// counted as skipped files.
pub fn train(root: &Path) -> Result<ImageFolder, DataError> {
    let mut f = ImageFolder::open(&root.join("Final_Training").join("Images"))?;
    f.skipped.retain(|p| !is_gt_csv(p));
    Ok(f)
}

fn is_gt_csv(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("GT-") && n.ends_with(".csv"))
}

/// Where the test labels are: `GT-final_test.csv` beside the test images, in `root`, or in
/// its parent (the published zip extracts it at the top).
pub fn test_labels(root: &Path) -> Option<PathBuf> {
    let images = root.join("Final_Test").join("Images");
    let mut places = vec![images, root.to_path_buf()];
    places.extend(root.parent().map(Path::to_path_buf));
    places
        .into_iter()
        .map(|d| d.join("GT-final_test.csv"))
        .find(|p| p.is_file())
}

/// The test images, labelled by `GT-final_test.csv`, with the training set's `classes` (whose
/// names are the class numbers, zero-padded).
pub fn test(root: &Path, classes: &[String]) -> Result<ImageFolder, DataError> {
    let images = root.join("Final_Test").join("Images");
    let csv = test_labels(root).ok_or_else(|| DataError::Empty {
        path: root.to_path_buf(),
        why: "no GT-final_test.csv with the test labels; `convnet data fetch gtsrb` \
              downloads it (GTSRB_Final_Test_GT.zip)"
            .into(),
    })?;
    let text = std::fs::read_to_string(&csv).map_err(|e| DataError::io(&csv, e))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.trim().split(';').collect())
        .unwrap_or_default();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            DataError::format(&csv, format!("no `{name}` column in the header {header:?}"))
        })
    };
    let (file_col, class_col) = (col("Filename")?, col("ClassId")?);
    let mut files = Vec::new();
    for (n, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').collect();
        let bad = |why: String| DataError::format(&csv, format!("line {}: {why}", n + 1));
        let (Some(file), Some(id)) = (fields.get(file_col), fields.get(class_col)) else {
            return Err(bad(format!("expected {} fields", header.len())));
        };
        let id: usize = id
            .parse()
            .map_err(|_| bad(format!("ClassId `{id}` is not a number")))?;
        let label = classes
            .iter()
            .position(|c| c.parse::<usize>() == Ok(id))
            .ok_or_else(|| bad(format!("ClassId {id} has no training folder")))?;
        files.push((images.join(file), label));
    }
    if files.is_empty() {
        return Err(DataError::Empty {
            path: csv,
            why: "no test images listed".into(),
        });
    }
    Ok(ImageFolder::from_files(
        &images,
        files,
        classes.to_vec(),
        vec![],
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dataset::Dataset;
    use image::RgbImage;

    /// A miniature GTSRB: `classes` class folders of 2 PPM images each, 3 test images.
    pub(crate) fn write(dir: &Path, classes: usize) {
        let root = dir.join("GTSRB");
        for c in 0..classes {
            let d = root.join(format!("Final_Training/Images/{c:05}"));
            std::fs::create_dir_all(&d).unwrap();
            let mut csv = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n".to_string();
            for i in 0..2 {
                let name = format!("00000_{i:05}.ppm");
                RgbImage::new(5 + i, 6).save(d.join(&name)).unwrap();
                csv += &format!("{name};{};6;0;0;4;5;{c}\n", 5 + i);
            }
            std::fs::write(d.join(format!("GT-{c:05}.csv")), csv).unwrap();
        }
        let t = root.join("Final_Test/Images");
        std::fs::create_dir_all(&t).unwrap();
        let mut gt = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n".to_string();
        for i in 0..3 {
            let name = format!("{i:05}.ppm");
            RgbImage::new(7, 7).save(t.join(&name)).unwrap();
            gt += &format!("{name};7;7;1;1;6;6;{}\n", (i * 2) % classes);
        }
        std::fs::write(dir.join("GT-final_test.csv"), gt).unwrap();
    }

    #[test]
    fn reads_training_folders_and_labels_test_images_from_the_csv() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 3);
        let root = find(dir.path()).unwrap();
        assert_eq!(root, dir.path().join("GTSRB"));
        let tr = train(&root).unwrap();
        assert_eq!(tr.classes(), &["00000", "00001", "00002"]);
        assert_eq!(tr.len(), 6);
        assert!(tr.skipped.is_empty(), "{:?}", tr.skipped);
        assert_eq!(tr.image(0).unwrap().width(), 5);
        let te = test(&root, tr.classes()).unwrap();
        assert_eq!(te.len(), 3);
        assert_eq!((0..3).map(|i| te.label(i)).collect::<Vec<_>>(), [0, 2, 1]);
        assert!(te.image(2).is_ok());
    }

    #[test]
    fn missing_or_bad_labels_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 2);
        let root = find(dir.path()).unwrap();
        let classes = train(&root).unwrap().classes().to_vec();
        let csv = dir.path().join("GT-final_test.csv");
        std::fs::write(&csv, "Filename;ClassId\n00000.ppm;7\n").unwrap();
        let err = test(&root, &classes).err().unwrap().to_string();
        assert!(
            err.contains("GT-final_test.csv") && err.contains("ClassId 7"),
            "{err}"
        );
        std::fs::write(&csv, "Filename;Width\n00000.ppm;7\n").unwrap();
        let err = test(&root, &classes).err().unwrap().to_string();
        assert!(err.contains("ClassId"), "{err}");
        std::fs::remove_file(&csv).unwrap();
        let err = test(&root, &classes).err().unwrap().to_string();
        assert!(err.contains("data fetch gtsrb"), "{err}");
    }
}
