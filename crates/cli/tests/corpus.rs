//! Bad input never crashes: a generated corpus of malformed and odd files of every format
//! convnet reads (images, checkpoints, class maps, CIFAR batches, IDX, safetensors, `.pth`,
//! augmentation specs, numbers on the command line). Valid files must load, broken ones must
//! be named in an `error:` or `warning:` line, and nothing may panic. Then property tests
//! (proptest) feed mutated files to the IDX, checkpoint and image readers; they run 64 cases
//! each by default, `PROPTEST_CASES=5000` for a longer run.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;

fn convnet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("convnet runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the command failed with one `error:` line containing `needle`, and no panic.
fn assert_refused(o: &Output, needle: &str, what: &str) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{what}: panic:\n{err}");
    assert!(!o.status.success(), "{what}: accepted:\n{err}");
    assert!(err.starts_with("error: "), "{what}: no error line:\n{err}");
    assert!(err.contains(needle), "{what}: '{needle}' not in:\n{err}");
}

// ---------------------------------------------------------------------------------------
// Generators.

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn gray(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 13) % 256) as u8])
    }))
}

fn rgb(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    }))
}

/// A PNG whose header claims `w`x`h` (with correct CRCs) and almost no pixel data.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    // An IDAT chunk, since the decoder reads up to the first one before saying the size.
    let idat = b"IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01";
    out.extend(((idat.len() - 4) as u32).to_be_bytes());
    out.extend(idat);
    out.extend(crc32(idat).to_be_bytes());
    out.extend(0u32.to_be_bytes());
    out.extend(b"IEND");
    out.extend(crc32(b"IEND").to_be_bytes());
    out
}

/// A JPEG whose frame header (SOF0) claims 65535x65535.
fn jpeg_huge() -> Vec<u8> {
    let mut b = encode(&gray(16, 16), ImageFormat::Jpeg);
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    b[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    b
}

/// A BMP whose header claims 30000x30000, or a top-down one (negative height).
fn bmp_patched(height: i32, width: i32) -> Vec<u8> {
    let mut b = encode(&rgb(8, 8), ImageFormat::Bmp);
    b[18..22].copy_from_slice(&width.to_le_bytes());
    b[22..26].copy_from_slice(&height.to_le_bytes());
    b
}

/// A GIF whose logical screen is 65535x65535.
fn gif_huge() -> Vec<u8> {
    let mut b = encode(&rgb(8, 8), ImageFormat::Gif);
    b[6..10].copy_from_slice(&[0xFF; 4]);
    b
}

fn gif_animated() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        for i in 0..2u8 {
            let frame =
                image::RgbaImage::from_fn(8, 8, |x, _| image::Rgba([x as u8 * i, 0, 0, 255]));
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    out
}

/// A little-endian TIFF whose width and length tags claim 65535 (or more).
fn tiff_huge() -> Vec<u8> {
    let mut b = encode(&gray(8, 8), ImageFormat::Tiff);
    assert_eq!(&b[..2], b"II");
    let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    let n = u16::from_le_bytes(b[ifd..ifd + 2].try_into().unwrap()) as usize;
    for e in 0..n {
        let at = ifd + 2 + 12 * e;
        let tag = u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
        let kind = u16::from_le_bytes(b[at + 2..at + 4].try_into().unwrap());
        if tag == 256 || tag == 257 {
            if kind == 3 {
                b[at + 8..at + 10].copy_from_slice(&0xFFFFu16.to_le_bytes());
            } else {
                b[at + 8..at + 12].copy_from_slice(&100_000u32.to_le_bytes());
            }
        }
    }
    b
}

/// What a corpus file must do.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Decodes and gets a prediction.
    Loads,
    /// Is skipped with a warning naming it (and containing this text).
    Refused(&'static str),
}

use Expect::{Loads, Refused};

fn image_corpus() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let png = encode(&gray(20, 20), ImageFormat::Png);
    let jpg = encode(&rgb(20, 20), ImageFormat::Jpeg);
    let bmp = encode(&rgb(20, 20), ImageFormat::Bmp);
    let gif = encode(&rgb(20, 20), ImageFormat::Gif);
    let webp = encode(&rgb(20, 20), ImageFormat::WebP);
    let tif = encode(&rgb(20, 20), ImageFormat::Tiff);
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    let mut bad_crc = png.clone();
    bad_crc[29] ^= 0xFF; // IHDR's CRC
    let mut bad_riff = webp.clone();
    bad_riff[8..12].copy_from_slice(b"WAVE");
    let mut tiff_bad_ifd = tif.clone();
    tiff_bad_ifd[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let mut garbage_soi = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage_soi.extend((0..500u32).map(|i| (i * 31 % 251) as u8));
    let mut bm_garbage = b"BM".to_vec();
    bm_garbage.extend([0x7F; 60]);
    vec![
        ("ok.png", png.clone(), Loads),
        (
            "one-pixel.png",
            encode(&gray(1, 1), ImageFormat::Png),
            Loads,
        ),
        (
            "sixteen-bit.png",
            encode(
                &DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(9, 9, |x, _| {
                    image::Luma([x as u16 * 5000])
                })),
                ImageFormat::Png,
            ),
            Loads,
        ),
        (
            "rgba.png",
            encode(
                &DynamicImage::ImageRgba8(rgb(12, 7).to_rgba8()),
                ImageFormat::Png,
            ),
            Loads,
        ),
        ("png-named.jpg", png.clone(), Loads),
        (
            "wide-strip.png",
            encode(&gray(3000, 1), ImageFormat::Png),
            Loads,
        ),
        ("truncated.png", half(&png), Refused("")),
        ("zero-bytes.png", Vec::new(), Refused("")),
        (
            "garbage.png",
            b"this is not an image at all".repeat(9),
            Refused(""),
        ),
        ("signature-only.png", png[..8].to_vec(), Refused("")),
        (
            "huge-header.png",
            png_header_only(100_000, 100_000),
            Refused("exceeds the limit"),
        ),
        ("zero-size.png", png_header_only(0, 7), Refused("")),
        ("bad-crc.png", bad_crc, Refused("")),
        ("ok.jpg", jpg.clone(), Loads),
        ("gray.jpg", encode(&gray(17, 9), ImageFormat::Jpeg), Loads),
        ("truncated.jpg", half(&jpg), Refused("truncated")),
        ("zero-bytes.jpg", Vec::new(), Refused("")),
        ("garbage-after-soi.jpg", garbage_soi, Refused("")),
        ("huge-header.jpg", jpeg_huge(), Refused("exceeds the limit")),
        ("ok.bmp", bmp.clone(), Loads),
        ("top-down.bmp", bmp_patched(-8, 8), Loads),
        ("truncated.bmp", half(&bmp), Refused("")),
        (
            "huge-header.bmp",
            bmp_patched(30_000, 30_000),
            Refused("exceeds the limit"),
        ),
        ("garbage.bmp", bm_garbage, Refused("")),
        ("ok.gif", gif.clone(), Loads),
        ("animated.gif", gif_animated(), Loads),
        ("truncated.gif", half(&gif), Refused("")),
        ("huge-screen.gif", gif_huge(), Refused("exceeds the limit")),
        ("ok.webp", webp.clone(), Loads),
        ("truncated.webp", half(&webp), Refused("")),
        ("not-webp-riff.webp", bad_riff, Refused("")),
        ("ok.tif", tif.clone(), Loads),
        ("truncated.tif", half(&tif), Refused("")),
        ("bad-ifd-offset.tif", tiff_bad_ifd, Refused("")),
        ("huge-header.tif", tiff_huge(), Refused("exceeds the limit")),
    ]
}

/// A folder of two classes of small grey PNGs.
fn make_data(dir: &Path) {
    for (c, v) in [("dark", 40u8), ("light", 210u8)] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..6u8 {
            image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([v.wrapping_add((x as u8 ^ y as u8) % 16).wrapping_add(i)])
            })
            .save(dir.join(c).join(format!("{i}.png")))
            .unwrap();
        }
    }
}

/// Trains a tiny model for one epoch and returns its `best.ckpt`.
fn tiny_checkpoint(d: &Path) -> PathBuf {
    make_data(&d.join("data"));
    let o = convnet(
        &[
            "train",
            "--model",
            "mnist-cnn",
            "--data",
            "data",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            "run",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    d.join("run/best.ckpt")
}

// ---------------------------------------------------------------------------------------
// The corpus through the binary.

#[test]
fn every_image_format_valid_loads_broken_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ckpt = tiny_checkpoint(d);
    let corpus = image_corpus();
    std::fs::create_dir_all(d.join("corpus")).unwrap();
    let mut args = vec![
        "predict".to_string(),
        ckpt.display().to_string(),
        "--json".into(),
        "--top".into(),
        "1".into(),
    ];
    for (name, bytes, _) in &corpus {
        let p = d.join("corpus").join(name);
        std::fs::write(&p, bytes).unwrap();
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = convnet(&args, d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let predicted: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect();
    for (name, _, expect) in &corpus {
        let path = format!("/corpus/{name}");
        let got = predicted.iter().any(|f| f.ends_with(&path));
        let warning = err
            .lines()
            .find(|l| l.starts_with("warning: ") && l.contains(&path));
        match expect {
            Loads => assert!(got && warning.is_none(), "{name} should load:\n{err}"),
            Refused(why) => {
                assert!(!got, "{name} should be refused but got a prediction");
                let w = warning.unwrap_or_else(|| panic!("{name} not named:\n{err}"));
                assert!(w.contains(why), "{name}: '{why}' not in '{w}'");
            }
        }
    }

    // The limits can be raised or lowered on the command line.
    let ok = d.join("corpus/ok.png").display().to_string();
    let c = ckpt.display().to_string();
    let o = convnet(&["predict", &c, &ok, "--max-pixels", "100"], d);
    assert!(!o.status.success(), "--max-pixels 100 ignored");
    assert!(
        stderr(&o).contains("error: none of the 1 images"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("raise it with --max-pixels"),
        "{}",
        stderr(&o)
    );
    let o = convnet(&["predict", &c, &ok, "--max-image-bytes", "10"], d);
    assert!(stderr(&o).contains("--max-image-bytes") && !o.status.success());
    let huge = d.join("corpus/huge-header.png").display().to_string();
    let o = convnet(&["predict", &c, &huge, "--max-pixels", "20000000000"], d);
    // Past the limit the decoder itself refuses the header-only file: still no panic.
    assert!(!stderr(&o).contains("panicked") && !stderr(&o).contains("exceeds the limit"));

    // The same files inside a training folder: broken ones are skipped by name.
    for (name, bytes, _) in &corpus {
        std::fs::write(d.join("data/dark").join(name), bytes).unwrap();
    }
    let o = convnet(
        &[
            "train",
            "--model",
            "mnist-cnn",
            "--data",
            "data",
            "--epochs",
            "1",
            "--out",
            "run2",
        ],
        d,
    );
    let err = stderr(&o);
    assert!(o.status.success() && !err.contains("panicked"), "{err}");
    for (name, _, expect) in &corpus {
        if let Refused(_) = expect {
            assert!(err.contains(name), "training did not name {name}:\n{err}");
        }
    }
}

/// Splits a checkpoint into (version, sections).
fn sections(bytes: &[u8]) -> (u32, Vec<Vec<u8>>) {
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let mut pos = 12;
    let mut out = Vec::new();
    for _ in 0..3 {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        out.push(bytes[pos + 8..pos + 8 + len].to_vec());
        pos += 8 + len;
    }
    (version, out)
}

fn join(version: u32, sections: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"CONVNET\0".to_vec();
    out.extend(version.to_le_bytes());
    for s in sections {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s);
    }
    out
}

#[test]
fn broken_checkpoints_class_maps_cifar_and_numbers_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ckpt = tiny_checkpoint(d);
    let good = std::fs::read(&ckpt).unwrap();
    let (version, secs) = sections(&good);
    let meta: serde_json::Value = serde_json::from_slice(&secs[0]).unwrap();
    let with_meta = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = meta.clone();
        f(&mut m);
        join(
            version,
            &[
                serde_json::to_vec(&m).unwrap(),
                secs[1].clone(),
                secs[2].clone(),
            ],
        )
    };
    let mut huge_len = good.clone();
    huge_len[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    let ckpts: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zero.ckpt", Vec::new(), "not a convnet checkpoint"),
        (
            "garbage.ckpt",
            b"garbage garbage garbage".to_vec(),
            "not a convnet checkpoint",
        ),
        (
            "header-only.ckpt",
            good[..10].to_vec(),
            "not a convnet checkpoint",
        ),
        (
            "truncated.ckpt",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        ("newer.ckpt", join(99, &secs), "newer"),
        ("huge-length.ckpt", huge_len, "truncated"),
        (
            "bad-meta.ckpt",
            join(
                version,
                &[b"{nope".to_vec(), secs[1].clone(), secs[2].clone()],
            ),
            "damaged metadata",
        ),
        (
            "no-weights.ckpt",
            join(version, &[secs[0].clone(), b"xx".to_vec(), Vec::new()]),
            "damaged weights",
        ),
        (
            "unknown-model.ckpt",
            with_meta(&|m| m["model"]["name"] = "resnet9000".into()),
            "resnet9000",
        ),
        (
            "other-arch.ckpt",
            with_meta(&|m| {
                m["model"]["name"] = "lenet5".into();
                m["model"]["input_size"] = serde_json::json!([32, 32]);
                m["preprocess"]["size"] = serde_json::json!([32, 32]);
            }),
            "do not fit a lenet5",
        ),
        (
            "meta-wrong-types.ckpt",
            with_meta(&|m| m["epoch"] = "three".into()),
            "damaged metadata",
        ),
        (
            "absurd-classes.ckpt",
            with_meta(&|m| m["model"]["num_classes"] = 1_000_000_000_000u64.into()),
            "1000000000000 classes",
        ),
        (
            "class-count.ckpt",
            with_meta(&|m| m["classes"] = serde_json::json!(["only"])),
            "1 class names",
        ),
        (
            "zero-std.ckpt",
            with_meta(&|m| m["preprocess"]["std"] = serde_json::json!([0.0])),
            "preprocessing",
        ),
    ];
    let img = d.join("data/dark/0.png").display().to_string();
    for (name, bytes, needle) in &ckpts {
        std::fs::write(d.join(name), bytes).unwrap();
        let o = convnet(&["predict", name, &img], d);
        assert_refused(&o, name, name);
        assert_refused(&o, needle, name);
    }

    // Class maps.
    let deep = "[".repeat(100_000);
    let maps: Vec<(&str, &str)> = vec![
        ("empty.json", ""),
        ("not-json.json", "dark: Dark"),
        ("array.json", "[\"dark\", \"light\"]"),
        ("numbers.json", "{\"dark\": 1, \"light\": 2}"),
        ("deep.json", &deep),
    ];
    for (name, text) in &maps {
        std::fs::write(d.join(name), text).unwrap();
        let o = convnet(
            &[
                "train",
                "--model",
                "mnist-cnn",
                "--data",
                "data",
                "--class-map",
                name,
                "--epochs",
                "1",
            ],
            d,
        );
        assert_refused(&o, name, name);
    }

    // CIFAR-10 binary batches: one record each, then one of wrong length, one bad label.
    let cifar = d.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072u32).map(|i| (i % 256) as u8));
        r
    };
    let write_batches = |bad: Option<(&str, Vec<u8>)>| {
        for name in (1..=5)
            .map(|i| format!("data_batch_{i}.bin"))
            .chain(["test_batch.bin".to_string()])
        {
            std::fs::write(cifar.join(&name), record(3)).unwrap();
        }
        if let Some((name, bytes)) = bad {
            std::fs::write(cifar.join(name), bytes).unwrap();
        }
    };
    let train_cifar = || {
        convnet(
            &[
                "train",
                "--model",
                "gtsrb-net",
                "--data",
                "cifar",
                "--epochs",
                "1",
                "--val-split",
                "0",
            ],
            d,
        )
    };
    write_batches(Some(("data_batch_3.bin", record(3)[..3000].to_vec())));
    assert_refused(&train_cifar(), "data_batch_3.bin", "short CIFAR batch");
    write_batches(Some(("data_batch_2.bin", record(200))));
    assert_refused(&train_cifar(), "label 200", "CIFAR label out of range");
    write_batches(Some(("data_batch_1.bin", Vec::new())));
    assert_refused(&train_cifar(), "data_batch_1.bin", "empty CIFAR batch");

    // Numbers on the command line.
    let t = [
        "train",
        "--model",
        "mnist-cnn",
        "--data",
        "data",
        "--epochs",
        "1",
    ];
    let numbers: Vec<(&[&str], &str)> = vec![
        (&["--batch-size", "0"], "--batch-size"),
        (&["--batch-size", "-1"], "-1"),
        (&["--batch-size", "abc"], "--batch-size"),
        (&["--batch-size", "99999999999999999999999"], "--batch-size"),
        (&["--lr", "nan"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--lr=-0.1"], "--lr"),
        (&["--epochs", "0"], "--epochs"),
        (&["--val-split", "1.5"], "--val-split"),
        (&["--val-split", "NaN"], "--val-split"),
        (&["--input-size", "0x5"], "--input-size"),
        (&["--input-size", "28"], "HxW"),
        (&["--in-channels", "2"], "--in-channels"),
        (&["--threads", "many"], "--threads"),
        (&["--seed", "-5"], "-5"),
        (&["--max-pixels", "0"], "--max-pixels"),
    ];
    for (extra, needle) in &numbers {
        let mut args = t.to_vec();
        args.extend_from_slice(extra);
        assert_refused(&convnet(&args, d), needle, &extra.join(" "));
    }
}

// ---------------------------------------------------------------------------------------
// Formats read by the libraries (no command reads them from an arbitrary path).

/// Runs `f`, failing the test if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("{what}: panicked"))
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

#[test]
fn idx_safetensors_pth_and_augment_specs_return_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let idx: Vec<(&str, Vec<u8>)> = vec![
        ("zero.idx", Vec::new()),
        ("bad-magic.idx", b"\x89PNG\r\n\x1a\n....".to_vec()),
        ("short-data.idx", idx_bytes(&[10, 28, 28], &[0; 100])),
        (
            "overflow.idx",
            idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]),
        ),
        (
            "wrong-type.idx",
            [&[0u8, 0, 0x0D, 3][..], &idx_bytes(&[1, 1, 1], &[0; 4])[4..]].concat(),
        ),
        ("fake.gz", b"\x1f\x8b\x08\x00garbage".to_vec()),
        ("header-cut.idx", idx_bytes(&[1, 28, 28], &[])[..9].to_vec()),
    ];
    for (name, bytes) in &idx {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = no_panic(name, || convnet_data::idx::read_images(&p)).err();
        let e = e.unwrap_or_else(|| panic!("{name} accepted")).to_string();
        assert!(e.contains(name), "{name}: {e}");
        assert!(
            no_panic(name, || convnet_data::idx::read_labels(&p)).is_err(),
            "{name}"
        );
    }
    // A valid file still reads.
    let ok = d.join("ok.idx");
    std::fs::write(&ok, idx_bytes(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8])).unwrap();
    assert_eq!(convnet_data::idx::read_images(&ok).unwrap().count, 2);

    // Weights files: safetensors and PyTorch.
    let device = burn::tensor::Device::flex();
    let spec = convnet_nn::ModelSpec::new("mnist-cnn", [1, 28, 28], 10);
    let header = |json: &str| {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend(json.as_bytes());
        b
    };
    let marker = d.join("pwned");
    let evil_pickle = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display()).into_bytes();
    let weights: Vec<(&str, Vec<u8>)> = vec![
        ("zero.safetensors", Vec::new()),
        ("huge-header.safetensors", u64::MAX.to_le_bytes().to_vec()),
        ("not-json.safetensors", header("{not json")),
        (
            "past-end.safetensors",
            header(
                r#"{"conv1.weight":{"dtype":"F32","shape":[16,1,5,5],"data_offsets":[0,1600]}}"#,
            ),
        ),
        (
            "bad-dtype.safetensors",
            [
                header(r#"{"conv1.weight":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#),
                vec![0; 4],
            ]
            .concat(),
        ),
        ("garbage.pth", b"definitely not torch".to_vec()),
        ("zero.pth", Vec::new()),
        ("fake-zip.pth", b"PK\x03\x04broken zip".to_vec()),
        ("evil-pickle.pth", evil_pickle),
    ];
    for (name, bytes) in &weights {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let mut net = convnet_nn::build(&spec, &device).unwrap();
        let r = no_panic(name, || convnet_nn::weights::load_file(&mut net, &p, true));
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"))
            .to_string();
        assert!(e.contains(name), "{name}: {e}");
    }
    assert!(!marker.exists(), "a pickle executed code");

    // Augmentation specs.
    for spec in [
        "",
        ",",
        "flip=2",
        "rotate=abc",
        "rotate=1e999",
        "crop=-3",
        "zoom=nan",
        "nosuchthing",
        "erase=0.5=0.5",
        "mixup=-1",
        "\u{0}",
    ] {
        let r = no_panic(spec, || convnet_data::Augment::parse(spec));
        assert!(r.is_err(), "augmentation spec {spec:?} accepted");
    }
}

// ---------------------------------------------------------------------------------------
// Property tests: mutated files never panic a reader.

fn cases() -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A byte-level mutation: overwrite, truncate, insert or append.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
    ]
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation], head: usize) -> Vec<u8> {
    for m in ms {
        if b.is_empty() {
            break;
        }
        // Half of the edits land in the first `head` bytes, where the headers are.
        let at = |i: usize| {
            if i.is_multiple_of(2) {
                (i / 2) % head.min(b.len())
            } else {
                (i / 2) % b.len()
            }
        };
        match m {
            Mutation::Set(i, v) => {
                let i = at(*i);
                b[i] = *v;
            }
            Mutation::Truncate(i) => {
                let i = at(*i);
                b.truncate(i);
            }
            Mutation::Insert(i, v) => {
                let i = at(*i);
                b.splice(i..i, v.iter().copied());
            }
        }
    }
    b
}

fn valid_images() -> Vec<Vec<u8>> {
    [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Bmp,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Tiff,
    ]
    .iter()
    .map(|f| encode(&rgb(12, 10), *f))
    .collect()
}

fn valid_checkpoint() -> Vec<u8> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let device = burn::tensor::Device::flex();
            let spec = convnet_nn::ModelSpec::new("lenet5", [1, 32, 32], 3);
            let model = convnet_nn::build(&spec, &device).unwrap();
            let meta = convnet_train::checkpoint::CheckpointMeta {
                format: convnet_train::checkpoint::FORMAT_VERSION,
                model: spec,
                preprocess: convnet_data::Preprocess {
                    channels: 1,
                    size: [32, 32],
                    mean: vec![0.5],
                    std: vec![0.5],
                },
                classes: vec!["a".into(), "b".into(), "c".into()],
                epoch: 1,
                best_accuracy: 0.5,
                partial: None,
                loss_scale: None,
            };
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("v.ckpt");
            convnet_train::checkpoint::save(&p, &meta, &model, None).unwrap();
            std::fs::read(p).unwrap()
        })
        .clone()
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn mutated_images_never_panic(
        which in 0usize..6,
        ms in proptest::collection::vec(mutation(), 1..6),
    ) {
        let bytes = mutate(valid_images().swap_remove(which), &ms, 64);
        let _ = convnet_data::folder::decode_bytes(&bytes);
    }

    #[test]
    fn random_bytes_never_panic_the_image_decoder(
        prefix in 0usize..7,
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // Start with a real signature so the format's decoder is reached.
        let sig: &[u8] = [&b"\x89PNG\r\n\x1a\n"[..], b"\xFF\xD8\xFF", b"BM", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8L", b"II*\0", b""][prefix];
        let bytes = [sig, &tail].concat();
        let _ = convnet_data::folder::decode_bytes(&bytes);
    }

    #[test]
    fn mutated_idx_files_never_panic(
        dims in proptest::collection::vec(0u32..70, 0..4),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        ms in proptest::collection::vec(mutation(), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.idx");
        let b = idx_bytes(&dims, &data);
        std::fs::write(&p, mutate(b, &ms, 16)).unwrap();
        if let Err(e) = convnet_data::idx::read_images(&p) {
            prop_assert!(e.to_string().contains("f.idx"));
        }
        let _ = convnet_data::idx::read_labels(&p);
    }

    #[test]
    fn mutated_checkpoints_never_panic(ms in proptest::collection::vec(mutation(), 1..4)) {
        let bytes = mutate(valid_checkpoint(), &ms, 400);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.ckpt");
        std::fs::write(&p, &bytes).unwrap();
        let device = burn::tensor::Device::flex();
        if let Err(e) = convnet_train::Checkpoint::load(&p, &device) {
            prop_assert!(e.to_string().contains("m.ckpt"));
        }
    }
}
