//! Issue 5, "done when" 3: a folder of 1,000 mixed good and bad files loads through the
//! `Loader` without ever yielding a broken image, and every bad file is named exactly once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use convnet_data::{Dataset, ImageFolder, Loader, Preprocess};
use image::{ImageFormat, Rgb, RgbImage};

/// What file `i` is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Png,
    Jpeg,
    PngNamedJpg,
    TruncatedPng,
    TruncatedJpeg,
    Garbage,
    Empty,
    TextAsImage,
    NotAnImage,
}

fn kind(i: usize) -> Kind {
    match i % 20 {
        0..=7 => Kind::Png,
        8..=11 => Kind::Jpeg,
        12 => Kind::PngNamedJpg,
        13 | 14 => Kind::TruncatedPng,
        15 | 16 => Kind::TruncatedJpeg,
        17 => Kind::Garbage,
        18 => Kind::Empty,
        _ if i % 40 == 19 => Kind::TextAsImage,
        _ => Kind::NotAnImage,
    }
}

/// The solid colour of image `i`, so a yielded sample can be checked against its file.
fn color(i: usize) -> [u8; 3] {
    [(i * 37 % 256) as u8, (i * 91 % 256) as u8, 128]
}

#[test]
fn thousand_mixed_files_load_without_a_broken_image_and_each_bad_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected_bad: Vec<PathBuf> = Vec::new();
    let mut good: HashMap<PathBuf, [u8; 3]> = HashMap::new();
    for i in 0..1000 {
        let class = dir.path().join(["cats", "dogs"][i % 2]);
        std::fs::create_dir_all(&class).unwrap();
        let img = RgbImage::from_pixel(8, 8, Rgb(color(i)));
        let encode = |format| {
            let mut b = std::io::Cursor::new(Vec::new());
            img.write_to(&mut b, format).unwrap();
            b.into_inner()
        };
        let (name, bytes) = match kind(i) {
            Kind::Png => (format!("{i}.png"), encode(ImageFormat::Png)),
            Kind::Jpeg => (format!("{i}.jpg"), encode(ImageFormat::Jpeg)),
            Kind::PngNamedJpg => (format!("{i}.jpg"), encode(ImageFormat::Png)),
            Kind::TruncatedPng => {
                let b = encode(ImageFormat::Png);
                (format!("{i}.png"), b[..b.len() / 2].to_vec())
            }
            Kind::TruncatedJpeg => {
                // Detailed enough that the cut falls inside the scan data: the bare decoder
                // fills the rest with grey and succeeds, so only convnet's check catches it.
                let noisy = RgbImage::from_fn(64, 64, |x, y| {
                    Rgb([
                        (x * 31 + y * 17 + i as u32) as u8,
                        (x * y) as u8,
                        (x ^ y) as u8,
                    ])
                });
                let mut b = std::io::Cursor::new(Vec::new());
                noisy.write_to(&mut b, ImageFormat::Jpeg).unwrap();
                let b = b.into_inner();
                let cut = b[..b.len() * 9 / 10].to_vec();
                assert!(
                    image::load_from_memory(&cut).is_ok(),
                    "decoder alone accepts it"
                );
                (format!("{i}.jpeg"), cut)
            }
            Kind::Garbage => (
                format!("{i}.png"),
                (0..200).map(|b| (b * 7) as u8).collect(),
            ),
            Kind::Empty => (format!("{i}.jpg"), vec![]),
            Kind::TextAsImage => (format!("{i}.webp"), b"not a picture".to_vec()),
            Kind::NotAnImage => (format!("{i}.txt"), b"notes".to_vec()),
        };
        let path = class.join(name);
        std::fs::write(&path, bytes).unwrap();
        match kind(i) {
            Kind::Png | Kind::Jpeg | Kind::PngNamedJpg => {
                good.insert(path, color(i));
            }
            _ => expected_bad.push(path),
        }
    }
    assert_eq!(good.len() + expected_bad.len(), 1000);
    let folder = ImageFolder::open(dir.path()).unwrap();
    let not_images = folder.skipped.clone();
    let ds: Arc<dyn Dataset> = Arc::new(folder);
    let pre = Preprocess {
        channels: 3,
        size: [8, 8],
        mean: vec![0.0; 3],
        std: vec![1.0 / 255.0; 3],
    };
    let mut loader = Loader::new(ds.clone(), pre, 32, true, 7);
    loader.workers = 2;
    let mut named: HashMap<PathBuf, usize> = HashMap::new();
    for p in &not_images {
        *named.entry(p.clone()).or_default() += 1;
    }
    let mut yielded = 0;
    for batch in loader.epoch(0) {
        for (what, why) in &batch.skipped {
            assert!(
                why.contains(what.as_str()),
                "the reason names the file: {why}"
            );
            *named.entry(PathBuf::from(what)).or_default() += 1;
        }
        for (k, &i) in batch.indices.iter().enumerate() {
            let path = ds.path(i).unwrap().to_path_buf();
            let want = good
                .get(&path)
                .unwrap_or_else(|| panic!("a bad file was yielded: {}", path.display()));
            // The sample is the file's colour (JPEG within a small tolerance): not garbage.
            let plane = 64;
            for (c, &w) in want.iter().enumerate().take(3) {
                let v = batch.images[k * 3 * plane + c * plane + 27];
                assert!(
                    (v - w as f32).abs() <= 6.0,
                    "{}: {v} vs {w}",
                    path.display()
                );
            }
            yielded += 1;
        }
    }
    assert_eq!(yielded, good.len());
    let mut bad_sorted = expected_bad.clone();
    bad_sorted.sort();
    let mut named_sorted: Vec<PathBuf> = named.keys().cloned().collect();
    named_sorted.sort();
    assert_eq!(
        named_sorted, bad_sorted,
        "every bad file named, no good one"
    );
    assert!(named.values().all(|&n| n == 1), "each named exactly once");
}
