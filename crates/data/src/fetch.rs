//! `convnet data fetch`: the datasets convnet can download, from their published URLs, with
//! checksums, resumable, extracted into the cache folder.

use std::path::{Path, PathBuf};

use crate::download::fetch_with;
use crate::error::DataError;
use crate::fashion::IDX_SETS;
use crate::mat;

/// One published file and its MD5.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteFile {
    /// Where it is published; the file is saved under the URL's last segment.
    pub url: String,
    /// Its published MD5, hex.
    pub md5: String,
}

impl RemoteFile {
    fn new(url: &str, md5: &str) -> Self {
        Self {
            url: url.into(),
            md5: md5.into(),
        }
    }

    /// The file name: the URL's last path segment.
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }
}

/// A downloadable dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// The name `--data` and `convnet data fetch` know it by; also its cache sub-folder.
    pub name: String,
    /// Its files.
    pub files: Vec<RemoteFile>,
}

/// The names `convnet data fetch` accepts.
pub const NAMES: &[&str] = &[
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "gtsrb",
    "flowers102",
];

const GTSRB: &str = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370";
const FLOWERS: &str = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102";

/// The published files of dataset `name` (checksums as torchvision lists them).
pub fn remote(name: &str) -> Option<Remote> {
    let files = if let Some(set) = IDX_SETS.iter().find(|s| s.name == name) {
        set.files
            .iter()
            .map(|(f, md5)| RemoteFile::new(&format!("{}/{f}", set.url), md5))
            .collect()
    } else {
        match name {
            "cifar10" => vec![RemoteFile::new(
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
            )],
            "cifar100" => vec![RemoteFile::new(
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            )],
            "gtsrb" => vec![
                RemoteFile::new(
                    &format!("{GTSRB}/GTSRB_Final_Training_Images.zip"),
                    "f33fd80ac59bff73c82d25ab499e03a3",
                ),
                RemoteFile::new(
                    &format!("{GTSRB}/GTSRB_Final_Test_Images.zip"),
                    "c7e4e6327067d32654124b0fe9e82185",
                ),
                RemoteFile::new(
                    &format!("{GTSRB}/GTSRB_Final_Test_GT.zip"),
                    "fe31e9c9270bbcd7b84b7f21a9d9d9e5",
                ),
            ],
            "flowers102" => vec![
                RemoteFile::new(
                    &format!("{FLOWERS}/102flowers.tgz"),
                    "52808999861908f626f3c1f4e79d11fa",
                ),
                RemoteFile::new(
                    &format!("{FLOWERS}/imagelabels.mat"),
                    "e0620be6f572b9609742df49c70aed4d",
                ),
                RemoteFile::new(
                    &format!("{FLOWERS}/setid.mat"),
                    "a5357ecc9cb78c4bef273ce3793fc85c",
                ),
            ],
            _ => return None,
        }
    };
    Some(Remote {
        name: name.into(),
        files,
    })
}

/// Downloads dataset `name` into `dir/NAME/` (see [`fetch_remote`]).
pub fn fetch_dataset(
    name: &str,
    dir: &Path,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<PathBuf, DataError> {
    let remote = remote(name).ok_or_else(|| DataError::Download {
        url: name.into(),
        why: format!("unknown dataset; known: {}", NAMES.join(", ")),
    })?;
    fetch_remote(&remote, dir, progress)
}

/// Downloads every file of `remote` into `dir/NAME/` (checked, resumable: see
/// [`fetch_with`]), extracts `.tar.gz`/`.tgz`/`.zip` archives there once (a
/// `.FILE.extracted` marker remembers it), and for Flowers-102 sorts the images into
/// `train/`, `valid/`, `test/` class folders. Returns `dir/NAME`. `progress` gets the file
/// name, bytes done and the total when known.
pub fn fetch_remote(
    remote: &Remote,
    dir: &Path,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<PathBuf, DataError> {
    let root = dir.join(&remote.name);
    for file in &remote.files {
        let name = file.name().to_string();
        let dest = root.join(&name);
        let marker = root.join(format!(".{name}.extracted"));
        if marker.exists() {
            continue; // extracted earlier (the archive may have been deleted since)
        }
        fetch_with(&file.url, &dest, &file.md5, &mut |d, t| {
            progress(&name, d, t)
        })?;
        if is_archive(&name) {
            extract(&dest, &root)?;
            std::fs::write(&marker, b"").map_err(|e| DataError::io(&marker, e))?;
        }
    }
    if remote.name == "flowers102" {
        arrange_flowers(&root)?;
    }
    Ok(root)
}

fn is_archive(name: &str) -> bool {
    [".tar.gz", ".tgz", ".zip"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// Extracts a `.tar.gz`/`.tgz` or `.zip` archive into `into` (entries escaping it are
/// refused by both readers).
pub fn extract(archive: &Path, into: &Path) -> Result<(), DataError> {
    let bad = |why: String| {
        DataError::format(
            archive,
            format!("cannot extract ({why}); delete it and fetch again"),
        )
    };
    eprintln!("extracting {}", archive.display());
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    if archive.to_string_lossy().ends_with(".zip") {
        zip::ZipArchive::new(file)
            .and_then(|mut z| z.extract(into))
            .map_err(|e| bad(e.to_string()))
    } else {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(into)
            .map_err(|e| bad(e.to_string()))
    }
}

/// The ids (1-based image numbers) of one `setid.mat` variable.
fn ids(arrays: &[(String, Vec<f64>)], key: &str, path: &Path) -> Result<Vec<usize>, DataError> {
    arrays
        .iter()
        .find(|(n, _)| n == key)
        .map(|(_, v)| v.iter().map(|&x| x as usize).collect())
        .ok_or_else(|| DataError::format(path, format!("no `{key}` variable")))
}

/// Sorts Flowers-102's `jpg/image_NNNNN.jpg` into seed 003's layout,
/// `{train,valid,test}/LABEL/image_NNNNN.jpg` (labels 1..102 from `imagelabels.mat`; splits
/// `trnid`/`valid`/`tstid` of `setid.mat`, as torchvision reads them). Files are moved, and
/// files already in place are left, so an interrupted run can be repeated.
pub fn arrange_flowers(root: &Path) -> Result<(), DataError> {
    let done = root.join(".arranged");
    if done.exists() {
        return Ok(());
    }
    let labels_path = root.join("imagelabels.mat");
    let labels = mat::read_arrays(&labels_path)?;
    let labels = ids(&labels, "labels", &labels_path)?;
    let setid_path = root.join("setid.mat");
    let sets = mat::read_arrays(&setid_path)?;
    for (key, split) in [("trnid", "train"), ("valid", "valid"), ("tstid", "test")] {
        for id in ids(&sets, key, &setid_path)? {
            let label = *labels.get(id.wrapping_sub(1)).ok_or_else(|| {
                DataError::format(&setid_path, format!("image id {id} has no label"))
            })?;
            let name = format!("image_{id:05}.jpg");
            let to_dir = root.join(split).join(label.to_string());
            let to = to_dir.join(&name);
            if to.exists() {
                continue;
            }
            std::fs::create_dir_all(&to_dir).map_err(|e| DataError::io(&to_dir, e))?;
            let from = root.join("jpg").join(&name);
            std::fs::rename(&from, &to).map_err(|e| DataError::io(&from, e))?;
        }
    }
    std::fs::write(&done, b"").map_err(|e| DataError::io(&done, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;
    use std::io::{BufRead, Write};
    use std::net::TcpListener;

    /// Serves each `(path, body)` on 127.0.0.1 for `connections` requests; unknown paths 404.
    fn serve(files: Vec<(String, Vec<u8>)>, connections: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut first) = (String::new(), String::new());
                reader.read_line(&mut first).unwrap();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let path = first.split(' ').nth(1).unwrap_or("").to_string();
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        stream.write_all(head.as_bytes()).unwrap();
                        stream.write_all(body).unwrap();
                    }
                    None => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            }
        });
        format!("http://{addr}")
    }

    fn md5(b: &[u8]) -> String {
        use md5::{Digest, Md5};
        Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
    }

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        let mut t = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, *data).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn every_published_dataset_has_files_with_md5s() {
        for name in NAMES {
            let r = remote(name).unwrap();
            assert!(!r.files.is_empty());
            for f in &r.files {
                assert!(f.url.starts_with("http"), "{}", f.url);
                assert_eq!(f.md5.len(), 32);
                assert!(!f.name().is_empty());
            }
        }
        assert!(remote("imagenet").is_none());
    }

    #[test]
    fn fetches_and_extracts_a_cifar_archive_then_reads_it() {
        let src = tempfile::tempdir().unwrap();
        crate::cifar::tests::write(src.path(), crate::cifar::Cifar::Ten, 2);
        let entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(src.path())
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let name = format!(
                    "cifar-10-batches-bin/{}",
                    p.file_name().unwrap().to_string_lossy()
                );
                (name, std::fs::read(p).unwrap())
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let archive = tar_gz(&refs);
        let url = serve(vec![("/c10.tar.gz".into(), archive.clone())], 1);
        let remote = Remote {
            name: "cifar10".into(),
            files: vec![RemoteFile::new(
                &format!("{url}/c10.tar.gz"),
                &md5(&archive),
            )],
        };
        let cache = tempfile::tempdir().unwrap();
        let mut seen = 0;
        let root = fetch_remote(&remote, cache.path(), &mut |f, d, _| {
            assert_eq!(f, "c10.tar.gz");
            seen = d;
        })
        .unwrap();
        assert_eq!(seen, archive.len() as u64);
        let (kind, dir) = crate::cifar::Cifar::find(&root).unwrap();
        assert_eq!(kind.load(&dir, true).unwrap().len(), 10);
        // A second fetch finds the marker and downloads nothing (the server is gone).
        fetch_remote(&remote, cache.path(), &mut |_, _, _| {}).unwrap();
    }

    #[test]
    fn fetches_gtsrb_zips_and_reads_the_extracted_layout() {
        // Zip the miniature GTSRB the way the three published archives are laid out.
        let src = tempfile::tempdir().unwrap();
        crate::gtsrb::tests::write(src.path(), 2);
        let zip_of = |prefix: &std::path::Path| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            let mut stack = vec![prefix.to_path_buf()];
            while let Some(p) = stack.pop() {
                if p.is_dir() {
                    stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                } else {
                    let name = p.strip_prefix(src.path()).unwrap().to_string_lossy();
                    w.start_file(name, opts).unwrap();
                    w.write_all(&std::fs::read(&p).unwrap()).unwrap();
                }
            }
            w.finish().unwrap().into_inner()
        };
        let train = zip_of(&src.path().join("GTSRB/Final_Training"));
        let test = zip_of(&src.path().join("GTSRB/Final_Test"));
        let gt = zip_of(&src.path().join("GT-final_test.csv"));
        let files = vec![
            ("/train.zip".to_string(), train.clone()),
            ("/test.zip".to_string(), test.clone()),
            ("/gt.zip".to_string(), gt.clone()),
        ];
        let url = serve(files, 3);
        let remote = Remote {
            name: "gtsrb".into(),
            files: vec![
                RemoteFile::new(&format!("{url}/train.zip"), &md5(&train)),
                RemoteFile::new(&format!("{url}/test.zip"), &md5(&test)),
                RemoteFile::new(&format!("{url}/gt.zip"), &md5(&gt)),
            ],
        };
        let cache = tempfile::tempdir().unwrap();
        let root = fetch_remote(&remote, cache.path(), &mut |_, _, _| {}).unwrap();
        let g = crate::gtsrb::find(&root).unwrap();
        let tr = crate::gtsrb::train(&g).unwrap();
        assert_eq!(tr.len(), 4);
        assert_eq!(crate::gtsrb::test(&g, tr.classes()).unwrap().len(), 3);
    }

    #[test]
    fn flowers_are_sorted_into_split_class_folders() {
        let root = tempfile::tempdir().unwrap();
        let jpg = root.path().join("jpg");
        std::fs::create_dir_all(&jpg).unwrap();
        for i in 1..=5 {
            std::fs::write(jpg.join(format!("image_{i:05}.jpg")), b"x").unwrap();
        }
        let labels = mat::tests::mat_file(&[("labels", &[3.0, 3.0, 1.0, 2.0, 1.0])], true);
        std::fs::write(root.path().join("imagelabels.mat"), labels).unwrap();
        let sets = mat::tests::mat_file(
            &[
                ("trnid", &[1.0, 3.0]),
                ("valid", &[5.0]),
                ("tstid", &[2.0, 4.0]),
            ],
            false,
        );
        std::fs::write(root.path().join("setid.mat"), sets).unwrap();
        arrange_flowers(root.path()).unwrap();
        for p in [
            "train/3/image_00001.jpg",
            "train/1/image_00003.jpg",
            "valid/1/image_00005.jpg",
            "test/3/image_00002.jpg",
            "test/2/image_00004.jpg",
        ] {
            assert!(root.path().join(p).is_file(), "{p}");
        }
        // Done once: running again is a no-op.
        arrange_flowers(root.path()).unwrap();
    }
}
