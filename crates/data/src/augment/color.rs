//! Photometric augmentation on 8-bit pixels: colour jitter (brightness, contrast, saturation,
//! hue, in random order as torchvision), random grayscale, Gaussian blur, AlexNet PCA
//! lighting noise and random erasing.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{Img, Transform};

/// ImageNet RGB eigenvalues (pixels in [0, 1]) used by AlexNet's lighting noise.
pub const IMAGENET_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// ImageNet RGB eigenvectors (columns), as in fb.resnet.torch.
pub const IMAGENET_EIGVEC: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// A standard normal draw (Box-Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// ITU-R 601-2 luma in PIL's fixed point (`convert("L")`), rounded to an integer.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Rounds and clamps to a byte.
#[inline]
fn to_u8(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// Clamps and truncates to a byte, as PIL's `Image.blend` (which torchvision's colour
/// adjustments use) does (NaN gives 0). Written so that it vectorises, which a plain `as u8`,
/// checking for NaN and range value by value, does not.
#[inline(always)]
#[expect(
    clippy::manual_clamp,
    reason = "`clamp` keeps NaN, this gives 0 for it"
)]
fn blend_u8(v: f32) -> u8 {
    // `max` returns the other operand for NaN, so this is a number in [0, 255].
    let v = v.max(0.0).min(255.0);
    // SAFETY: `v` is finite and in range for `i32`.
    unsafe { v.to_int_unchecked::<i32>() as u8 }
}

fn lut(f: impl Fn(f32) -> f32) -> [u8; 256] {
    std::array::from_fn(|i| blend_u8(f(i as f32)))
}

/// Multiplies every value by `f` (brightness factor; 1 keeps the image).
pub fn adjust_brightness(img: &mut Img, f: f32) {
    run_steps(img, &[Step::Brightness(f)], false);
}

/// Blends with the mean gray level (contrast factor; 1 keeps the image).
pub fn adjust_contrast(img: &mut Img, f: f32) {
    let mean = run_steps(img, &[], true);
    run_steps(img, &[Step::Contrast(f, mean)], false);
}

/// Blends each pixel with its gray level (saturation factor; 0 gives gray).
pub fn adjust_saturation(img: &mut Img, f: f32) {
    if img.c == 3 {
        run_steps(img, &[Step::Saturation(f)], false);
    }
}

/// One colour adjustment, in PIL's arithmetic (`ImageEnhance`, i.e. `Image.blend` in f32
/// truncated to a byte after each step).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `v * f`.
    Brightness(f32),
    /// `mean + f * (v - mean)`, with the mean gray level of the image the step receives.
    Contrast(f32, f32),
    /// `g + f * (v - g)`, with `g` the pixel's gray level (RGB only).
    Saturation(f32),
}

/// Pixels per block of [`run_steps`]: enough to fill vector registers, few enough to stay in
/// L1 cache while every step goes over them.
const BLOCK: usize = 32;

/// Applies `steps` in order to every pixel, one block of pixels at a time (one pass over the
/// image however many steps); with `mean`, also returns the mean gray level of the result
/// (PIL's `ImageEnhance.Contrast` rounds it to an integer), else 0.
fn run_steps(img: &mut Img, steps: &[Step], mean: bool) -> f32 {
    if steps.is_empty() && !mean {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    let sum = if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { steps_avx2(&mut img.px, img.c, steps, mean) }
    } else {
        steps_kernel(&mut img.px, img.c, steps, mean)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = steps_kernel(&mut img.px, img.c, steps, mean);
    let n = (img.w as u64 * img.h as u64).max(1);
    ((sum as f64 / n as f64) + 0.5).floor() as f32
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn steps_avx2(px: &mut [u8], c: usize, steps: &[Step], sum: bool) -> u64 {
    steps_kernel(px, c, steps, sum)
}

/// The body of [`run_steps`]: per block, each step is one flat loop over the bytes (the
/// saturation's gray levels spread to one per byte first), which the compiler vectorises.
/// Returns the sum of the result's gray levels when `sum`.
#[inline(always)]
fn steps_kernel(px: &mut [u8], c: usize, steps: &[Step], sum: bool) -> u64 {
    let mut total = 0u64;
    let mut gray = [0f32; 3 * BLOCK];
    for block in px.chunks_mut(3 * BLOCK) {
        for step in steps {
            match *step {
                Step::Brightness(f) => {
                    for v in block.iter_mut() {
                        *v = blend_u8(*v as f32 * f);
                    }
                }
                Step::Contrast(f, m) => {
                    for v in block.iter_mut() {
                        *v = blend_u8(m + f * (*v as f32 - m));
                    }
                }
                Step::Saturation(f) => {
                    for (g, p) in gray.chunks_exact_mut(3).zip(block.chunks_exact(3)) {
                        g.fill(luma(p[0], p[1], p[2]) as f32);
                    }
                    for (v, &g) in block.iter_mut().zip(&gray) {
                        *v = blend_u8(g + f * (*v as f32 - g));
                    }
                }
            }
        }
        if sum {
            let s: u32 = if c == 3 {
                block
                    .chunks_exact(3)
                    .map(|p| luma(p[0], p[1], p[2]) as u32)
                    .sum()
            } else {
                block.iter().map(|&v| v as u32).sum()
            };
            total += s as u64;
        }
    }
    total
}

/// Rotates the hue by `shift` turns (in [-0.5, 0.5]) through HSV.
pub fn adjust_hue(img: &mut Img, shift: f32) {
    if img.c != 3 || shift == 0.0 {
        return;
    }
    for p in img.px.chunks_exact_mut(3) {
        let (r, g, b) = (
            p[0] as f32 / 255.0,
            p[1] as f32 / 255.0,
            p[2] as f32 / 255.0,
        );
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d == 0.0 {
            continue; // Gray: no hue.
        }
        let s = d / max;
        let mut h = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        } / 6.0;
        h = (h + shift).rem_euclid(1.0);
        let v = max;
        let h6 = h * 6.0;
        let i = h6.floor();
        let f = h6 - i;
        let (pp, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match i as i32 % 6 {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        p[0] = to_u8(r * 255.0);
        p[1] = to_u8(g * 255.0);
        p[2] = to_u8(b * 255.0);
    }
}

/// torchvision `ColorJitter`: factors drawn from `[max(0, 1-x), 1+x]` (hue from `±hue`),
/// the four adjustments applied in a random order.
#[derive(Debug, Clone, Default)]
pub struct ColorJitter {
    /// Brightness spread.
    pub brightness: f32,
    /// Contrast spread.
    pub contrast: f32,
    /// Saturation spread.
    pub saturation: f32,
    /// Hue spread in turns (at most 0.5).
    pub hue: f32,
}

impl ColorJitter {
    /// The random order of the four adjustments (0 brightness, 1 contrast, 2 saturation,
    /// 3 hue) and their factors, drawn as torchvision's `ColorJitter.get_params` does; a
    /// factor of 1 (hue 0) means the step is skipped.
    fn draw(&self, rng: &mut StdRng) -> ([usize; 4], [f32; 4]) {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let mut factor = |x: f32| {
            if x > 0.0 {
                rng.random_range((1.0 - x).max(0.0)..=1.0 + x)
            } else {
                1.0
            }
        };
        let (b, c, s) = (
            factor(self.brightness),
            factor(self.contrast),
            factor(self.saturation),
        );
        let h = if self.hue > 0.0 {
            rng.random_range(-self.hue..=self.hue)
        } else {
            0.0
        };
        (order, [b, c, s, h])
    }
}

impl Transform for ColorJitter {
    fn apply(&self, mut img: Img, rng: &mut StdRng) -> Img {
        let (order, [b, c, s, h]) = self.draw(rng);
        // Consecutive steps run in one pass over the pixels; contrast needs the mean gray
        // level of what it receives, so the steps before it run first (with the mean taken
        // in the same pass).
        // Each step occurs once, so three slots hold the pending ones.
        let mut pending = [Step::Brightness(1.0); 3];
        let mut n = 0;
        for op in order {
            let step = match op {
                0 if b != 1.0 => Step::Brightness(b),
                1 if c != 1.0 => {
                    let mean = run_steps(&mut img, &pending[..n], true);
                    n = 0;
                    Step::Contrast(c, mean)
                }
                2 if s != 1.0 && img.c == 3 => Step::Saturation(s),
                3 if h != 0.0 && img.c == 3 => {
                    run_steps(&mut img, &pending[..n], false);
                    n = 0;
                    adjust_hue(&mut img, h);
                    continue;
                }
                _ => continue,
            };
            pending[n] = step;
            n += 1;
        }
        run_steps(&mut img, &pending[..n], false);
        img
    }
}

/// With probability `p`, replaces an RGB image by its gray level (kept as 3 channels).
#[derive(Debug, Clone)]
pub struct RandomGray {
    /// Probability.
    pub p: f64,
}

impl Transform for RandomGray {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        if rng.random::<f64>() >= self.p {
            return img;
        }
        let mut img = img;
        adjust_saturation(&mut img, 0.0);
        img
    }
}

/// Separable Gaussian blur of standard deviation `sigma` (radius `ceil(3 sigma)`, edges
/// reflected).
pub fn gaussian_blur(img: &Img, sigma: f32) -> Img {
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let (w, h, c) = (img.w as i64, img.h as i64, img.c);
    let refl = |i: i64, n: i64| -> usize {
        let m = i.rem_euclid(2 * n);
        (if m < n { m } else { 2 * n - 1 - m }) as usize
    };
    let mut mid = vec![0f32; img.px.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut a = 0.0;
                for (j, kw) in k.iter().enumerate() {
                    let sx = refl(x + j as i64 - r, w);
                    a += kw * img.px[(y as usize * w as usize + sx) * c + ch] as f32;
                }
                mid[(y * w + x) as usize * c + ch] = a;
            }
        }
    }
    let mut px = vec![0u8; img.px.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut a = 0.0;
                for (j, kw) in k.iter().enumerate() {
                    let sy = refl(y + j as i64 - r, h);
                    a += kw * mid[(sy * w as usize + x as usize) * c + ch];
                }
                px[(y * w + x) as usize * c + ch] = to_u8(a);
            }
        }
    }
    Img { px, ..*img }
}

/// Gaussian blur with a standard deviation drawn from `[0.1, sigma]` (torchvision's
/// `GaussianBlur` default range is `[0.1, 2]`).
#[derive(Debug, Clone)]
pub struct Blur {
    /// Largest standard deviation, pixels.
    pub sigma: f32,
}

impl Transform for Blur {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let s = rng.random_range(0.1..=self.sigma.max(0.1));
        gaussian_blur(&img, s)
    }
}

/// AlexNet's PCA lighting noise: adds `eigvec · (alpha * eigval)` to every RGB pixel, with
/// `alpha ~ N(0, std)` per image (ImageNet eigen-decomposition).
#[derive(Debug, Clone)]
pub struct Lighting {
    /// Standard deviation of alpha (0.1 in the paper).
    pub std: f32,
}

impl Transform for Lighting {
    fn apply(&self, mut img: Img, rng: &mut StdRng) -> Img {
        if img.c != 3 {
            return img;
        }
        let a: [f32; 3] =
            std::array::from_fn(|i| normal(rng) as f32 * self.std * IMAGENET_EIGVAL[i]);
        let offset: [f32; 3] = std::array::from_fn(|ch| {
            255.0 * (0..3).map(|j| IMAGENET_EIGVEC[ch][j] * a[j]).sum::<f32>()
        });
        let luts: [[u8; 256]; 3] = std::array::from_fn(|ch| lut(|v| v + offset[ch]));
        for p in img.px.chunks_exact_mut(3) {
            for ch in 0..3 {
                p[ch] = luts[ch][p[ch] as usize];
            }
        }
        img
    }
}

/// Random erasing (Zhong et al. 2017, torchvision `RandomErasing`): with probability `p`, a
/// box of area fraction in [0.02, 0.33] and aspect ratio in [0.3, 3.3] is filled with noise.
#[derive(Debug, Clone)]
pub struct Erase {
    /// Probability.
    pub p: f64,
}

impl Transform for Erase {
    fn apply(&self, mut img: Img, rng: &mut StdRng) -> Img {
        if rng.random::<f64>() >= self.p {
            return img;
        }
        let area = img.w as f64 * img.h as f64;
        for _ in 0..10 {
            let target = area * rng.random_range(0.02..=0.33);
            let ar = rng.random_range(0.3f64.ln()..=3.3f64.ln()).exp();
            let h = (target * ar).sqrt().round() as u32;
            let w = (target / ar).sqrt().round() as u32;
            if w == 0 || h == 0 || w >= img.w || h >= img.h {
                continue;
            }
            let top = rng.random_range(0..=img.h - h) as usize;
            let left = rng.random_range(0..=img.w - w) as usize;
            let (iw, c) = (img.w as usize, img.c);
            for y in top..top + h as usize {
                let row = &mut img.px[(y * iw + left) * c..(y * iw + left + w as usize) * c];
                rng.fill(row);
            }
            break;
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn noise(w: u32, h: u32, c: usize, seed: u64) -> Img {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut px = vec![0u8; w as usize * h as usize * c];
        rng.fill(&mut px[..]);
        Img { w, h, c, px }
    }

    #[test]
    fn jitter_is_identity_at_factor_one_and_stays_in_range() {
        let img = noise(16, 16, 3, 1);
        let mut same = img.clone();
        adjust_brightness(&mut same, 1.0);
        adjust_contrast(&mut same, 1.0);
        adjust_saturation(&mut same, 1.0);
        adjust_hue(&mut same, 0.0);
        assert_eq!(same.px, img.px);
        // A full hue turn returns the colour (up to HSV rounding).
        let mut turn = img.clone();
        adjust_hue(&mut turn, 0.5);
        adjust_hue(&mut turn, -0.5);
        assert!(
            turn.px
                .iter()
                .zip(&img.px)
                .all(|(a, b)| a.abs_diff(*b) <= 2)
        );
        // Brightness 0 gives black, contrast 0 a flat image, saturation 0 gray.
        let mut b = img.clone();
        adjust_brightness(&mut b, 0.0);
        assert!(b.px.iter().all(|&v| v == 0));
        let mut c = img.clone();
        adjust_contrast(&mut c, 0.0);
        assert!(c.px.iter().all(|&v| v == c.px[0]));
        let mut s = img.clone();
        adjust_saturation(&mut s, 0.0);
        assert!(s.px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        // Strong random jitter keeps the size; mean brightness follows the factor's range.
        let j = ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        };
        let mut rng = StdRng::seed_from_u64(5);
        let flat = Img {
            w: 8,
            h: 8,
            c: 3,
            px: vec![100; 192],
        };
        for _ in 0..50 {
            let o = j.apply(flat.clone(), &mut rng);
            assert_eq!(o.px.len(), 192);
            // On a gray image only brightness acts: 100 * [0.6, 1.4].
            assert!(
                o.px.iter().all(|&v| (60..=140).contains(&v)),
                "{:?}",
                &o.px[..3]
            );
        }
    }

    #[test]
    fn blur_lighting_gray_and_erase() {
        let img = noise(20, 12, 3, 2);
        let blurred = gaussian_blur(&img, 1.5);
        let var = |i: &Img| {
            let m = i.px.iter().map(|&v| v as f64).sum::<f64>() / i.px.len() as f64;
            i.px.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / i.px.len() as f64
        };
        assert!(var(&blurred) < var(&img) / 4.0);
        let flat = Img {
            w: 5,
            h: 5,
            c: 1,
            px: vec![90; 25],
        };
        assert_eq!(gaussian_blur(&flat, 2.0).px, flat.px);
        // Lighting shifts each channel by one offset: differences between pixels are kept.
        let mid = Img {
            w: 4,
            h: 1,
            c: 3,
            px: vec![100, 110, 120, 130, 140, 150, 90, 80, 70, 60, 50, 40],
        };
        let lit = Lighting { std: 0.5 }.apply(mid.clone(), &mut StdRng::seed_from_u64(9));
        let d0: Vec<i32> = (0..3)
            .map(|c| lit.px[c] as i32 - mid.px[c] as i32)
            .collect();
        for p in 1..4 {
            for (c, d0) in d0.iter().enumerate() {
                let d = lit.px[p * 3 + c] as i32 - mid.px[p * 3 + c] as i32;
                assert!((d - d0).abs() <= 1);
            }
        }
        assert!(d0.iter().any(|&d| d != 0));
        let g = RandomGray { p: 1.0 }.apply(img.clone(), &mut StdRng::seed_from_u64(0));
        assert!(g.px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        let zero = Img {
            w: 30,
            h: 30,
            c: 1,
            px: vec![0; 900],
        };
        let e = Erase { p: 1.0 }.apply(zero, &mut StdRng::seed_from_u64(4));
        let changed = e.px.iter().filter(|&&v| v != 0).count();
        assert!((9..=900 / 3 + 30).contains(&changed), "{changed}");
    }

    /// torchvision's `ColorJitter` on PIL, step by step: each adjustment a full pass, PIL's
    /// f32 blend truncated to a byte (the code before the fused kernel).
    fn reference_jitter(j: &ColorJitter, mut img: Img, rng: &mut StdRng) -> Img {
        let (order, [b, c, s, h]) = j.draw(rng);
        let trunc = |v: f32| v.clamp(0.0, 255.0) as u8;
        for op in order {
            match op {
                0 => img.px.iter_mut().for_each(|v| *v = trunc(*v as f32 * b)),
                1 => {
                    let sum: u64 = if img.c == 3 {
                        let l = |p: &[u8]| luma(p[0], p[1], p[2]) as u64;
                        img.px.chunks_exact(3).map(l).sum()
                    } else {
                        img.px.iter().map(|&v| v as u64).sum()
                    };
                    let n = img.w as f64 * img.h as f64;
                    let m = ((sum as f64 / n) + 0.5).floor() as f32;
                    img.px
                        .iter_mut()
                        .for_each(|v| *v = trunc(m + c * (*v as f32 - m)));
                }
                2 if img.c == 3 => {
                    for p in img.px.chunks_exact_mut(3) {
                        let g = luma(p[0], p[1], p[2]) as f32;
                        p.iter_mut()
                            .for_each(|v| *v = trunc(g + s * (*v as f32 - g)));
                    }
                }
                3 => adjust_hue(&mut img, h),
                _ => {}
            }
        }
        img
    }

    #[test]
    fn fused_jitter_matches_the_steps_one_by_one() {
        for (x, hue) in [(0.4, 0.0), (0.4, 0.1), (0.9, 0.0), (2.0, 0.3)] {
            let j = ColorJitter {
                brightness: x,
                contrast: x,
                saturation: x,
                hue,
            };
            for (w, h, c) in [(37, 23, 3), (37, 23, 1), (5, 1, 3)] {
                let img = noise(w, h, c, w as u64 + c as u64);
                for seed in 0..200 {
                    let got = j.apply(img.clone(), &mut StdRng::seed_from_u64(seed));
                    let want = reference_jitter(&j, img.clone(), &mut StdRng::seed_from_u64(seed));
                    assert!(got == want, "{x} {hue} {w}x{h}x{c} seed {seed}");
                }
            }
        }
        // The portable kernel agrees with the one this CPU dispatches to.
        let img = noise(41, 19, 3, 7);
        let steps = [
            Step::Saturation(1.3),
            Step::Brightness(0.7),
            Step::Contrast(1.4, 97.0),
        ];
        for n in 0..=3 {
            for sum in [false, true] {
                let mut a = img.clone();
                let mean = run_steps(&mut a, &steps[..n], sum);
                let mut b = img.px.clone();
                let total = steps_kernel(&mut b, 3, &steps[..n], sum);
                assert_eq!(a.px, b);
                let n_px = 41.0 * 19.0;
                assert_eq!(mean, ((total as f64 / n_px) + 0.5).floor() as f32);
            }
        }
    }
}
