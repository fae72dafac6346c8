//! Automatic augmentation policies: RandAugment (Cubuk et al. 2020: `n` ops at magnitude `m`
//! of 31 bins) and TrivialAugment (Müller & Hutter 2021: one op, uniform magnitude), with
//! torchvision's operation lists and magnitude ranges (`RandAugment`, `TrivialAugmentWide`).

use rand::Rng;
use rand::rngs::StdRng;

use super::color::{adjust_brightness, adjust_contrast, adjust_saturation};
use super::geometry::{Fill, warp};
use super::{Img, Transform};

/// Magnitude bins, as torchvision.
const BINS: usize = 31;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

const OPS: [Op; 14] = [
    Op::Identity,
    Op::ShearX,
    Op::ShearY,
    Op::TranslateX,
    Op::TranslateY,
    Op::Rotate,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Sharpness,
    Op::Posterize,
    Op::Solarize,
    Op::AutoContrast,
    Op::Equalize,
];

/// The magnitude of `op` at `bin` (0..31) and whether it takes a random sign; `wide` selects
/// TrivialAugmentWide's larger ranges.
fn magnitude(op: Op, bin: usize, wide: bool, img: &Img) -> (f64, bool) {
    let t = bin as f64 / (BINS - 1) as f64;
    let lin = |max: f64| max * t;
    match op {
        Op::Identity | Op::AutoContrast | Op::Equalize => (0.0, false),
        Op::ShearX | Op::ShearY => (lin(if wide { 0.99 } else { 0.3 }), true),
        Op::TranslateX => (
            lin(if wide {
                32.0
            } else {
                150.0 / 331.0 * img.w as f64
            }),
            true,
        ),
        Op::TranslateY => (
            lin(if wide {
                32.0
            } else {
                150.0 / 331.0 * img.h as f64
            }),
            true,
        ),
        Op::Rotate => (lin(if wide { 135.0 } else { 30.0 }), true),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
            (lin(if wide { 0.99 } else { 0.9 }), true)
        }
        Op::Posterize => {
            let div = (BINS - 1) as f64 / if wide { 6.0 } else { 4.0 };
            (8.0 - (bin as f64 / div).round(), false)
        }
        Op::Solarize => (255.0 * (1.0 - t), false),
    }
}

fn map_channels(img: &mut Img, luts: &[[u8; 256]]) {
    let c = img.c;
    for p in img.px.chunks_exact_mut(c) {
        for (v, lut) in p.iter_mut().zip(luts) {
            *v = lut[*v as usize];
        }
    }
}

fn histograms(img: &Img) -> Vec<[u32; 256]> {
    let mut h = vec![[0u32; 256]; img.c];
    for p in img.px.chunks_exact(img.c) {
        for (hc, &v) in h.iter_mut().zip(p) {
            hc[v as usize] += 1;
        }
    }
    h
}

/// PIL's `ImageOps.autocontrast` (no cutoff): each channel stretched to [0, 255].
pub fn autocontrast(img: &mut Img) {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
            let hi = h.iter().rposition(|&n| n > 0).unwrap_or(255);
            if hi <= lo {
                return std::array::from_fn(|i| i as u8);
            }
            let scale = 255.0 / (hi - lo) as f64;
            let offset = -(lo as f64) * scale;
            std::array::from_fn(|i| (i as f64 * scale + offset).clamp(0.0, 255.0) as u8)
        })
        .collect();
    map_channels(img, &luts);
}

/// PIL's `ImageOps.equalize`: per-channel histogram equalisation.
pub fn equalize(img: &mut Img) {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let nonzero: Vec<u32> = h.iter().copied().filter(|&n| n > 0).collect();
            let step = if nonzero.len() <= 1 {
                0
            } else {
                (nonzero.iter().sum::<u32>() - nonzero[nonzero.len() - 1]) / 255
            };
            if step == 0 {
                return std::array::from_fn(|i| i as u8);
            }
            let mut n = step / 2;
            std::array::from_fn(|i| {
                let v = (n / step).min(255) as u8;
                n += h[i];
                v
            })
        })
        .collect();
    map_channels(img, &luts);
}

/// PIL's `ImageEnhance.Sharpness`: blend with the image smoothed by the 3x3 kernel
/// `[1 1 1; 1 5 1; 1 1 1] / 13` (borders kept), by factor `f` (1 keeps the image).
pub fn adjust_sharpness(img: &mut Img, f: f32) {
    let (w, h, c) = (img.w as usize, img.h as usize, img.c);
    if w < 3 || h < 3 {
        return;
    }
    let src = img.px.clone();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for ch in 0..c {
                let mut s = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dy == 1 && dx == 1 { 5 } else { 1 };
                        s += k * src[((y + dy - 1) * w + x + dx - 1) * c + ch] as u32;
                    }
                }
                let smooth = ((s + 6) / 13) as f32;
                let i = (y * w + x) * c + ch;
                img.px[i] = (smooth + f * (src[i] as f32 - smooth)).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

fn apply_op(img: Img, op: Op, mag: f64) -> Img {
    let fill = Fill::Constant(0);
    let mut img = img;
    match op {
        Op::Identity => {}
        // Shears and translations about the top-left corner, as torchvision (center=[0, 0]).
        Op::ShearX => img = warp(&img, [1.0, mag, 0.0, 0.0, 1.0, 0.0], fill),
        Op::ShearY => img = warp(&img, [1.0, 0.0, 0.0, mag, 1.0, 0.0], fill),
        Op::TranslateX => img = warp(&img, [1.0, 0.0, -mag, 0.0, 1.0, 0.0], fill),
        Op::TranslateY => img = warp(&img, [1.0, 0.0, 0.0, 0.0, 1.0, -mag], fill),
        Op::Rotate => {
            let (s, c) = mag.to_radians().sin_cos();
            let (cx, cy) = (img.w as f64 / 2.0 - 0.5, img.h as f64 / 2.0 - 0.5);
            let m = [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy];
            img = warp(&img, m, fill);
        }
        Op::Brightness => adjust_brightness(&mut img, 1.0 + mag as f32),
        Op::Color => adjust_saturation(&mut img, 1.0 + mag as f32),
        Op::Contrast => adjust_contrast(&mut img, 1.0 + mag as f32),
        Op::Sharpness => adjust_sharpness(&mut img, 1.0 + mag as f32),
        Op::Posterize => {
            let mask = 0xFFu8 << (8 - (mag as u32).clamp(1, 8)) as u8;
            img.px.iter_mut().for_each(|v| *v &= mask);
        }
        Op::Solarize => {
            let t = mag as u8;
            img.px
                .iter_mut()
                .filter(|v| **v >= t)
                .for_each(|v| *v = 255 - *v);
        }
        Op::AutoContrast => autocontrast(&mut img),
        Op::Equalize => equalize(&mut img),
    }
    img
}

/// RandAugment: `n` operations drawn uniformly (with replacement), each at magnitude bin `m`
/// (0..=30) with a random sign where the operation has one.
#[derive(Debug, Clone)]
pub struct RandAugment {
    /// Operations per image.
    pub n: usize,
    /// Magnitude bin, 0..=30.
    pub m: usize,
}

impl Transform for RandAugment {
    fn apply(&self, mut img: Img, rng: &mut StdRng) -> Img {
        for _ in 0..self.n {
            let op = OPS[rng.random_range(0..OPS.len())];
            let (mut mag, signed) = magnitude(op, self.m.min(BINS - 1), false, &img);
            if signed && rng.random::<bool>() {
                mag = -mag;
            }
            img = apply_op(img, op, mag);
        }
        img
    }
}

/// TrivialAugment (wide): one operation and one magnitude bin, both uniform, per image.
#[derive(Debug, Clone)]
pub struct TrivialAugment;

impl Transform for TrivialAugment {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let op = OPS[rng.random_range(0..OPS.len())];
        let bin = rng.random_range(0..BINS);
        let (mut mag, signed) = magnitude(op, bin, true, &img);
        if signed && rng.random::<bool>() {
            mag = -mag;
        }
        apply_op(img, op, mag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn point_operations_do_what_pil_does() {
        let mut img = Img {
            w: 4,
            h: 1,
            c: 1,
            px: vec![50, 100, 150, 200],
        };
        autocontrast(&mut img);
        assert_eq!(img.px, vec![0, 85, 170, 255]);
        let mut flat = Img {
            w: 3,
            h: 3,
            c: 1,
            px: vec![7; 9],
        };
        equalize(&mut flat);
        autocontrast(&mut flat);
        adjust_sharpness(&mut flat, 2.0);
        assert_eq!(flat.px, vec![7; 9]);
        // Equalize spreads the levels over the range (values checked against Pillow).
        let mut three = Img {
            w: 600,
            h: 1,
            c: 1,
            px: [10u8, 20, 30].iter().flat_map(|&v| [v; 200]).collect(),
        };
        equalize(&mut three);
        assert_eq!((three.px[0], three.px[200], three.px[400]), (0, 200, 255));
        let p = apply_op(
            Img {
                w: 2,
                h: 1,
                c: 1,
                px: vec![255, 37],
            },
            Op::Posterize,
            2.0,
        );
        assert_eq!(p.px, vec![192, 0]);
        let s = apply_op(
            Img {
                w: 2,
                h: 1,
                c: 1,
                px: vec![200, 100],
            },
            Op::Solarize,
            128.0,
        );
        assert_eq!(s.px, vec![55, 100]);
        // Translating by 1 pixel moves a known pixel and fills with 0.
        let t = apply_op(
            Img {
                w: 3,
                h: 1,
                c: 1,
                px: vec![1, 2, 3],
            },
            Op::TranslateX,
            1.0,
        );
        assert_eq!(t.px, vec![0, 1, 2]);
    }

    #[test]
    fn policies_keep_size_and_are_seeded() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut px = vec![0u8; 40 * 30 * 3];
        rng.fill(&mut px[..]);
        let img = Img {
            w: 40,
            h: 30,
            c: 3,
            px,
        };
        let ra = RandAugment { n: 2, m: 9 };
        let mut changed = 0;
        for s in 0..40 {
            for t in [&ra as &dyn Transform, &TrivialAugment] {
                let a = t.apply(img.clone(), &mut StdRng::seed_from_u64(s));
                assert_eq!((a.w, a.h, a.c), (40, 30, 3));
                assert_eq!(a, t.apply(img.clone(), &mut StdRng::seed_from_u64(s)));
                changed += (a != img) as usize;
            }
        }
        // Identity is 1 op in 14: most draws change the image.
        assert!(changed > 60, "{changed}");
    }
}
