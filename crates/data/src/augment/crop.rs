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
/// Rounding offset added to every accumulator (PIL's `1 << (PRECISION - 1)`).
const HALF: i32 = 1 << (PRECISION - 1);

/// Fixed-point filter taps of one output axis (PIL's `precompute_coeffs`), padded to one
/// count `k` for all outputs: output `o` reads inputs `start[o]..start[o] + k` (always inside
/// the input) with weights `w[o * k..(o + 1) * k]`, zero where PIL has no tap. Adding zero
/// terms leaves the integer sums unchanged, and fixed-length windows make the inner loops
/// free of edge cases.
struct Taps {
    start: Vec<usize>,
    k: usize,
    w: Vec<i32>,
}

fn taps(in_size: usize, in0: f64, in1: f64, out: usize, f: Interp) -> Taps {
    let scale = (in1 - in0) / out as f64;
    let fscale = scale.max(1.0);
    let support = f.support() * fscale;
    let stride = support.ceil() as usize * 2 + 1;
    // PIL's windows: first input and weights of each output.
    let mut first = Vec::with_capacity(out);
    let mut pil = vec![0i32; out * stride];
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
        for (dst, &w) in pil[o * stride..o * stride + n].iter_mut().zip(&ws) {
            let v = if total != 0.0 { w / total } else { 0.0 };
            *dst = (v * (1u32 << PRECISION) as f64).round() as i32;
        }
        first.push((lo, n));
    }
    // Pad every window to the longest, shifting those at the far edge back inside the input.
    let k = first.iter().map(|&(_, n)| n).max().unwrap_or(1);
    let mut t = Taps {
        start: Vec::with_capacity(out),
        k,
        w: vec![0; out * k],
    };
    for (o, &(lo, n)) in first.iter().enumerate() {
        let s = lo.min(in_size - k);
        let at = o * k + lo - s;
        t.w[at..at + n].copy_from_slice(&pil[o * stride..o * stride + n]);
        t.start.push(s);
    }
    t
}

#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION).clamp(0, 255) as u8
}

/// One row of the horizontal pass, `C` interleaved channels, `K` taps per output.
#[inline(always)]
fn h_row<const C: usize, const K: usize>(src: &[u8], dst: &mut [u8], start: &[usize], w: &[i32]) {
    for ((d, &s), wk) in dst.chunks_exact_mut(C).zip(start).zip(w.chunks_exact(K)) {
        let px = &src[s * C..(s + K) * C];
        let mut a = [HALF; C];
        for k in 0..K {
            for ch in 0..C {
                a[ch] += px[k * C + ch] as i32 * wk[k];
            }
        }
        for ch in 0..C {
            d[ch] = clip8(a[ch]);
        }
    }
}

/// [`h_row`] for RGB in 8 lanes (two outputs of 4 lanes each, the 4th reading the next
/// pixel's red, ignored), which AVX2 fills. Only the first `fit` outputs (an even number, whose
/// windows leave that extra byte inside the row) go this way, the rest through [`h_row`].
#[inline(always)]
fn h_row_rgb_wide<const K: usize>(
    src: &[u8],
    dst: &mut [u8],
    start: &[usize],
    w: &[i32],
    fit: usize,
) {
    let (head, tail) = dst.split_at_mut(fit * 3);
    let pairs = head
        .chunks_exact_mut(6)
        .zip(start[..fit].chunks_exact(2))
        .zip(w.chunks_exact(2 * K));
    for ((d, s), wk) in pairs {
        let pa = &src[s[0] * 3..(s[0] + K) * 3 + 1];
        let pb = &src[s[1] * 3..(s[1] + K) * 3 + 1];
        let mut a = [HALF; 8];
        for k in 0..K {
            for ch in 0..4 {
                a[ch] += pa[k * 3 + ch] as i32 * wk[k];
                a[4 + ch] += pb[k * 3 + ch] as i32 * wk[K + k];
            }
        }
        for ch in 0..3 {
            d[ch] = clip8(a[ch]);
            d[3 + ch] = clip8(a[4 + ch]);
        }
    }
    h_row::<3, K>(src, tail, &start[fit..], &w[fit * K..]);
}

/// Any channel count and tap count.
fn h_row_any(src: &[u8], dst: &mut [u8], c: usize, t: &Taps) {
    for ((d, &s), wk) in dst
        .chunks_exact_mut(c)
        .zip(&t.start)
        .zip(t.w.chunks_exact(t.k))
    {
        for (ch, d) in d.iter_mut().enumerate() {
            let mut acc = HALF;
            for (p, &wv) in src[s * c..(s + t.k) * c].chunks_exact(c).zip(wk) {
                acc += p[ch] as i32 * wv;
            }
            *d = clip8(acc);
        }
    }
}

/// One output row of the vertical pass with `K` taps: `line` bytes from `K` rows of `mid`
/// starting at row `r0`.
#[inline(always)]
fn v_row<const K: usize>(mid: &[u8], line: usize, r0: usize, w: &[i32], out: &mut [u8]) {
    let rows: [&[u8]; K] = std::array::from_fn(|k| &mid[(r0 + k) * line..(r0 + k + 1) * line]);
    let w: [i32; K] = std::array::from_fn(|k| w[k]);
    for (x, d) in out[..line].iter_mut().enumerate() {
        let mut a = HALF;
        for k in 0..K {
            a += rows[k][x] as i32 * w[k];
        }
        *d = clip8(a);
    }
}

/// [`v_row`] for any tap count, accumulating row by row in `acc`.
fn v_row_any(mid: &[u8], line: usize, r0: usize, w: &[i32], out: &mut [u8], acc: &mut Vec<i32>) {
    acc.clear();
    acc.resize(line, HALF);
    for (k, &wk) in w.iter().enumerate() {
        for (a, &m) in acc
            .iter_mut()
            .zip(&mid[(r0 + k) * line..(r0 + k + 1) * line])
        {
            *a += m as i32 * wk;
        }
    }
    for (d, &a) in out.iter_mut().zip(acc.iter()) {
        *d = clip8(a);
    }
}

/// Calls `$f::<K>($args)` for the tap counts 1 to 8 (the usual ones: up to 4x bilinear
/// shrinking), else `$other`.
macro_rules! by_taps {
    ($k:expr, $f:ident, ($($args:expr),*), $other:expr) => {
        match $k {
            1 => $f::<1>($($args),*),
            2 => $f::<2>($($args),*),
            3 => $f::<3>($($args),*),
            4 => $f::<4>($($args),*),
            5 => $f::<5>($($args),*),
            6 => $f::<6>($($args),*),
            7 => $f::<7>($($args),*),
            8 => $f::<8>($($args),*),
            _ => $other,
        }
    };
}

fn h_row_rgb<const K: usize>(src: &[u8], dst: &mut [u8], start: &[usize], w: &[i32]) {
    h_row::<3, K>(src, dst, start, w)
}

fn h_row_gray<const K: usize>(src: &[u8], dst: &mut [u8], start: &[usize], w: &[i32]) {
    h_row::<1, K>(src, dst, start, w)
}

/// Horizontal pass into `mid` (the input rows the vertical pass reads), then the vertical
/// pass into `out`. `WIDE` picks the 8-lane RGB kernel, for CPUs with 256-bit vectors.
#[inline(always)]
fn passes<const WIDE: bool>(img: &Img, tx: &Taps, ty: &Taps, mid: &mut Vec<u8>, out: &mut [u8]) {
    let (c, iw) = (img.c, img.w as usize);
    let line = tx.start.len() * c;
    let y_first = ty.start[0];
    let rows = ty.start[ty.start.len() - 1] + ty.k - y_first;
    mid.clear();
    mid.resize(rows * line, 0);
    let src_rows = img.px[y_first * iw * c..].chunks_exact(iw * c);
    // Outputs, from the first, whose window plus one byte lies inside a row (even count).
    let fit = tx.start.iter().take_while(|&&s| s + tx.k < iw).count() & !1;
    for (srow, drow) in src_rows.zip(mid.chunks_exact_mut(line)) {
        let (s, w) = (&tx.start[..], &tx.w[..]);
        match c {
            3 if WIDE => by_taps!(
                tx.k,
                h_row_rgb_wide,
                (srow, drow, s, w, fit),
                h_row_any(srow, drow, c, tx)
            ),
            3 => by_taps!(
                tx.k,
                h_row_rgb,
                (srow, drow, s, w),
                h_row_any(srow, drow, c, tx)
            ),
            1 => by_taps!(
                tx.k,
                h_row_gray,
                (srow, drow, s, w),
                h_row_any(srow, drow, c, tx)
            ),
            _ => h_row_any(srow, drow, c, tx),
        }
    }
    let mut acc = Vec::new();
    for ((orow, &s), w) in out
        .chunks_exact_mut(line)
        .zip(&ty.start)
        .zip(ty.w.chunks_exact(ty.k))
    {
        let r0 = s - y_first;
        by_taps!(
            ty.k,
            v_row,
            (mid, line, r0, w, orow),
            v_row_any(mid, line, r0, w, orow, &mut acc)
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn passes_avx2(img: &Img, tx: &Taps, ty: &Taps, mid: &mut Vec<u8>, out: &mut [u8]) {
    passes::<true>(img, tx, ty, mid, out)
}

/// Largest [`MID`] buffer kept for the next call, bytes.
const MID_KEEP: usize = 8 << 20;

thread_local! {
    /// The horizontal pass's output, kept between calls (no allocation per image).
    static MID: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Resamples the box `[x0, y0, x1, y1]` (input pixel coordinates, may be fractional) of `img`
/// to `out_w` x `out_h` in two separable passes: PIL's algorithm, so the result matches
/// `PIL.Image.resize(size, filter, box)` up to rounding.
pub fn resample(img: &Img, rect: [f64; 4], out_w: u32, out_h: u32, f: Interp) -> Img {
    let c = img.c;
    let (ow, oh) = (out_w.max(1) as usize, out_h.max(1) as usize);
    let tx = taps(img.w as usize, rect[0], rect[2], ow, f);
    let ty = taps(img.h as usize, rect[1], rect[3], oh, f);
    let mut px = vec![0u8; oh * ow * c];
    MID.with_borrow_mut(|mid| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { passes_avx2(img, &tx, &ty, mid, &mut px) };
        } else {
            passes::<false>(img, &tx, &ty, mid, &mut px);
        }
        #[cfg(not(target_arch = "x86_64"))]
        passes::<false>(img, &tx, &ty, mid, &mut px);
        // Keep what one training-size image needs, not the largest resize ever made.
        if mid.capacity() > MID_KEEP {
            *mid = Vec::new();
        }
    });
    Img {
        w: ow as u32,
        h: oh as u32,
        c,
        px,
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

    /// PIL's resampling written plainly (per output, its own window; the code before the
    /// padded, vectorised kernels), against which those must agree bit for bit.
    fn reference(img: &Img, rect: [f64; 4], ow: usize, oh: usize, f: Interp) -> Vec<u8> {
        // Unpadded windows: first input and weights of each output, as PIL computes them.
        let axis = |n: usize, a: f64, b: f64, out: usize| -> Vec<(usize, Vec<i32>)> {
            let t = taps(n, a, b, out, f);
            (0..out)
                .map(|o| {
                    let w = &t.w[o * t.k..(o + 1) * t.k];
                    let skip = w.iter().take_while(|&&v| v == 0).count().min(t.k - 1);
                    let trailing = w.iter().rev().take_while(|&&v| v == 0).count();
                    let len = (t.k - skip).saturating_sub(trailing);
                    (t.start[o] + skip, w[skip..skip + len.max(1)].to_vec())
                })
                .collect()
        };
        let (tx, ty) = (
            axis(img.w as usize, rect[0], rect[2], ow),
            axis(img.h as usize, rect[1], rect[3], oh),
        );
        let (c, iw) = (img.c, img.w as usize);
        let mid: Vec<i32> = (0..img.h as usize)
            .flat_map(|y| {
                let tx = &tx;
                (0..ow * c).map(move |i| {
                    let (s, w) = &tx[i / c];
                    let acc = w.iter().enumerate().fold(HALF, |a, (k, &wk)| {
                        a + img.px[(y * iw + s + k) * c + i % c] as i32 * wk
                    });
                    clip8(acc) as i32
                })
            })
            .collect();
        (0..oh * ow * c)
            .map(|i| {
                let (s, w) = &ty[i / (ow * c)];
                let acc = w.iter().enumerate().fold(HALF, |a, (k, &wk)| {
                    a + mid[(s + k) * ow * c + i % (ow * c)] * wk
                });
                clip8(acc)
            })
            .collect()
    }

    #[test]
    fn padded_kernels_match_the_plain_algorithm() {
        let mut rng = StdRng::seed_from_u64(3);
        for (w, h, c) in [
            (50, 37, 3),
            (37, 50, 3),
            (31, 17, 1),
            (9, 5, 3),
            (1, 1, 3),
            (12, 7, 2),
        ] {
            let mut px = vec![0u8; w * h * c];
            rng.fill(&mut px[..]);
            let img = Img {
                w: w as u32,
                h: h as u32,
                c,
                px,
            };
            for f in [Interp::Nearest, Interp::Bilinear, Interp::Bicubic] {
                for (ow, oh) in [(22, 22), (7, 5), (1, 1), (3 * w, 2 * h), (w / 5 + 1, 40)] {
                    for i in 0..6 {
                        let rect = if i == 0 {
                            [0.0, 0.0, w as f64, h as f64]
                        } else {
                            let x0 = rng.random_range(0.0..w as f64 * 0.7);
                            let y0 = rng.random_range(0.0..h as f64 * 0.7);
                            let x1 = rng.random_range(x0 + 0.2..=w as f64);
                            let y1 = rng.random_range(y0 + 0.2..=h as f64);
                            [x0, y0, x1, y1]
                        };
                        let got = resample(&img, rect, ow as u32, oh as u32, f);
                        let want = reference(&img, rect, ow, oh, f);
                        assert!(got.px == want, "{w}x{h}x{c} {f:?} {rect:?} -> {ow}x{oh}");
                        // The portable kernels too, whatever this CPU dispatches to.
                        let tx = taps(w, rect[0], rect[2], ow, f);
                        let ty = taps(h, rect[1], rect[3], oh, f);
                        let mut narrow = vec![0; want.len()];
                        passes::<false>(&img, &tx, &ty, &mut Vec::new(), &mut narrow);
                        assert!(narrow == want, "narrow {w}x{h}x{c} {f:?} {rect:?}");
                        let mut wide = vec![0; want.len()];
                        passes::<true>(&img, &tx, &ty, &mut Vec::new(), &mut wide);
                        assert!(wide == want, "wide {w}x{h}x{c} {f:?} {rect:?}");
                    }
                }
            }
        }
    }
}
