//! Geometric augmentation: flips and one combined inverse-mapped affine warp (rotation,
//! shift, shear, zoom) with Keras `ImageDataGenerator` semantics and fill modes.

use rand::Rng;
use rand::rngs::StdRng;

use super::{Img, Transform};

/// The image mirrored left-right.
pub fn flip_h(img: &Img) -> Img {
    let (w, c) = (img.w as usize, img.c);
    let mut px = vec![0u8; img.px.len()];
    for (src, dst) in img.px.chunks_exact(w * c).zip(px.chunks_exact_mut(w * c)) {
        for x in 0..w {
            dst[x * c..(x + 1) * c].copy_from_slice(&src[(w - 1 - x) * c..(w - x) * c]);
        }
    }
    Img { px, ..*img }
}

/// The image mirrored top-bottom.
pub fn flip_v(img: &Img) -> Img {
    let line = img.w as usize * img.c;
    let mut px = Vec::with_capacity(img.px.len());
    for row in img.px.chunks_exact(line).rev() {
        px.extend_from_slice(row);
    }
    Img { px, ..*img }
}

/// A horizontal (`vertical == false`) or vertical flip with probability `p`.
#[derive(Debug, Clone)]
pub struct Flip {
    /// Flip top-bottom instead of left-right.
    pub vertical: bool,
    /// Probability.
    pub p: f64,
}

impl Transform for Flip {
    fn apply(&self, mut img: Img, rng: &mut StdRng) -> Img {
        if rng.random::<f64>() < self.p {
            if self.vertical {
                flip_v_in_place(&mut img);
            } else {
                flip_h_in_place(&mut img);
            }
        }
        img
    }
}

/// [`flip_h`] without a new buffer.
pub fn flip_h_in_place(img: &mut Img) {
    let (w, c) = (img.w as usize, img.c);
    for row in img.px.chunks_exact_mut(w * c) {
        if c == 1 {
            row.reverse();
            continue;
        }
        let (left, right) = row.split_at_mut(w / 2 * c);
        let right_len = right.len();
        for (i, l) in left.chunks_exact_mut(c).enumerate() {
            let r = right_len - (i + 1) * c;
            l.swap_with_slice(&mut right[r..r + c]);
        }
    }
}

/// [`flip_v`] without a new buffer.
pub fn flip_v_in_place(img: &mut Img) {
    let line = img.w as usize * img.c;
    let h = img.h as usize;
    for y in 0..h / 2 {
        let (top, bottom) = img.px.split_at_mut((h - 1 - y) * line);
        top[y * line..(y + 1) * line].swap_with_slice(&mut bottom[..line]);
    }
}

/// How pixels that map outside the input are filled (Keras `fill_mode`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// The nearest edge pixel (`aaaa|abcd|dddd`).
    Nearest,
    /// A constant value (`kkkk|abcd|kkkk`).
    Constant(u8),
    /// Mirrored with the edge repeated (`dcba|abcd|dcba`, scipy "reflect").
    Reflect,
    /// Tiled (`abcd|abcd|abcd`).
    Wrap,
}

impl Fill {
    /// Maps a possibly outside coordinate into `0..n`, or `None` for a constant fill.
    #[inline]
    fn index(self, i: i64, n: i64) -> Option<i64> {
        if (0..n).contains(&i) {
            return Some(i);
        }
        match self {
            Fill::Nearest => Some(i.clamp(0, n - 1)),
            Fill::Constant(_) => None,
            Fill::Wrap => Some(i.rem_euclid(n)),
            Fill::Reflect => {
                let m = i.rem_euclid(2 * n);
                Some(if m < n { m } else { 2 * n - 1 - m })
            }
        }
    }
}

/// Keras-style random affine: rotation in `±rotate` degrees, shifts of `±shift` of the width
/// / height, shear angle in `±shear` degrees and independent x/y zoom factors drawn from
/// `zoom`, combined into one matrix and applied by inverse mapping with bilinear sampling.
#[derive(Debug, Clone)]
pub struct Affine {
    /// Maximum rotation, degrees.
    pub rotate: f64,
    /// Maximum horizontal shift, fraction of the width.
    pub shift_w: f64,
    /// Maximum vertical shift, fraction of the height.
    pub shift_h: f64,
    /// Maximum shear angle, degrees.
    pub shear: f64,
    /// Zoom range `[lo, hi]` (Keras: values > 1 zoom out); `[1, 1]` for none.
    pub zoom: [f64; 2],
    /// Fill of uncovered pixels.
    pub fill: Fill,
}

impl Affine {
    /// The 2x3 matrix mapping output `(x, y)` to input coordinates for drawn parameters
    /// (Keras `apply_affine_transform`, centre as origin); `dx`/`dy` shift columns/rows in
    /// pixels (output `x` samples input `x + dx`). Rows are `[x; y]`.
    #[allow(clippy::too_many_arguments)]
    pub fn matrix(
        w: u32,
        h: u32,
        theta_deg: f64,
        dx: f64,
        dy: f64,
        shear_deg: f64,
        zx: f64,
        zy: f64,
    ) -> [f64; 6] {
        // Keras builds the matrix in (row, col) = (y, x) coordinates:
        // M = R(theta) · T(tx, ty) · S(shear) · Z(zx, zy), offset to the centre.
        let (t, s) = (theta_deg.to_radians(), shear_deg.to_radians());
        let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| {
            let mut r = [[0.0; 3]; 3];
            for i in 0..3 {
                for j in 0..3 {
                    r[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
                }
            }
            r
        };
        let rot = [
            [t.cos(), -t.sin(), 0.0],
            [t.sin(), t.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let shift = [[1.0, 0.0, dy], [0.0, 1.0, dx], [0.0, 0.0, 1.0]];
        let shear = [[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]];
        let zoom = [[zy, 0.0, 0.0], [0.0, zx, 0.0], [0.0, 0.0, 1.0]];
        let m = mul(mul(mul(rot, shift), shear), zoom);
        let (oy, ox) = (h as f64 / 2.0 - 0.5, w as f64 / 2.0 - 0.5);
        let off = [[1.0, 0.0, oy], [0.0, 1.0, ox], [0.0, 0.0, 1.0]];
        let reset = [[1.0, 0.0, -oy], [0.0, 1.0, -ox], [0.0, 0.0, 1.0]];
        let m = mul(mul(off, m), reset);
        // m maps (row, col) out -> (row, col) in; rewrite as x/y rows.
        [m[1][1], m[1][0], m[1][2], m[0][1], m[0][0], m[0][2]]
    }
}

/// Warps `img` by inverse mapping: output pixel `(x, y)` samples the input at
/// `(m0 x + m1 y + m2, m3 x + m4 y + m5)` bilinearly, filling outside points by `fill`.
pub fn warp(img: &Img, m: [f64; 6], fill: Fill) -> Img {
    let (w, h, c) = (img.w as i64, img.h as i64, img.c);
    let cval = match fill {
        Fill::Constant(v) => v as f32,
        _ => 0.0,
    };
    let mut px = vec![0u8; img.px.len()];
    let src = &img.px;
    let mut acc = [0f32; 4];
    for y in 0..h {
        for x in 0..w {
            let sx = m[0] * x as f64 + m[1] * y as f64 + m[2];
            let sy = m[3] * x as f64 + m[4] * y as f64 + m[5];
            let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
            let (fx, fy) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
            acc[..c].fill(0.0);
            for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                    let wgt = wx * wy;
                    if wgt == 0.0 {
                        continue;
                    }
                    match (fill.index(x0 + dx, w), fill.index(y0 + dy, h)) {
                        (Some(ix), Some(iy)) => {
                            let p = (iy * w + ix) as usize * c;
                            for k in 0..c {
                                acc[k] += wgt * src[p + k] as f32;
                            }
                        }
                        _ => {
                            for a in acc.iter_mut().take(c) {
                                *a += wgt * cval;
                            }
                        }
                    }
                }
            }
            let d = (y * w + x) as usize * c;
            for k in 0..c {
                px[d + k] = (acc[k] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    Img { px, ..*img }
}

impl Transform for Affine {
    fn apply(&self, img: Img, rng: &mut StdRng) -> Img {
        let mut sym = |r: f64| {
            if r > 0.0 {
                rng.random_range(-r..=r)
            } else {
                0.0
            }
        };
        let theta = sym(self.rotate);
        let dy = sym(self.shift_h) * img.h as f64;
        let dx = sym(self.shift_w) * img.w as f64;
        let shear = sym(self.shear);
        let (zx, zy) = if self.zoom[0] == 1.0 && self.zoom[1] == 1.0 {
            (1.0, 1.0)
        } else {
            (
                rng.random_range(self.zoom[0]..=self.zoom[1]),
                rng.random_range(self.zoom[0]..=self.zoom[1]),
            )
        };
        let m = Affine::matrix(img.w, img.h, theta, dx, dy, shear, zx, zy);
        warp(&img, m, self.fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(w: u32, h: u32, c: usize) -> Img {
        let px = (0..w as usize * h as usize * c)
            .map(|i| (i % 256) as u8)
            .collect();
        Img { w, h, c, px }
    }

    #[test]
    fn a_flip_twice_is_identity_and_moves_pixels() {
        let img = ramp(7, 5, 3);
        assert_eq!(flip_h(&flip_h(&img)).px, img.px);
        assert_eq!(flip_v(&flip_v(&img)).px, img.px);
        assert_eq!(flip_h(&img).get(0, 1), img.get(6, 1));
        assert_eq!(flip_v(&img).get(2, 0), img.get(2, 4));
        assert_ne!(flip_h(&img).px, img.px);
        for (w, h, c) in [(7, 5, 3), (6, 4, 3), (5, 3, 1), (4, 4, 1)] {
            let img = ramp(w, h, c);
            let (mut a, mut b) = (img.clone(), img.clone());
            flip_h_in_place(&mut a);
            flip_v_in_place(&mut b);
            assert_eq!(a, flip_h(&img));
            assert_eq!(b, flip_v(&img));
        }
    }

    #[test]
    fn a_90_degree_rotation_moves_a_known_pixel() {
        let mut img = Img {
            w: 5,
            h: 5,
            c: 1,
            px: vec![0; 25],
        };
        img.px[2] = 255; // (x=2, y=0): top centre.
        let m = Affine::matrix(5, 5, 90.0, 0.0, 0.0, 0.0, 1.0, 1.0);
        let out = warp(&img, m, Fill::Constant(0));
        // Keras' matrix (y down): the top centre goes to the right centre.
        assert_eq!(out.get(4, 2), [255]);
        assert_eq!(out.px.iter().filter(|&&v| v != 0).count(), 1);
        // Identity parameters reproduce the image exactly.
        let img = ramp(6, 4, 3);
        let id = Affine::matrix(6, 4, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0);
        assert_eq!(warp(&img, id, Fill::Nearest).px, img.px);
    }

    #[test]
    fn shift_and_fill_modes() {
        let img = Img {
            w: 4,
            h: 1,
            c: 1,
            px: vec![10, 20, 30, 40],
        };
        // Shift right by 2 columns: output x samples input x - 2.
        let m = Affine::matrix(4, 1, 0.0, -2.0, 0.0, 0.0, 1.0, 1.0);
        assert_eq!(warp(&img, m, Fill::Nearest).px, vec![10, 10, 10, 20]);
        assert_eq!(warp(&img, m, Fill::Constant(7)).px, vec![7, 7, 10, 20]);
        assert_eq!(warp(&img, m, Fill::Reflect).px, vec![20, 10, 10, 20]);
        assert_eq!(warp(&img, m, Fill::Wrap).px, vec![30, 40, 10, 20]);
        // Random warps keep the size and stay deterministic for a seed.
        let a = Affine {
            rotate: 30.0,
            shift_w: 0.2,
            shift_h: 0.2,
            shear: 10.0,
            zoom: [0.8, 1.2],
            fill: Fill::Reflect,
        };
        let big = ramp(16, 12, 3);
        let o1 = a.apply(big.clone(), &mut StdRng::seed_from_u64(3));
        let o2 = a.apply(big.clone(), &mut StdRng::seed_from_u64(3));
        assert_eq!((o1.w, o1.h), (16, 12));
        assert_eq!(o1.px, o2.px);
    }
}
