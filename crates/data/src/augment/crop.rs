//! Resizing and cropping: PIL-compatible separable resampling (so crops and resizes match
//! torchvision on PIL images), centre / random / random-resized crops, five- and ten-crop.

use image::DynamicImage;
use rand::Rng;
use rand::rngs::StdRng;

use super::{Img, Transform};

/// Resampling filter of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle filter, antialiased when shrinking, as PIL does).
    Bilinear,
    /// Bicubic (a = -0.5, as PIL).
    Bicubic,
}

impl Interp {
    /// Parses `nearest`, `bilinear` or `bicubic`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "nearest" => Some(Interp::Nearest),
            "bilinear" => Some(Interp::Bilinear),
            "bicubic" => Some(Interp::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Interp::Nearest => 0.5,
            Interp::Bilinear => 1.0,
            Interp::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interp::Nearest => {
                if x < 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Interp::Bilinear => (1.0 - x).max(0.0),
            Interp::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION: u32 = 22;

/// Fixed-point filter taps of one output axis: per output pixel, the first input index and
/// its weights (PIL's `precompute_coeffs`).
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    stride: usize,
    w: Vec<i32>,
}

fn taps(in_size: usize, in0: f64, in1: f64, out: usize, f: Interp) -> Taps {
    let scale = (in1 - in0) / out as f64;
    let fscale = scale.max(1.0);
    let support = f.support() * fscale;
    let stride = support.ceil() as usize * 2 + 1;
    let mut t = Taps {
        start: Vec::with_capacity(out),
        len: Vec::with_capacity(out),
        stride,
        w: vec![0; out * stride],
    };
    let mut ws = vec![0f64; stride];
    for o in 0..out {
        let center = in0 + (o as f64 + 0.5) * scale;
        let (lo, hi) = if f == Interp::Nearest {
            // Exactly one tap: the pixel containing the sample point.
            let x = (center.floor().max(0.0) as usize).min(in_size - 1);
            (x, x + 1)
        } else {
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = (((center + support + 0.5).floor()) as usize).min(in_size);
            (lo.min(in_size - 1), hi.max(lo.min(in_size - 1) + 1))
        };
        let n = (hi - lo).min(stride);
        let mut total = 0.0;
        for (k, w) in ws.iter_mut().enumerate().take(n) {
            *w = if f == Interp::Nearest {
                1.0
            } else {
                f.weight((lo as f64 + k as f64 - center + 0.5) / fscale)
            };
            total += *w;
        }
        for (dst, &w) in t.w[o * stride..o * stride + n].iter_mut().zip(&ws) {
            let v = if total != 0.0 { w / total } else { 0.0 };
            *dst = (v * (1u32 << PRECISION) as f64).round() as i32;
        }
        t.start.push(lo);
        t.len.push(n);
    }
    t
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION).clamp(0, 255) as u8
}

/// Resamples the box `[x0, y0, x1, y1]` (input pixel coordinates, may be fractional) of `img`
/// to `out_w` x `out_h` in two separable passes: PIL's algorithm, so the result matches
/// `PIL.Image.resize(size, filter, box)` up to rounding.
pub fn resample(img: &Img, rect: [f64; 4], out_w: u32, out_h: u32, f: Interp) -> Img {
    let c = img.c;
    let (iw, ih) = (img.w as usize, img.h as usize);
    let (ow, oh) = (out_w.max(1) as usize, out_h.max(1) as usize);
    let tx = taps(iw, rect[0], rect[2], ow, f);
    let ty = taps(ih, rect[1], rect[3], oh, f);
    // Only the rows the vertical pass reads.
    let y_first = ty.start[0];
    let y_last = (0..oh).map(|o| ty.start[o] + ty.len[o]).max().unwrap_or(1);
    let rows = y_last - y_first;
    let mut mid = vec![0u8; rows * ow * c];
    let src = &img.px;
    const HALF: i32 = 1 << (PRECISION - 1);
    for r in 0..rows {
        let srow = &src[(y_first + r) * iw * c..(y_first + r + 1) * iw * c];
        let drow = &mut mid[r * ow * c..(r + 1) * ow * c];
        for o in 0..ow {
            let w = &tx.w[o * tx.stride..o * tx.stride + tx.len[o]];
            let base = tx.start[o] * c;
            let taps = &srow[base..base + w.len() * c];
            if c == 3 {
                // The common case, all three channels in one sweep over the taps.
                let (mut a0, mut a1, mut a2) = (HALF, HALF, HALF);
                for (p, &wk) in taps.chunks_exact(3).zip(w) {
                    a0 += p[0] as i32 * wk;
                    a1 += p[1] as i32 * wk;
                    a2 += p[2] as i32 * wk;
                }
                drow[o * 3] = clip8(a0);
                drow[o * 3 + 1] = clip8(a1);
                drow[o * 3 + 2] = clip8(a2);
            } else {
                for ch in 0..c {
                    let mut acc = HALF;
                    for (p, &wk) in taps.chunks_exact(c).zip(w) {
                        acc += p[ch] as i32 * wk;
                    }
                    drow[o * c + ch] = clip8(acc);
                }
            }
        }
    }
    let mut out = vec![0u8; oh * ow * c];
    let line = ow * c;
    let mut acc = vec![0i32; line];
    for o in 0..oh {
        let w = &ty.w[o * ty.stride..o * ty.stride + ty.len[o]];
        acc.fill(HALF);
        for (k, &wk) in w.iter().enumerate() {
            let r = ty.start[o] + k - y_first;
            let mrow = &mid[r * line..(r + 1) * line];
            for (a, &m) in acc.iter_mut().zip(mrow) {
                *a += m as i32 * wk;
            }
        }
        for (d, &a) in out[o * line..(o + 1) * line].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    Img {
        w: ow as u32,
        h: oh as u32,
        c,
        px: out,
    }
}

/// Copies the `w` x `h` window at `(left, top)`; parts outside the image are filled with 0
/// (as torchvision's crop pads).
pub fn crop(img: &Img, left: i64, top: i64, w: u32, h: u32) -> Img {
    let c = img.c;
    let mut px = vec![0u8; w as usize * h as usize * c];
    for y in 0..h as i64 {
        let sy = top + y;
        if sy < 0 || sy >= img.h as i64 {
            continue;
        }
        let x0 = left.max(0);
        let x1 = (left + w as i64).min(img.w as i64);
        if x1 <= x0 {
            continue;
        }
        let s = (sy as usize * img.w as usize + x0 as usize) * c;
        let d = (y as usize * w as usize + (x0 - left) as usize) * c;
        let n = (x1 - x0) as usize * c;
        px[d..d + n].copy_from_slice(&img.px[s..s + n]);
    }
    Img { w, h, c, px }
}

/// Top-left corner of a centred `w` x `h` crop, rounded as torchvision does (half to even).
fn centre_origin(img: &Img, w: u32, h: u32) -> (i64, i64) {
    let left = ((img.w as f64 - w as f64) / 2.0).round_ties_even() as i64;
    let top = ((img.h as f64 - h as f64) / 2.0).round_ties_even() as i64;
    (left, top)
}

/// The centred `size` (`[h, w]`) crop, as torchvision's `CenterCrop`.
pub fn centre_crop(img: &Img, size: [u32; 2]) -> Img {
    let [h, w] = size;
    let (left, top) = centre_origin(img, w, h);
    crop(img, left, top, w, h)
}

/// Output size of a resize of the shorter side to `s`, as torchvision computes it
/// (the longer side truncated).
pub fn shorter_side_size(w: u32, h: u32, s: u32) -> (u32, u32) {
    if w <= h {
        (s, ((s as u64 * h as u64) / w.max(1) as u64) as u32)
    } else {
        (((s as u64 * w as u64) / h.max(1) as u64) as u32, s)
    }
}

/// Resizes the whole image to `w` x `h`.
pub fn resize(img: &Img, w: u32, h: u32, f: Interp) -> Img {
    if img.w == w && img.h == h {
        return img.clone();
    }
    resample(img, [0.0, 0.0, img.w as f64, img.h as f64], w, h, f)
}

fn corners(img: &Img, size: [u32; 2]) -> [Img; 5] {
    let [h, w] = size;
    let (iw, ih) = (img.w as i64, img.h as i64);
    [
        crop(img, 0, 0, w, h),
        crop(img, iw - w as i64, 0, w, h),
        crop(img, 0, ih - h as i64, w, h),
        crop(img, iw - w as i64, ih - h as i64, w, h),
        centre_crop(img, size),
    ]
}

/// Four corner crops and the centre crop of `size` (`[h, w]`), in torchvision's order
/// (top-left, top-right, bottom-left, bottom-right, centre); for test-time augmentation.
/// A crop larger than the image is padded with 0.
pub fn five_crop(img: &DynamicImage, size: [u32; 2]) -> [DynamicImage; 5] {
    corners(&Img::from_dynamic(img.clone()), size).map(Img::into_dynamic)
}

/// [`five_crop`] of the image, then [`five_crop`] of its horizontal mirror (torchvision's
/// `TenCrop` order).
pub fn ten_crop(img: &DynamicImage, size: [u32; 2]) -> [DynamicImage; 10] {
    let a = Img::from_dynamic(img.clone());
    let b = super::geometry::flip_h(&a);
    let [a0, a1, a2, a3, a4] = corners(&a, size);
    let [b0, b1, b2, b3, b4] = corners(&b, size);
    [a0, a1, a2, a3, a4, b0, b1, b2, b3, b4].map(Img::into_dynamic)
}

/// Resize: the shorter side to `size[0]` (when `size[1]` is 0) or exactly `[h, w]`.
#[derive(Debug, Clone)]
pub struct Resize {
    /// `[h, w]`, or `[s, 0]` for "shorter side to s".
    pub size: [u32; 2],
    /// Filter.
    pub interp: Interp,
}

impl Transform for Resize {
    fn apply(&self, img: Img, _rng: &mut StdRng) -> Img {
        let (w, h) = if self.size[1] == 0 {
            shorter_side_size(img.w, img.h, self.size[0])
        } else {
            (self.size[1], self.size[0])
        };
        resize(&img, w, h, self.interp)
    }
}

/// VGG scale jittering: the shorter side resized to a size drawn uniformly from `[lo, hi]`.
#[derive(Debug, Clone)]
pub struct ScaleJitter {
    /// Smallest shorter side.
    pub lo: u32,
    /// Largest shorter side.
    pub hi: u32,
    /// Filter.
    pub interp: Interp,
}

impl Transform for ScaleJitter {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let s = rng.random_range(self.lo..=self.hi.max(self.lo));
        let (w, h) = shorter_side_size(img.w, img.h, s);
        resize(&img, w, h, self.interp)
    }
}

/// Centre crop to `[h, w]`.
#[derive(Debug, Clone)]
pub struct CentreCrop {
    /// `[h, w]`.
    pub size: [u32; 2],
}

impl Transform for CentreCrop {
    fn apply(&self, img: Img, _rng: &mut StdRng) -> Img {
        centre_crop(&img, self.size)
    }
}

/// Zero padding on every side (before a random crop, as torchvision's `RandomCrop(padding)`).
#[derive(Debug, Clone)]
pub struct Pad {
    /// Pixels added on each side.
    pub pad: u32,
}

impl Transform for Pad {
    fn apply(&self, img: Img, _rng: &mut StdRng) -> Img {
        let p = self.pad as i64;
        let (w, h) = (img.w + 2 * self.pad, img.h + 2 * self.pad);
        crop(&img, -p, -p, w, h)
    }
}

/// A crop of `[h, w]` at a uniformly drawn position (zero-padded if the image is smaller).
#[derive(Debug, Clone)]
pub struct RandomCrop {
    /// `[h, w]`.
    pub size: [u32; 2],
}

impl Transform for RandomCrop {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let [h, w] = self.size;
        let left = rng.random_range(0..=img.w.saturating_sub(w)) as i64;
        let top = rng.random_range(0..=img.h.saturating_sub(h)) as i64;
        crop(&img, left, top, w, h)
    }
}

/// Random resized crop (Inception / torchvision `RandomResizedCrop`): a box of random area
/// fraction `scale` and aspect ratio `ratio`, resampled to `[h, w]` in one pass.
#[derive(Debug, Clone)]
pub struct RandomResizedCrop {
    /// `[h, w]`.
    pub size: [u32; 2],
    /// Area fraction range.
    pub scale: [f64; 2],
    /// Aspect ratio (w/h) range.
    pub ratio: [f64; 2],
    /// Filter.
    pub interp: Interp,
}

impl RandomResizedCrop {
    /// The crop box `(left, top, w, h)` torchvision would draw (10 tries, then a centre crop
    /// clamped to the ratio range).
    pub fn draw_box(&self, iw: u32, ih: u32, rng: &mut StdRng) -> (u32, u32, u32, u32) {
        let area = iw as f64 * ih as f64;
        let (lr0, lr1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let ar = rng.random_range(lr0..=lr1).exp();
            let w = (target * ar).sqrt().round() as u32;
            let h = (target / ar).sqrt().round() as u32;
            if w > 0 && h > 0 && w <= iw && h <= ih {
                let top = rng.random_range(0..=ih - h);
                let left = rng.random_range(0..=iw - w);
                return (left, top, w, h);
            }
        }
        let in_ratio = iw as f64 / ih as f64;
        let (w, h) = if in_ratio < self.ratio[0] {
            (iw, (iw as f64 / self.ratio[0]).round() as u32)
        } else if in_ratio > self.ratio[1] {
            ((ih as f64 * self.ratio[1]).round() as u32, ih)
        } else {
            (iw, ih)
        };
        ((iw - w) / 2, (ih - h) / 2, w.max(1), h.max(1))
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let (l, t, w, h) = self.draw_box(img.w, img.h, rng);
        let rect = [l as f64, t as f64, (l + w) as f64, (t + h) as f64];
        resample(&img, rect, self.size[1], self.size[0], self.interp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(w: u32, h: u32, c: usize) -> Img {
        let px = (0..w as usize * h as usize * c)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        Img { w, h, c, px }
    }

    #[test]
    fn crops_have_the_stated_size_and_content() {
        let img = ramp(10, 8, 3);
        let c = centre_crop(&img, [4, 6]);
        assert_eq!((c.w, c.h), (6, 4));
        // Centre crop of 6x4 from 10x8 starts at (2, 2).
        assert_eq!(c.get(0, 0), img.get(2, 2));
        let dyn_img = img.clone().into_dynamic();
        let five = five_crop(&dyn_img, [3, 5]);
        for f in &five {
            assert_eq!((f.width(), f.height()), (5, 3));
        }
        let br = Img::from_dynamic(five[3].clone());
        assert_eq!(br.get(4, 2), img.get(9, 7));
        let tr = Img::from_dynamic(five[1].clone());
        assert_eq!(tr.get(0, 0), img.get(5, 0));
        let ten = ten_crop(&dyn_img, [3, 5]);
        // The 6th crop is the top-left of the mirror: the mirrored top-right.
        let m = Img::from_dynamic(ten[5].clone());
        assert_eq!(m.get(0, 0), img.get(9, 0));
        assert_eq!(m.get(4, 0), img.get(5, 0));
        let mut rng = StdRng::seed_from_u64(0);
        let rc = RandomCrop { size: [5, 5] }
            .apply(Pad { pad: 2 }.apply(img.clone(), &mut rng), &mut rng);
        assert_eq!((rc.w, rc.h), (5, 5));
        let rrc = RandomResizedCrop {
            size: [7, 9],
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
            interp: Interp::Bilinear,
        };
        for _ in 0..20 {
            let o = rrc.apply(img.clone(), &mut rng);
            assert_eq!((o.w, o.h, o.c), (9, 7, 3));
        }
    }

    #[test]
    fn resize_keeps_constant_images_and_sizes() {
        let img = Img {
            w: 13,
            h: 9,
            c: 1,
            px: vec![77; 13 * 9],
        };
        for f in [Interp::Nearest, Interp::Bilinear, Interp::Bicubic] {
            for (w, h) in [(5, 4), (26, 17), (13, 9)] {
                let r = resize(&img, w, h, f);
                assert_eq!((r.w, r.h), (w, h));
                assert!(r.px.iter().all(|&v| v == 77), "{f:?} {w}x{h}");
            }
        }
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        // Upscaling by 2 with bilinear interpolates between neighbours.
        let two = Img {
            w: 2,
            h: 1,
            c: 1,
            px: vec![0, 200],
        };
        let r = resize(&two, 4, 1, Interp::Bilinear);
        assert_eq!(r.px, vec![0, 50, 150, 200]);
    }
}
