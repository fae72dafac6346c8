//! Direct convolution for stride-1 convolutions with few output channels (seed 003's CNN: 1 →
//! 16 and 16 → 32 channels, 5x5): the output channels fill the vector lanes and each input
//! value is broadcast to them, so there is no im2col matrix, no packing and no product thinner
//! than `gemm`'s kernels (with 16 or 32 output channels, `gemm` ran these layers' weight
//! gradients on one or two vectors per broadcast, and its 196-pixel maps left a 4-row tail).
//! The weight gradient is the same loop with the pixels as its depth; the input gradient is a
//! forward pass of the output gradient with the flipped kernel (`conv::input_grad_as_conv`).
//! AVX-512 and AVX2 (+ FMA) only: elsewhere im2col is used.

use std::ops::Range;

use rayon::prelude::*;

use super::conv::{Scratch, Sums};
use super::{Epilogue, FlexTensor, Geometry, Out, Shape, tensor, uninit_chunks};

/// A vector of `f32` lanes of one instruction set; the methods are used only inside functions
/// compiled for it.
trait Lanes: Copy {
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn splat(p: *const f32) -> Self;
    /// `a * b + c`.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// Lanes `0..n` (`n <= N`) read from `p`, `p + stride`, …; the others zero.
    unsafe fn gather(p: *const f32, stride: usize, n: usize) -> Self;
    /// Lanes `0..n` (`n <= N`) stored to `p..p + n`.
    unsafe fn store_n(self, p: *mut f32, n: usize);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// A [`super::Lanes`] type over one x86 vector type and its intrinsics.
    macro_rules! lanes {
        ($name:ident($v:ty, $n:literal):
            $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident,
            $gather:ident, $store_n:ident) => {
            #[derive(Clone, Copy)]
            pub(super) struct $name($v);

            impl super::Lanes for $name {
                const N: usize = $n;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    unsafe { $name($zero()) }
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    unsafe { $name($load(p)) }
                }
                #[inline(always)]
                unsafe fn splat(p: *const f32) -> Self {
                    unsafe { $name($set1(*p)) }
                }
                #[inline(always)]
                unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
                    unsafe { $name($fma(a.0, b.0, c.0)) }
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut f32) {
                    unsafe { $store(p, self.0) }
                }
                #[inline(always)]
                unsafe fn gather(p: *const f32, stride: usize, n: usize) -> Self {
                    unsafe { $name($gather(p, stride, n)) }
                }
                #[inline(always)]
                unsafe fn store_n(self, p: *mut f32, n: usize) {
                    unsafe { $store_n(p, self.0, n) }
                }
            }
        };
    }

    /// The first `n` of 16 lanes.
    #[inline(always)]
    unsafe fn lane_mask16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// The first `n` of 8 lanes.
    #[inline(always)]
    unsafe fn lane_mask8(n: usize) -> __m256i {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }

    #[inline(always)]
    unsafe fn gather16(p: *const f32, stride: usize, n: usize) -> __m512 {
        unsafe {
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride as i32));
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lane_mask16(n), idx, p)
        }
    }

    #[inline(always)]
    unsafe fn gather8(p: *const f32, stride: usize, n: usize) -> __m256 {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let idx = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(stride as i32));
            let mask = _mm256_castsi256_ps(lane_mask8(n));
            _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), p, idx, mask)
        }
    }

    #[inline(always)]
    unsafe fn store_n16(p: *mut f32, v: __m512, n: usize) {
        unsafe { _mm512_mask_storeu_ps(p, lane_mask16(n), v) }
    }

    #[inline(always)]
    unsafe fn store_n8(p: *mut f32, v: __m256, n: usize) {
        unsafe { _mm256_maskstore_ps(p, lane_mask8(n), v) }
    }

    lanes!(V16(__m512, 16):
        _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps,
        gather16, store_n16);
    lanes!(V8(__m256, 8):
        _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps,
        gather8, store_n8);
}

/// `$name` compiled twice for x86-64, as `$avx512` (AVX-512) and `$avx2` (AVX2 + FMA alone),
/// each with its instruction set enabled so that the [`Lanes`] methods inline into it; the
/// dispatch calls the one [`super::simd_level`] allows. Generic over a [`Lanes`] type `V` and
/// the block sizes `$g`.
macro_rules! isa_copies {
    ($name:ident => $avx512:ident, $avx2:ident;
        <$(const $g:ident: $gt:ty),*> ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn $avx512<V: Lanes, $(const $g: $gt),*>($($arg: $ty),*) {
            unsafe { $name::<V, $($g),*>($($arg),*) }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2<V: Lanes, $(const $g: $gt),*>($($arg: $ty),*) {
            unsafe { $name::<V, $($g),*>($($arg),*) }
        }
    };
}

/// Whether a convolution's forward pass runs here, on a CPU with AVX-512 or AVX2, with maps at
/// least 4 wide:
/// - stride 1, a kernel 3 or 5 wide, at most 32 output channels (or 64 on rows of 14 pixels
///   or more, with `C·kh·kw >= 64`, and a sample per thread: small-cnn's second layer, x1.05
///   on its training step, but slower than im2col in row chunks at batch 1; on ResNet-18's
///   8x8 maps 64 channels ran 1.6x slower than im2col, and VGG's 3 → 64 first layer, 27
///   deep, would be bound by moving its blocks into the output);
/// - stride 2 with a 7-wide kernel and at most 64 output channels on rows of 14 pixels or
///   more: ResNet's stem, whose im2col copied 147 values per output pixel (at batch 1 in
///   row chunks: 1.42 → 0.76 ms).
pub(super) fn applies_forward(g: &Geometry) -> bool {
    let wide = g.c_out <= 64 && g.wo >= 14 && g.ck() >= 64;
    let per_sample = g.n >= rayon::current_num_threads();
    let shape = match g.stride {
        [1, 1] => matches!(g.kw, 3 | 5) && ((1..=32).contains(&g.c_out) || wide && per_sample),
        [2, 2] => g.kw == 7 && wide,
        _ => false,
    };
    super::simd_level() > 0 && shape && g.c > 0 && g.wo >= 4 && g.ho > 0
}

/// Whether a convolution's weight gradient runs here: the stride-1 layers of
/// [`applies_forward`], with samples enough for one per thread (the tasks are samples).
pub(super) fn applies(g: &Geometry) -> bool {
    g.stride == [1, 1] && g.n >= rayon::current_num_threads() && applies_forward(g)
}

/// Whether the input gradient of `g`, computed as the forward convolution of the output
/// gradient with the flipped kernel (`C_out` → `C` channels on the output's map), runs here.
pub(super) fn applies_to_input_grad(g: &Geometry) -> bool {
    let t = Geometry {
        c: g.c_out,
        c_out: g.c,
        h: g.ho,
        w: g.wo,
        ho: g.h,
        wo: g.w,
        ..*g
    };
    applies(&t)
}

/// The blocking of one instruction set: its vector width and the output channels per block
/// (`ov` vectors); the pixels per forward block and the kernel rows per weight-gradient block
/// follow ([`pixels_per_block`], [`rows_per_block`]).
#[derive(Clone, Copy)]
struct Plan {
    level: u8,
    ov: usize,
    lanes: usize,
}

impl Plan {
    /// The blocking for this CPU.
    fn new(g: &Geometry) -> Self {
        Self::for_level(g, super::simd_level())
    }

    /// The blocking for `level` (as [`super::simd_level`]: 2 AVX-512, 1 AVX2).
    fn for_level(g: &Geometry, level: u8) -> Self {
        let (level, lanes) = match level {
            2 => (2, 16),
            _ => (1, 8),
        };
        Plan {
            level,
            ov: if g.c_out <= lanes { 1 } else { 2 },
            lanes,
        }
    }

    /// Output channels per block.
    fn ob(&self) -> usize {
        self.ov * self.lanes
    }

    /// Blocks of output channels.
    fn blocks(&self, g: &Geometry) -> usize {
        g.c_out.div_ceil(self.ob())
    }
}

/// The padded input's geometry: `[Hp, Wp]` with `Hp = (ho - 1)·sh + kh` and
/// `Wp = (wo - 1)·sw + kw`, the rows and columns the output reads.
fn padded_dims(g: &Geometry) -> [usize; 2] {
    [
        (g.ho - 1) * g.stride[0] + g.kh,
        (g.wo - 1) * g.stride[1] + g.kw,
    ]
}

/// Copies sample `x` (`[C, H, W]`) into `xp` (`[C, Hp, Wp]` then `slack` zeros), zeros in
/// the padding: the blocks then read whole rows without bounds.
fn pad_input(g: &Geometry, x: &[f32], xp: &mut [f32]) {
    let [hp, wp] = padded_dims(g);
    let [top, left] = g.pad;
    xp.fill(0.0);
    for (c, plane) in xp.chunks_mut(hp * wp).take(g.c).enumerate() {
        for (y, row) in plane.chunks_mut(wp).enumerate() {
            let Some(iy) = y.checked_sub(top).filter(|&iy| iy < g.h) else {
                continue;
            };
            let src = &x[(c * g.h + iy) * g.w..][..g.w];
            // Output column `ox` reads padded column `ox + j`, input column `ox + j - left`.
            let x0 = left.min(wp);
            let len = g.w.min(wp - x0);
            row[x0..x0 + len].copy_from_slice(&src[..len]);
        }
    }
}

/// The weights `[C_out, C, kh, kw]` as `[block][C][kh][kw][ob]`, zeros past `C_out`.
fn repack_weights(g: &Geometry, ws: &[f32], plan: &Plan) -> Vec<f32> {
    let (ob, ck) = (plan.ob(), g.ck());
    let mut w = vec![0f32; plan.blocks(g) * ck * ob];
    for o in 0..g.c_out {
        let (b, lane) = (o / ob, o % ob);
        for (k, &v) in ws[o * ck..][..ck].iter().enumerate() {
            w[(b * ck + k) * ob + lane] = v;
        }
    }
    w
}

/// `out[x][lane] = Σ_{c,i,j} w[c][i][j][lane] · x[c][i][j + S·x]` for `XB` pixels of one
/// output row and one block of `OV` vectors of output channels, at stride `S`; `x` is the
/// padded input at the block's first pixel, `w` the block's repacked weights.
#[inline(always)]
unsafe fn forward_block<V: Lanes, const XB: usize, const OV: usize, const S: usize>(
    x: *const f32,
    w: *const f32,
    [c, kh, kw]: [usize; 3],
    [plane, wp]: [usize; 2],
    out: *mut f32,
) {
    unsafe {
        let mut acc = [[V::zero(); OV]; XB];
        let mut wk = w;
        for ci in 0..c {
            for i in 0..kh {
                let row = x.add(ci * plane + i * wp);
                for j in 0..kw {
                    let mut wv = [V::zero(); OV];
                    for (v, wv) in wv.iter_mut().enumerate() {
                        *wv = V::load(wk.add(v * V::N));
                    }
                    wk = wk.add(OV * V::N);
                    let r = row.add(j);
                    for (xi, acc) in acc.iter_mut().enumerate() {
                        let b = V::splat(r.add(xi * S));
                        for (a, &wv) in acc.iter_mut().zip(&wv) {
                            *a = V::fma(wv, b, *a);
                        }
                    }
                }
            }
        }
        for (xi, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                a.store(out.add((xi * OV + v) * V::N));
            }
        }
    }
}

/// Output rows `rows` of one sample's output `y` (`[C_out, P]`, before the epilogue) from its
/// padded input `xp`, at stride `S` (both ways).
#[inline(always)]
unsafe fn forward_sample<V: Lanes, const XB: usize, const OV: usize, const S: usize>(
    g: &Geometry,
    xp: &[f32],
    w: &[f32],
    y: Out,
    rows: Range<usize>,
) {
    let [hp, wp] = padded_dims(g);
    let (ob, ck, p) = (OV * V::N, g.ck(), g.p());
    let mut tmp = [0f32; 512];
    if rows.is_empty() {
        return;
    }
    // Every block reads `xp` below `at + (C - 1)·Hp·Wp + (kh - 1)·Wp + kw + S·(XB - 1)` (its
    // `at` at most the last row's last block), which the slack after the planes covers.
    let last = (rows.end - 1) * S * wp + (g.wo - 1) / XB * XB * S;
    assert!(XB * ob <= tmp.len() && g.stride == [S, S] && rows.end <= g.ho);
    assert!(last + (g.c - 1) * hp * wp + (g.kh - 1) * wp + g.kw + S * (XB - 1) <= xp.len());
    for b in 0..g.c_out.div_ceil(ob) {
        let wb = &w[b * ck * ob..][..ck * ob];
        let (o0, o1) = (b * ob, ((b + 1) * ob).min(g.c_out));
        for oy in rows.clone() {
            for x0 in (0..g.wo).step_by(XB) {
                let at = (oy * wp + x0) * S;
                // SAFETY: the block reads `xp` below the bound checked above (`at <= last`)
                // and `wb` whole; `tmp` holds `XB * ob` values.
                unsafe {
                    forward_block::<V, XB, OV, S>(
                        xp.as_ptr().add(at),
                        wb.as_ptr(),
                        [g.c, g.kh, g.kw],
                        [hp * wp, wp],
                        tmp.as_mut_ptr(),
                    );
                }
                // Each output row's pixels gathered from the block (`XB` x `ob`, pixel-major)
                // and stored as vectors: one scalar move per value had cost the 3x3 layers
                // of small-cnn 15-35 % of their forward.
                let xs = XB.min(g.wo - x0);
                let row0 = oy * g.wo + x0;
                assert!((o1 - 1) * p + row0 + xs <= y.len);
                for o in o0..o1 {
                    for c0 in (0..xs).step_by(V::N) {
                        let n = V::N.min(xs - c0);
                        // SAFETY: the gather reads `tmp[(c0 + k) * ob + o - o0]` for `k < n`,
                        // inside the block's `XB * ob` values; the store writes `n` values of
                        // output row `o` inside `y` (checked above), where only this task
                        // writes (its rows of the map).
                        unsafe {
                            let v = V::gather(tmp.as_ptr().add(c0 * ob + o - o0), ob, n);
                            v.store_n(y.ptr.add(o * p + row0 + c0), n);
                        }
                    }
                }
            }
        }
    }
}

isa_copies!(forward_sample => forward_sample_avx512, forward_sample_avx2;
    <const XB: usize, const OV: usize, const S: usize>
    (g: &Geometry, xp: &[f32], w: &[f32], y: Out, rows: Range<usize>));

/// Output pixels per forward block: the accumulators allow `full` (28 vectors on AVX-512, 12
/// on AVX2), and half as many are taken where they waste fewer pixels past the row's end
/// (blocks of 28 on the 14-pixel rows of seed 003's input gradient computed twice its
/// pixels: its step x1.19 with blocks of 14).
fn pixels_per_block(plan: &Plan, wo: usize) -> usize {
    let full = match plan.level {
        2 => 28,
        _ => 12,
    } / plan.ov;
    let computed = |xb: usize| wo.div_ceil(xb) * xb;
    match computed(full / 2) < computed(full) {
        true => full / 2,
        false => full,
    }
}

/// Runs [`forward_sample`] with the blocking of `plan` on output rows `rows`.
fn forward_dispatch(plan: &Plan, g: &Geometry, xp: &[f32], w: &[f32], y: Out, rows: Range<usize>) {
    match g.stride[0] {
        1 => forward_strided::<1>(plan, g, xp, w, y, rows),
        _ => forward_strided::<2>(plan, g, xp, w, y, rows),
    }
}

/// [`forward_dispatch`] at stride `S`.
fn forward_strided<const S: usize>(
    plan: &Plan,
    g: &Geometry,
    xp: &[f32],
    w: &[f32],
    y: Out,
    rows: Range<usize>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use x86::{V8, V16};
        // SAFETY: `plan.level` comes from `simd_level`: AVX-512 (F, BW, VL) for 2, AVX2 and
        // FMA for 1.
        unsafe {
            match (plan.level, plan.ov, pixels_per_block(plan, g.wo)) {
                (2, 1, 28) => forward_sample_avx512::<V16, 28, 1, S>(g, xp, w, y, rows),
                (2, 1, _) => forward_sample_avx512::<V16, 14, 1, S>(g, xp, w, y, rows),
                (2, _, 14) => forward_sample_avx512::<V16, 14, 2, S>(g, xp, w, y, rows),
                (2, _, _) => forward_sample_avx512::<V16, 7, 2, S>(g, xp, w, y, rows),
                (_, 1, 12) => forward_sample_avx2::<V8, 12, 1, S>(g, xp, w, y, rows),
                (_, 1, _) => forward_sample_avx2::<V8, 6, 1, S>(g, xp, w, y, rows),
                (_, _, 6) => forward_sample_avx2::<V8, 6, 2, S>(g, xp, w, y, rows),
                (_, _, _) => forward_sample_avx2::<V8, 3, 2, S>(g, xp, w, y, rows),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (plan, g, xp, w, y, rows);
        unreachable!("`applies` is false without x86 SIMD");
    }
}

/// Slack after the padded input, for the reads of a block's last pixels past a row's end
/// (`S·(XB - 1) + 1` at most, 55).
const SLACK: usize = 64;

/// The convolution's output, each row finished by `ep`; samples are parallel tasks.
pub(super) fn forward(xs: &[f32], ws: &[f32], ep: &Epilogue, g: Geometry) -> FlexTensor {
    forward_with(Plan::new(&g), xs, ws, ep, g)
}

/// [`forward`] with the blocking of `plan`: samples are the tasks, or with fewer samples than
/// threads (inference at batch 1), chunks of each sample's output rows.
fn forward_with(plan: Plan, xs: &[f32], ws: &[f32], ep: &Epilogue, g: Geometry) -> FlexTensor {
    let w = repack_weights(&g, ws, &plan);
    let [hp, wp] = padded_dims(&g);
    let (p, in_size, out_size) = (g.p(), g.c * g.h * g.w, g.c_out * g.p());
    let threads = rayon::current_num_threads();
    if g.n >= threads {
        let sample = |(s, y): (usize, &mut [std::mem::MaybeUninit<f32>])| {
            let mut xp = Scratch::new(g.c * hp * wp + SLACK);
            pad_input(&g, &xs[s * in_size..][..in_size], &mut xp);
            let out = Out::new(y);
            forward_dispatch(&plan, &g, &xp, &w, out, 0..g.ho);
            for o in 0..g.c_out {
                // SAFETY: the sample's rows, all written just above.
                ep.apply(s, o, unsafe { out.span(o * p..(o + 1) * p) });
            }
        };
        // SAFETY: `forward_dispatch` writes every value of the sample's output.
        let y = unsafe { uninit_chunks(g.n * out_size, out_size, true, sample) };
        return tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]));
    }
    // Four chunks of rows per thread, for balance.
    let chunk = g.ho.div_ceil(4 * threads);
    let mut y: Vec<f32> = Vec::with_capacity(g.n * out_size);
    let mut xp = Scratch::new(g.c * hp * wp + SLACK);
    for (s, ys) in y.spare_capacity_mut()[..g.n * out_size]
        .chunks_mut(out_size)
        .enumerate()
    {
        pad_input(&g, &xs[s * in_size..][..in_size], &mut xp);
        let out = Out::new(ys);
        (0..g.ho.div_ceil(chunk)).into_par_iter().for_each(|k| {
            let rows = k * chunk..((k + 1) * chunk).min(g.ho);
            let (start, end) = (rows.start * g.wo, rows.end * g.wo);
            forward_dispatch(&plan, &g, &xp, &w, out, rows);
            for o in 0..g.c_out {
                // SAFETY: this task's rows of channel `o`, written just above.
                let span = unsafe { out.span(o * p + start..o * p + end) };
                ep.apply_span(s, o, start, p, span);
            }
        });
    }
    // SAFETY: every sample's rows were written above, all channels of each.
    unsafe { y.set_len(g.n * out_size) };
    tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
}

/// `acc[r][j][lane] += Σ_pixels dy[pixel][lane] · rows[r][pixel + j]` for `RB` kernel rows
/// `(c, i)` (each given by where it starts in the padded input) and the `KW` taps of each,
/// over the whole output map, for one block of `OV` vectors of output channels; `dy` is the
/// output gradient pixel-major, `stride` values per pixel, at the block's first channel.
#[inline(always)]
unsafe fn weight_block<V: Lanes, const RB: usize, const KW: usize, const OV: usize>(
    rows: [*const f32; RB],
    dy: *const f32,
    stride: usize,
    [ho, wo, wp]: [usize; 3],
    acc_io: *mut f32,
) {
    unsafe {
        let mut acc = [[[V::zero(); OV]; KW]; RB];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (j, acc) in acc.iter_mut().enumerate() {
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = V::load(acc_io.add(((r * KW + j) * OV + v) * V::N));
                }
            }
        }
        for oy in 0..ho {
            let dy_row = dy.add(oy * wo * stride);
            for ox in 0..wo {
                let mut d = [V::zero(); OV];
                for (v, d) in d.iter_mut().enumerate() {
                    *d = V::load(dy_row.add(ox * stride + v * V::N));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = rows[r].add(oy * wp + ox);
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let b = V::splat(x.add(j));
                        for (a, &d) in acc.iter_mut().zip(&d) {
                            *a = V::fma(d, b, *a);
                        }
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, acc) in acc.iter().enumerate() {
                for (v, a) in acc.iter().enumerate() {
                    a.store(acc_io.add(((r * KW + j) * OV + v) * V::N));
                }
            }
        }
    }
}

/// Adds one sample's weight-gradient products to `acc` (`[block][C·kh + RB][kw][ob]`, the
/// last `RB` rows of each block spare): `xp` is its padded input, `dyt` its output gradient
/// pixel-major (`[P][blocks · ob]`).
#[inline(always)]
unsafe fn weight_sample<V: Lanes, const RB: usize, const KW: usize, const OV: usize>(
    g: &Geometry,
    xp: &[f32],
    dyt: &[f32],
    acc: &mut [f32],
) {
    let [hp, wp] = padded_dims(g);
    let ob = OV * V::N;
    let (nb, rows) = (g.c_out.div_ceil(ob), g.c * g.kh);
    let block = (rows + RB) * KW * ob;
    // (The caller sized `acc` from `rows_per_block`, which must agree with the dispatch.)
    assert!(acc.len() == nb * block && dyt.len() >= g.p() * nb * ob);
    for b in 0..nb {
        for r0 in (0..rows).step_by(RB) {
            // Rows past the last read the last one again, into the spare rows.
            let starts: [*const f32; RB] = std::array::from_fn(|k| {
                let r = (r0 + k).min(rows - 1);
                let (c, i) = (r / g.kh, r % g.kh);
                // SAFETY: within `xp`: a block reads up to `(ho - 1 + i) * wp + wo - 1 + j`
                // past its row's start, inside the plane.
                unsafe { xp.as_ptr().add(c * hp * wp + i * wp) }
            });
            // SAFETY: `starts` as above; `dyt` holds `P` pixels of `nb * ob` values and the
            // block reads `ob` of them from `b * ob`; `acc` holds the block's `RB` rows from
            // `r0` (spare rows included).
            unsafe {
                weight_block::<V, RB, KW, OV>(
                    starts,
                    dyt.as_ptr().add(b * ob),
                    nb * ob,
                    [g.ho, g.wo, wp],
                    acc.as_mut_ptr().add(b * block + r0 * KW * ob),
                );
            }
        }
    }
}

isa_copies!(weight_sample => weight_sample_avx512, weight_sample_avx2;
    <const RB: usize, const KW: usize, const OV: usize>
    (g: &Geometry, xp: &[f32], dyt: &[f32], acc: &mut [f32]));

/// Kernel rows per weight-gradient block: as many as the accumulators allow.
fn rows_per_block(plan: &Plan, kw: usize) -> usize {
    match (plan.level, kw, plan.ov) {
        (2, 5, 1) => 5,
        (2, 5, _) => 2,
        (2, _, 1) => 9,
        (2, _, _) => 4,
        (_, 5, 1) => 2,
        (_, 5, _) => 1,
        (_, _, 1) => 4,
        (_, _, _) => 2,
    }
}

/// Runs [`weight_sample`] with the blocking of `plan`.
fn weight_dispatch(plan: &Plan, g: &Geometry, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use x86::{V8, V16};
        // SAFETY: as in `forward_dispatch`.
        unsafe {
            match (plan.level, g.kw, plan.ov) {
                (2, 5, 1) => weight_sample_avx512::<V16, 5, 5, 1>(g, xp, dyt, acc),
                (2, 5, _) => weight_sample_avx512::<V16, 2, 5, 2>(g, xp, dyt, acc),
                (2, _, 1) => weight_sample_avx512::<V16, 9, 3, 1>(g, xp, dyt, acc),
                (2, _, _) => weight_sample_avx512::<V16, 4, 3, 2>(g, xp, dyt, acc),
                (_, 5, 1) => weight_sample_avx2::<V8, 2, 5, 1>(g, xp, dyt, acc),
                (_, 5, _) => weight_sample_avx2::<V8, 1, 5, 2>(g, xp, dyt, acc),
                (_, _, 1) => weight_sample_avx2::<V8, 4, 3, 1>(g, xp, dyt, acc),
                (_, _, _) => weight_sample_avx2::<V8, 2, 3, 2>(g, xp, dyt, acc),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (plan, g, xp, dyt, acc);
        unreachable!("`applies` is false without x86 SIMD");
    }
}

/// The weight and bias gradients, each where `need` says so: samples in parallel chunks, each
/// with its own sums, added together at the end.
pub(super) fn weight_grad(
    gs: &[f32],
    xs: &[f32],
    g: Geometry,
    need: [bool; 2],
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    weight_grad_with(Plan::new(&g), gs, xs, g, need)
}

/// [`weight_grad`] with the blocking of `plan`.
fn weight_grad_with(
    plan: Plan,
    gs: &[f32],
    xs: &[f32],
    g: Geometry,
    [need_w, need_b]: [bool; 2],
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let (ob, nb) = (plan.ob(), plan.blocks(&g));
    let rb = rows_per_block(&plan, g.kw);
    let rows = g.c * g.kh;
    let block = (rows + rb) * g.kw * ob;
    let [hp, wp] = padded_dims(&g);
    let (p, in_size, out_size) = (g.p(), g.c * g.h * g.w, g.c_out * g.p());
    // One task per sample, each task's sums (the weight's in this module's layout) merged
    // at the end, as the im2col backward does.
    let init = || Sums::with_len(if need_w { nb * block } else { 0 }, g.c_out);
    let sample = |mut acc: Sums, s: usize, _: Option<&mut [f32]>| -> Sums {
        let gn = &gs[s * out_size..][..out_size];
        if need_b {
            acc.add_bias(gn, p);
        }
        if need_w {
            let mut xp = Scratch::new(g.c * hp * wp + SLACK);
            let mut dyt = Scratch::new(p * nb * ob);
            pad_input(&g, &xs[s * in_size..][..in_size], &mut xp);
            transpose_into(gn, g.c_out, p, &mut dyt, nb * ob);
            weight_dispatch(&plan, &g, &xp, &dyt, &mut acc.dw);
        }
        acc
    };
    let sums = Sums::fold(true, g.n, &mut [], 0, init, sample);
    // `[block][C·kh + spare][kw][ob]` → `[C_out, C, kh, kw]`.
    let unpack = |acc: Vec<f32>| {
        let ck = g.ck();
        let mut dw = vec![0f32; g.c_out * ck];
        for (o, dwo) in dw.chunks_mut(ck).enumerate() {
            let (b, lane) = (o / ob, o % ob);
            for (r, taps) in dwo.chunks_mut(g.kw).enumerate() {
                for (j, d) in taps.iter_mut().enumerate() {
                    *d = acc[b * block + ((r * g.kw + j) * ob) + lane];
                }
            }
        }
        dw
    };
    let (_, dw, db) = sums.tensors(Vec::new(), &g, [false, need_w, need_b], unpack);
    (dw, db)
}

/// `dst[p][o] = src[o][p]` for `rows` rows `o` of `cols` values, `dst` rows `stride` long
/// (the values past `rows` are zeroed), in blocks of 16 rows and 16 columns that the
/// compiler turns into vector shuffles.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], stride: usize) {
    const B: usize = 16;
    if rows < stride {
        dst.fill(0.0);
    }
    for o0 in (0..rows).step_by(B) {
        let ob = B.min(rows - o0);
        for p0 in (0..cols).step_by(B) {
            let pb = B.min(cols - p0);
            if ob == B && pb == B {
                let mut t = [[0f32; B]; B];
                for (o, t) in t.iter_mut().enumerate() {
                    t.copy_from_slice(&src[(o0 + o) * cols + p0..][..B]);
                }
                for p in 0..B {
                    let d = &mut dst[(p0 + p) * stride + o0..][..B];
                    for (o, d) in d.iter_mut().enumerate() {
                        *d = t[o][p];
                    }
                }
            } else {
                for o in 0..ob {
                    for p in 0..pb {
                        dst[(p0 + p) * stride + o0 + o] = src[(o0 + o) * cols + p0 + p];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The convolution `[N, C_out, P]` and its weight gradient `[C_out, C, kh, kw]` for the
    /// output gradient `gy`, by their definitions, in f64.
    fn reference(xs: &[f32], ws: &[f32], gy: &[f32], g: &Geometry) -> (Vec<f64>, Vec<f64>) {
        let mut y = vec![0f64; g.n * g.c_out * g.p()];
        let mut dw = vec![0f64; g.c_out * g.ck()];
        for s in 0..g.n {
            for o in 0..g.c_out {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let q = (s * g.c_out + o) * g.p() + oy * g.wo + ox;
                        for c in 0..g.c {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let iy = (oy * g.stride[0] + i).wrapping_sub(g.pad[0]);
                                    let ix = (ox * g.stride[1] + j).wrapping_sub(g.pad[1]);
                                    if iy >= g.h || ix >= g.w {
                                        continue;
                                    }
                                    let xv = xs[((s * g.c + c) * g.h + iy) * g.w + ix] as f64;
                                    let k = (c * g.kh + i) * g.kw + j;
                                    y[q] += ws[o * g.ck() + k] as f64 * xv;
                                    dw[o * g.ck() + k] += gy[q] as f64 * xv;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dw)
    }

    fn assert_close(ours: &[f32], reference: &[f64], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}");
        let scale = reference.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * scale,
                "{what}: value {i} is {a}, should be {b}"
            );
        }
    }

    /// Forward, weight and bias gradients against their definitions, on both instruction
    /// sets this CPU has, with samples as the tasks (a 1-thread pool) and with rows as the
    /// tasks (4 threads, more than the samples): one and several channel blocks, rows shorter
    /// and longer than a block, asymmetric and no padding, 3, 5 and 7 wide kernels, strides
    /// 1 and 2 (the forward only).
    #[test]
    fn matches_the_definition() {
        for threads in [1, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(check_the_definition);
        }
    }

    fn check_the_definition() {
        let levels: Vec<u8> = [1, 2]
            .into_iter()
            .filter(|&l| super::super::simd_level() >= l)
            .collect();
        // n, c, c_out, h, w, kh, kw, stride, padding [top, left, bottom, right]
        let cases = [
            (2, 1, 16, 28, 28, 5, 5, 1, [2, 2, 2, 2]),
            (2, 16, 32, 14, 14, 5, 5, 1, [2, 2, 2, 2]),
            (3, 3, 5, 9, 7, 3, 3, 1, [1, 1, 1, 1]),
            (2, 4, 20, 6, 11, 3, 3, 1, [0, 1, 2, 0]),
            (2, 2, 17, 5, 30, 4, 5, 1, [0, 0, 0, 0]),
            (2, 3, 9, 8, 4, 2, 3, 1, [1, 1, 0, 1]),
            (2, 32, 64, 14, 14, 3, 3, 1, [1, 1, 1, 1]),
            (1, 3, 64, 32, 30, 7, 7, 2, [3, 3, 3, 3]),
            (2, 2, 40, 21, 19, 7, 7, 2, [3, 2, 1, 3]),
        ];
        for (n, c, c_out, h, w, kh, kw, stride, pad) in cases {
            let x = tensor(values(n * c * h * w, 1), Shape::new([n, c, h, w]));
            let wt = tensor(
                values(c_out * c * kh * kw, 2),
                Shape::new([c_out, c, kh, kw]),
            );
            let g = Geometry::new(&x, &wt, [stride, stride], pad);
            let gy = values(g.n * g.c_out * g.p(), 3);
            let (xs, ws) = (x.as_slice::<f32>().unwrap(), wt.as_slice::<f32>().unwrap());
            let (y_ref, dw_ref) = reference(xs, ws, &gy, &g);
            let db_ref: Vec<f64> = (0..c_out)
                .map(|o| {
                    (0..n)
                        .flat_map(|s| &gy[(s * c_out + o) * g.p()..][..g.p()])
                        .map(|&v| v as f64)
                        .sum()
                })
                .collect();
            // The epilogue: folded batch norm, a residual and a ReLU.
            let (scale, shift) = (values(c_out, 4), values(c_out, 5));
            let residual = values(y_ref.len(), 6);
            let ep = Epilogue::new(Some(&scale), &shift, Some(&residual), true);
            let y_ref: Vec<f64> = y_ref
                .iter()
                .enumerate()
                .map(|(q, &v)| {
                    let o = q / g.p() % c_out;
                    (v * scale[o] as f64 + shift[o] as f64 + residual[q] as f64).max(0.0)
                })
                .collect();
            for &level in &levels {
                let plan = Plan::for_level(&g, level);
                let what = format!(
                    "{:?} at level {level}, {} threads",
                    (n, c, c_out, h, w, kh, kw, stride, pad),
                    rayon::current_num_threads()
                );
                let y = forward_with(plan, xs, ws, &ep, g);
                assert_close(
                    y.as_slice::<f32>().unwrap(),
                    &y_ref,
                    &format!("forward {what}"),
                );
                if stride > 1 {
                    continue;
                }
                let (dw, db) = weight_grad_with(plan, &gy, xs, g, [true, true]);
                let dw = dw.unwrap();
                assert_close(
                    dw.as_slice::<f32>().unwrap(),
                    &dw_ref,
                    &format!("dW {what}"),
                );
                let db = db.unwrap();
                assert_close(
                    db.as_slice::<f32>().unwrap(),
                    &db_ref,
                    &format!("db {what}"),
                );
            }
        }
    }
}
