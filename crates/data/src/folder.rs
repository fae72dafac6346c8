//! ImageFolder: a folder of class sub-folders of images (torchvision `ImageFolder`, Keras
//! `flow_from_directory`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::dataset::Dataset;
use crate::error::DataError;

/// Largest image accepted before decoding, in pixels (guards against decompression bombs);
/// `--max-pixels` raises it for the process ([`set_limits`]).
pub const MAX_PIXELS: u64 = 178_956_970;
/// Largest image file read, in bytes; `--max-image-bytes` raises it ([`set_limits`]).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

static PIXEL_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(MAX_PIXELS);
static BYTE_LIMIT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(MAX_IMAGE_BYTES);

/// Overrides the image size limits ([`MAX_PIXELS`], [`MAX_IMAGE_BYTES`]) for this process;
/// `None` keeps a limit as it is. Set once at start-up, before any image is read.
pub fn set_limits(pixels: Option<u64>, bytes: Option<u64>) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(p) = pixels {
        PIXEL_LIMIT.store(p, Relaxed);
    }
    if let Some(b) = bytes {
        BYTE_LIMIT.store(b, Relaxed);
    }
}

/// The image size limits in force: (pixels, bytes).
pub fn limits() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (PIXEL_LIMIT.load(Relaxed), BYTE_LIMIT.load(Relaxed))
}

/// Extensions read without sniffing; anything else is sniffed for a known image signature.
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "pgm", "ppm", "pbm", "pnm",
];

/// A scanned class-per-folder dataset. Images are decoded lazily, on the loader's workers.
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<(PathBuf, usize)>,
    classes: Vec<String>,
    /// Files that were skipped as not being images (hidden files, other formats).
    pub skipped: Vec<PathBuf>,
}

/// Whether `path` looks like an image: a known extension, or a known signature.
pub(crate) fn is_image(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    if ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
        return true;
    }
    let mut head = [0u8; 32];
    match std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)) {
        Ok(n) => image::guess_format(&head[..n]).is_ok(),
        Err(_) => false,
    }
}

/// Sorted non-hidden entries of `dir`.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// All image files under `dir` (recursively, hidden entries skipped), sorted by path, and
/// the other (non-image) files found, which callers report with [`skipped_summary`].
pub fn walk_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let (mut images, mut others) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in sorted_entries(&d)? {
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                images.push(p);
            } else {
                others.push(p);
            }
        }
    }
    images.sort();
    Ok((images, others))
}

impl ImageFolder {
    /// Scans `root`: each non-hidden sub-folder is a class (sorted by name), each image file in
    /// it (recursively) a sample. An empty class folder is an error, since its label would
    /// silently never be trained.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        if !root.is_dir() {
            return Err(DataError::io(
                root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
            ));
        }
        let class_dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(DataError::Empty {
                path: root.to_path_buf(),
                why: "no class sub-folders; expected ROOT/CLASS_NAME/IMAGE files".into(),
            });
        }
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let mut classes = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            let (images, others) = walk_images(dir)?;
            skipped.extend(others);
            if images.is_empty() {
                return Err(DataError::Empty {
                    path: dir.clone(),
                    why: "class folder has no images; add images or remove the folder".into(),
                });
            }
            files.extend(images.into_iter().map(|p| (p, label)));
            classes.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
        Ok(Self {
            root: root.to_path_buf(),
            files,
            classes,
            skipped,
        })
    }

    /// A dataset of files whose labels were found another way (a CSV, file names): `files`
    /// are `(path, label)` with labels indexing `classes`; `skipped` are the non-images seen.
    pub fn from_files(
        root: &Path,
        files: Vec<(PathBuf, usize)>,
        classes: Vec<String>,
        skipped: Vec<PathBuf>,
    ) -> Self {
        debug_assert!(files.iter().all(|(_, l)| *l < classes.len()));
        Self {
            root: root.to_path_buf(),
            files,
            classes,
            skipped,
        }
    }

    /// Replaces folder names by display names from a JSON object `{"folder": "name", …}`
    /// (seed 003's `cat_to_name.json`). Folders missing from the map keep their name.
    pub fn with_class_map(mut self, json: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(json).map_err(|e| DataError::io(json, e))?;
        let map: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
            DataError::format(
                json,
                format!("expected a JSON object of folder → class name: {e}"),
            )
        })?;
        for c in &mut self.classes {
            if let Some(name) = map.get(c.as_str()) {
                *c = name.clone();
            }
        }
        Ok(self)
    }

    /// The scanned root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of sample `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.files[index].0
    }
}

/// One line about the files that were not images (hidden files are not counted), or `None`
/// when there were none: printed once per folder instead of one warning per file.
pub fn skipped_summary(root: &Path, skipped: &[PathBuf]) -> Option<String> {
    let first = skipped.first()?;
    let more = match skipped.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    Some(format!(
        "note: {}: skipped {} file(s) that are not images ({}{more})",
        root.display(),
        skipped.len(),
        first.display()
    ))
}

/// Decodes one image file, detected by content, refusing absurd dimensions before decoding
/// (decompression bombs), refusing truncated JPEGs, and applying EXIF orientation.
pub fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    // One open: the size comes from the open file, which is then read whole.
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let size = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if size > limits().1 {
        return Err(DataError::Image {
            path: path.to_path_buf(),
            why: format!(
                "{size} bytes exceeds the limit of {} bytes; raise it with --max-image-bytes",
                limits().1
            ),
        });
    }
    let mut bytes = Vec::with_capacity(size as usize + 1);
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes).map_err(|why| DataError::Image {
        path: path.to_path_buf(),
        why,
    })
}

/// What the header of an image says, read without decoding the pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The format, found from the content.
    pub format: ImageFormat,
    /// Width and height as stored (before EXIF orientation).
    pub size: (u32, u32),
    /// Colour type as stored in the file, e.g. `Rgb8`, `L16`, `Cmyk8`.
    pub color: String,
}

fn open_decoder(bytes: &[u8]) -> Result<(ImageFormat, impl ImageDecoder + '_), String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader
        .format()
        .ok_or("unknown format; expected PNG, JPEG, BMP, GIF, WebP, TIFF or PNM")?;
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    let max_pixels = limits().0;
    if (w as u64) * (h as u64) > max_pixels {
        return Err(format!(
            "{w}x{h} pixels exceeds the limit of {max_pixels}; refused before decoding (raise it with --max-pixels)"
        ));
    }
    if w == 0 || h == 0 {
        return Err(format!("{w}x{h}: empty image"));
    }
    Ok((format, decoder))
}

/// Reads an image's header: format, size and colour type, without decoding pixels.
pub fn header(bytes: &[u8]) -> Result<Header, String> {
    let (format, decoder) = open_decoder(bytes)?;
    Ok(Header {
        format,
        size: decoder.dimensions(),
        color: format!("{:?}", decoder.original_color_type()),
    })
}

/// [`decode`] on bytes in memory; the error is the reason, without the path.
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, String> {
    let (format, mut decoder) = open_decoder(bytes)?;
    if format == ImageFormat::Jpeg {
        jpeg_complete(bytes)?;
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// JPEG decoders fill a truncated scan with grey instead of failing; like PIL without
/// `LOAD_TRUNCATED_IMAGES`, a JPEG whose last scan (`FFDA`) is not followed by an end marker
/// (`FFD9`) is refused. (Inside entropy-coded data `FF` is always followed by `00` or a
/// restart marker, so neither pair occurs by chance.)
fn jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    let marker = |m: u8| move |w: &[u8]| w[0] == 0xFF && w[1] == m;
    // The last end marker is near the end of the file and the first scan near its start, so
    // this reads a few bytes at either end instead of the whole file: a scan after the last
    // end marker is looked for only after it.
    let complete = bytes.windows(2).rposition(marker(0xD9)).is_some_and(|eoi| {
        !bytes[eoi..].windows(2).any(marker(0xDA)) && bytes[..eoi].windows(2).any(marker(0xDA))
    });
    if complete {
        Ok(())
    } else {
        Err("truncated JPEG (no end-of-image marker after the last scan)".into())
    }
}

/// Unlabelled image files (for prediction): the files given, and the images found under the
/// folders given, in order.
pub struct ImageFiles {
    files: Vec<PathBuf>,
    /// Inputs that were skipped as not being images.
    pub skipped: Vec<PathBuf>,
}

impl ImageFiles {
    /// Collects `inputs`; a missing path is an error naming it.
    pub fn collect(inputs: &[PathBuf]) -> Result<Self, DataError> {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for input in inputs {
            if input.is_dir() {
                let (images, others) = walk_images(input)?;
                files.extend(images);
                skipped.extend(others);
            } else if input.exists() {
                files.push(input.clone());
            } else {
                return Err(DataError::io(
                    input,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
                ));
            }
        }
        Ok(Self { files, skipped })
    }

    /// Path of file `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.files[index]
    }
}

impl Dataset for ImageFiles {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn classes(&self) -> &[String] {
        &[]
    }
    fn label(&self, _index: usize) -> usize {
        0
    }
    fn describe(&self, index: usize) -> String {
        self.files[index].display().to_string()
    }
    fn path(&self, index: usize) -> Option<&Path> {
        Some(&self.files[index])
    }
    fn image(&self, index: usize) -> Result<DynamicImage, DataError> {
        decode(&self.files[index])
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, index: usize) -> usize {
        self.files[index].1
    }
    fn describe(&self, index: usize) -> String {
        self.files[index].0.display().to_string()
    }
    fn path(&self, index: usize) -> Option<&Path> {
        Some(&self.files[index].0)
    }
    fn image(&self, index: usize) -> Result<DynamicImage, DataError> {
        decode(&self.files[index].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("cat", 3), ("dog", 2)] {
            let d = dir.path().join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                RgbImage::from_pixel(5 + i, 4, image::Rgb([i as u8, 0, 0]))
                    .save(d.join(format!("{i}.png")))
                    .unwrap();
            }
        }
        GrayImage::new(3, 3)
            .save(dir.path().join("dog/x.jpg"))
            .unwrap();
        std::fs::write(dir.path().join("dog/.DS_Store"), b"junk").unwrap();
        std::fs::write(dir.path().join("dog/notes.txt"), b"hello").unwrap();
        // A PNG without an extension is found by its signature.
        GrayImage::new(2, 2)
            .save_with_format(dir.path().join("cat/noext"), image::ImageFormat::Png)
            .unwrap();
        dir
    }

    #[test]
    fn discovers_sorted_classes_and_skips_non_images() {
        let dir = tree();
        let ds = ImageFolder::open(dir.path()).unwrap();
        assert_eq!(ds.classes(), &["cat".to_string(), "dog".to_string()]);
        assert_eq!(ds.len(), 4 + 3);
        assert_eq!((0..ds.len()).filter(|&i| ds.label(i) == 1).count(), 3);
        assert_eq!(ds.skipped.len(), 1, "{:?}", ds.skipped);
        assert!(ds.image(0).is_ok());
    }

    #[test]
    fn class_map_renames_classes() {
        let dir = tree();
        let map = dir.path().join("cat_to_name.json");
        std::fs::write(&map, r#"{"cat": "tabby cat"}"#).unwrap();
        let ds = ImageFolder::open(dir.path())
            .unwrap()
            .with_class_map(&map)
            .unwrap();
        assert_eq!(ds.classes(), &["tabby cat".to_string(), "dog".to_string()]);
        std::fs::write(&map, "[1, 2]").unwrap();
        let err = ImageFolder::open(dir.path())
            .unwrap()
            .with_class_map(&map)
            .err()
            .unwrap();
        assert!(err.to_string().contains("cat_to_name.json"), "{err}");
    }

    #[test]
    fn empty_class_and_missing_root_are_errors_naming_the_path() {
        let dir = tree();
        std::fs::create_dir(dir.path().join("emu")).unwrap();
        let err = ImageFolder::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("emu") && err.contains("no images"), "{err}");
        let err = ImageFolder::open(&dir.path().join("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn corrupt_and_truncated_images_are_errors_naming_the_file() {
        let dir = tree();
        let png = dir.path().join("cat/0.png");
        let bytes = std::fs::read(&png).unwrap();
        std::fs::write(&png, &bytes[..bytes.len() / 2]).unwrap();
        let ds = ImageFolder::open(dir.path()).unwrap();
        let i = (0..ds.len()).find(|&i| ds.path(i) == png).unwrap();
        let err = ds.image(i).unwrap_err().to_string();
        assert!(err.contains("0.png"), "{err}");
    }
}
