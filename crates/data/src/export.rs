//! Writing a dataset out as an image folder (PNG per sample, one sub-folder per class).

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::DataError;

/// Folder name of class `label`: the zero-padded label, then the name with path separators
/// replaced, so that sorted folder order is label order (`0_T-shirt_top`, `1_Trouser`, …).
pub fn class_folder(label: usize, name: &str, num_classes: usize) -> String {
    let width = (num_classes.max(2) - 1).to_string().len();
    let clean: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    format!("{label:0width$}_{clean}")
}

/// Writes up to `per_class` samples of each class (all when `None`) of `ds` as
/// `out/CLASS/INDEX.png`, plus `out/cat_to_name.json` mapping folders to class names.
/// Returns how many images were written.
pub fn export_png(
    ds: &dyn Dataset,
    out: &Path,
    per_class: Option<usize>,
) -> Result<usize, DataError> {
    let classes = ds.classes();
    let folders: Vec<String> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| class_folder(i, c, classes.len()))
        .collect();
    for f in &folders {
        std::fs::create_dir_all(out.join(f)).map_err(|e| DataError::io(out.join(f), e))?;
    }
    let mut counts = vec![0usize; classes.len()];
    let width = ds.len().to_string().len();
    for i in 0..ds.len() {
        let label = ds.label(i);
        if per_class.is_some_and(|n| counts[label] >= n) {
            continue;
        }
        let path = out.join(&folders[label]).join(format!("{i:0width$}.png"));
        ds.image(i)?
            .save(&path)
            .map_err(|e| DataError::format(&path, e.to_string()))?;
        counts[label] += 1;
    }
    let map: std::collections::BTreeMap<&str, &str> = folders
        .iter()
        .map(String::as_str)
        .zip(classes.iter().map(String::as_str))
        .collect();
    let json = serde_json::to_string_pretty(&map).expect("map serialises");
    let path = out.join("cat_to_name.json");
    crate::files::write_atomic(&path, json.as_bytes()).map_err(|e| DataError::io(&path, e))?;
    Ok(counts.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::InMemory;
    use crate::folder::ImageFolder;
    use crate::transform::Preprocess;

    /// An exported folder, read back with its class map, gives the same classes, labels and
    /// bit-identical model inputs as the in-memory source: the two data paths are one.
    #[test]
    fn exported_folder_reads_back_identically() {
        let n = 24;
        let pixels: Vec<u8> = (0..n * 36).map(|i| (i * 7 % 256) as u8).collect();
        let classes: Vec<String> = vec!["T-shirt/top".into(), "Bag".into(), "Coat".into()];
        let src = InMemory::gray(
            pixels,
            [6, 6],
            (0..n).map(|i| (i * 5) % 3).collect(),
            classes.clone(),
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(export_png(&src, dir.path(), None).unwrap(), n);
        let back = ImageFolder::open(dir.path())
            .unwrap()
            .with_class_map(&dir.path().join("cat_to_name.json"))
            .unwrap();
        assert_eq!(back.classes(), &classes[..]);
        let pre = Preprocess {
            channels: 1,
            size: [6, 6],
            mean: vec![0.3],
            std: vec![0.2],
        };
        for j in 0..back.len() {
            let name = back
                .path(j)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let i: usize = name.parse().unwrap();
            assert_eq!(back.label(j), src.label(i));
            let (mut a, mut b) = (vec![0.0; 36], vec![0.0; 36]);
            src.load_into(i, &pre, &mut a).unwrap();
            back.load_into(j, &pre, &mut b).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(
            export_png(&src, &dir.path().join("few"), Some(2)).unwrap(),
            6
        );
    }
}
