//! torchvision parity of the deterministic transforms: resize (bilinear, bicubic, nearest,
//! shrinking and enlarging), centre crop, flips, five-/ten-crop and the ImageNet evaluation
//! pipeline with normalisation, run on the same PNG by `augment_parity.py` (torchvision v1
//! transforms on PIL images) and by convnet.
//!
//! Tolerances: crops and flips copy pixels, so they must match exactly. convnet's resize is
//! PIL's separable resampling algorithm with the same 22-bit fixed-point coefficients, so it
//! should agree to the last bit; the bound is one gray level (1/255 on ToTensor's scale) to
//! allow a rounding difference in a coefficient. After normalisation one gray level becomes
//! 1/(255 * 0.224) ~ 0.0175, plus float32 rounding.
//!
//! Needs a Python with torch and torchvision: `$CONVNET_PYTHON`, else
//! `~/.cache/convnet-torch-venv`. Without one the test says so and skips; with
//! `CONVNET_REQUIRE_TORCH=1` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use convnet_data::Preprocess;
use convnet_data::augment::{
    Augment, Img, Interp, crop, five_crop, geometry, sample_rng, ten_crop,
};
use image::DynamicImage;

fn python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        std::env::var_os("CONVNET_PYTHON").map(PathBuf::from),
        Some(home.join(".cache/convnet-torch-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import torch, torchvision, PIL, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// `[C, H, W]` floats in [0, 1], as ToTensor.
fn to_tensor(img: &Img) -> Vec<f32> {
    let plane = img.w as usize * img.h as usize;
    let mut out = vec![0f32; plane * img.c];
    for (p, px) in img.px.chunks_exact(img.c).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + p] = v as f32 / 255.0;
        }
    }
    out
}

fn stack(imgs: &[DynamicImage]) -> Vec<f32> {
    imgs.iter()
        .flat_map(|d| to_tensor(&Img::from_dynamic(d.clone())))
        .collect()
}

/// A 500x375 photo-like test image: smooth gradients, sharp edges and noise, so that every
/// filter tap matters.
fn test_image() -> Img {
    let (w, h) = (500u32, 375u32);
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    let mut state = 12345u32;
    for y in 0..h {
        for x in 0..w {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 24) as f32 / 255.0 * 60.0 - 30.0;
            let r = 127.0 + 100.0 * ((x as f32) / 37.0).sin() + noise;
            let g = if (x / 25 + y / 25) % 2 == 0 {
                220.0
            } else {
                30.0
            };
            let b = (x + 2 * y) as f32 * 255.0 / 1250.0 + noise;
            for v in [r, g, b] {
                px.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    Img { w, h, c: 3, px }
}

#[test]
fn deterministic_transforms_match_torchvision() {
    let Some(py) = python() else {
        let msg = "no Python with torch and torchvision (set CONVNET_PYTHON or run scripts/test, which installs them)";
        if std::env::var_os("CONVNET_REQUIRE_TORCH").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = test_image();
    let png = dir.path().join("image.png");
    img.clone().into_dynamic().save(&png).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/augment_parity.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&png)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "augment_parity.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("meta.json")).unwrap())
            .unwrap();

    let resize_short = |f| {
        let (w, h) = crop::shorter_side_size(img.w, img.h, 256);
        crop::resize(&img, w, h, f)
    };
    let dyn_img = img.clone().into_dynamic();
    let resized = resize_short(Interp::Bilinear).into_dynamic();
    let pre = Preprocess {
        channels: 3,
        size: [224, 224],
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    };
    let eval = Augment::parse("imagenet-eval").unwrap();
    let mut normalised = vec![0f32; pre.sample_len()];
    pre.apply(
        &eval.apply(dyn_img.clone(), &mut sample_rng(0, 0, 0)),
        &mut normalised,
    );
    let gray = 1.0 / 255.0 + 1e-6;
    // (case, convnet's output, tolerance)
    let cases: Vec<(&str, Vec<f32>, f32)> = vec![
        (
            "resize_bilinear",
            to_tensor(&resize_short(Interp::Bilinear)),
            gray,
        ),
        (
            "resize_bicubic",
            to_tensor(&resize_short(Interp::Bicubic)),
            gray,
        ),
        (
            "resize_nearest",
            to_tensor(&resize_short(Interp::Nearest)),
            1e-6,
        ),
        (
            "resize_exact",
            to_tensor(&crop::resize(&img, 150, 100, Interp::Bilinear)),
            gray,
        ),
        (
            "resize_up",
            to_tensor(&crop::resize(&img, 800, 600, Interp::Bilinear)),
            gray,
        ),
        (
            "center_crop",
            to_tensor(&crop::centre_crop(&img, [224, 224])),
            1e-6,
        ),
        ("hflip", to_tensor(&geometry::flip_h(&img)), 1e-6),
        ("vflip", to_tensor(&geometry::flip_v(&img)), 1e-6),
        ("eval_normalize", normalised, gray / 0.224 + 1e-5),
        ("five_crop", stack(&five_crop(&dyn_img, [224, 224])), 1e-6),
        ("ten_crop", stack(&ten_crop(&resized, [224, 224])), gray),
    ];
    for (name, got, tol) in cases {
        let shape: Vec<usize> = meta[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing from meta.json"))
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let want = read_f32(&dir.path().join(format!("{name}.bin")));
        assert_eq!(want.len(), shape.iter().product::<usize>(), "{name}");
        assert_eq!(got.len(), want.len(), "{name}: shape {shape:?}");
        let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().copied().fold(0.0, f32::max);
        let off = diffs.iter().filter(|&&d| d > 1e-6).count();
        eprintln!(
            "{name:16} {shape:?}: max |diff| = {max:.2e} ({:.3} gray levels), {off} of {} values differ",
            max * 255.0,
            diffs.len()
        );
        assert!(max <= tol, "{name}: max |diff| {max} > {tol}");
    }
}
