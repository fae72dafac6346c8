//! Winograd F(2x2, 3x3) convolution (Lavin & Gray, 2015) for 3x3 stride-1 convolutions: each
//! 2x2 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` of its 4x4 input tile `d`, so the products
//! are 16 per tile and channel pair instead of 36 (2.25x fewer multiply-adds), done as 16
//! matrix products `M[ξ] = U[ξ] · V[ξ]` (`[C_out, C] · [C, tiles]`) with `gemm`. The input
//! transform reads each input value about four times and the outputs come back through an
//! output transform, which is why small channel counts and small maps keep im2col
//! ([`applies`]).

use super::conv::{Scratch, matmul};
use super::{Epilogue, FlexTensor, Geometry, Shape, for_each_chunk, tensor};
use burn::backend::TensorMetadata;
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Transformed values per tile (4x4).
const XI: usize = 16;

/// Whether a convolution runs as Winograd: a 3x3 kernel at stride 1, channels enough that the
/// products (`∝ C · C_out`) outweigh the transforms (`∝ C + C_out`), and tiles enough for wide
/// products. Maps of 49 tiles or more (13x13 and up) need `C · C_out >= 32 (C + C_out)`, i.e.
/// 64 and 64; maps of 16 to 48 tiles (7x7 to 12x12), whose transforms cost more per tile,
/// `C · C_out >= 128 (C + C_out)` (256 and 256), at least 64 tiles in the batch, and at least
/// 3/4 of the tiles' outputs inside the map. Smaller maps keep im2col. Measured per layer (the
/// `timing` test, 2 threads): 64 → 64 channels at 32x32 and up x1.1-1.4, 128-512 at 14x14 to
/// 112x112 x1.3-1.7, 256 at 8x8 and 512 at 7x7 (batch 16 and 64) x1.2-1.4; 64 at 8x8 and 7x7
/// x0.64-0.85, 128 at 4x4 x0.87-0.92, 256 at 2x2 x0.87-0.97, 512 at 7x7 and batch 1 x0.67,
/// 32 → 64 at 14x14 x0.78, 16 → 16 x0.60.
pub(super) fn applies(g: &Geometry) -> bool {
    let (tw, th) = tiles(g);
    let k = match tw * th {
        49.. => 32,
        16.. if g.n * tw * th >= 64 && g.ho * g.wo >= 3 * tw * th => 128,
        _ => return false,
    };
    g.kh == 3 && g.kw == 3 && g.stride == [1, 1] && g.c * g.c_out >= k * (g.c + g.c_out)
}

/// The tiles of a map: `tw` tiles per tile row, `th` tile rows.
fn tiles(g: &Geometry) -> (usize, usize) {
    (g.wo.div_ceil(2), g.ho.div_ceil(2))
}

/// How the tiles are cut into blocks: `ns` samples per block (a group) and `br` tile rows
/// per block, so that a block's transformed input (`16 · C` values per tile) stays near 1 MiB
/// with at least 64 tiles. Small maps put several samples' tiles in one block, as im2col's
/// sample groups do, so that the products stay wide; groups are parallel tasks (`split`)
/// when there are at least as many as threads.
struct Blocks {
    ns: usize,
    br: usize,
    split: bool,
}

impl Blocks {
    fn new(g: &Geometry) -> Self {
        let (tw, th) = tiles(g);
        let threads = rayon::current_num_threads();
        // (1 MiB against 4 and 8 MiB, at least 64 tiles against 128 and 256: within the noise
        // of the `timing` test's layers.)
        let target = ((1 << 18) / (XI * g.c)).max(64);
        let br = (target / tw).clamp(1, th);
        let ns = match br == th {
            true => (target / (tw * th)).clamp(1, g.n.div_ceil(threads).max(1)),
            false => 1,
        };
        Blocks {
            ns,
            br,
            split: g.n.div_ceil(ns) >= threads,
        }
    }
}

/// `U = G g Gᵀ` of every 3x3 filter, laid out `[C_out, 16, C]` (so that each output channel's
/// part is one contiguous chunk).
pub(super) fn transform_weights(ws: &[f32], g: &Geometry) -> Vec<f32> {
    let c = g.c;
    let mut u = vec![0f32; g.c_out * XI * c];
    u.par_chunks_mut(XI * c).enumerate().for_each(|(o, uo)| {
        for ci in 0..c {
            let f = &ws[(o * c + ci) * 9..][..9];
            // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
            let mut t = [[0f32; 3]; 4];
            for j in 0..3 {
                let (a, b, d) = (f[j], f[3 + j], f[6 + j]);
                t[0][j] = a;
                t[1][j] = 0.5 * (a + b + d);
                t[2][j] = 0.5 * (a - b + d);
                t[3][j] = d;
            }
            // (G g) Gᵀ: the same combination of each row's columns.
            for (i, r) in t.iter().enumerate() {
                let v = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (j, v) in v.into_iter().enumerate() {
                    uo[(i * 4 + j) * c + ci] = v;
                }
            }
        }
    });
    u
}

/// Transformed weights of inference convolutions, most recently used last. An entry holds a
/// clone of its weight tensor, so that tensor's storage can be neither freed (its address
/// reused) nor written in place (Burn writes in place only into storage it holds alone):
/// the same address, length and shape is the same weight.
static CACHE: Mutex<Vec<(FlexTensor, Arc<Vec<f32>>)>> = Mutex::new(Vec::new());

/// Transformed values kept in [`CACHE`] at most (256 MiB; ResNet-50's layers that take
/// Winograd need 24 MiB, VGG-16's 100 MiB: 16/9 of their weights).
const CACHE_VALUES: usize = 1 << 26;

/// `w`'s transformed weights ([`transform_weights`]); with `cache` (inference, where the
/// same weights come back on every call) from [`CACHE`] when they are there. The transform
/// streams `25/9` of the weight's size through memory: 2 ms for a 512 → 512 layer, as much
/// as its product at batch 1.
pub(super) fn weights(w: &FlexTensor, g: &Geometry, cache: bool) -> Arc<Vec<f32>> {
    let ws = w.as_slice::<f32>().expect("contiguous float32 weights");
    if !cache {
        return Arc::new(transform_weights(ws, g));
    }
    let same = |t: &FlexTensor| {
        t.shape() == w.shape()
            && t.as_slice::<f32>()
                .is_some_and(|s| std::ptr::eq(s.as_ptr(), ws.as_ptr()) && s.len() == ws.len())
    };
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut entries = lock();
        if let Some(i) = entries.iter().position(|(t, _)| same(t)) {
            let entry = entries.remove(i);
            let u = entry.1.clone();
            entries.push(entry);
            return u;
        }
    }
    let u = Arc::new(transform_weights(ws, g));
    let mut entries = lock();
    let mut kept: usize = entries.iter().map(|(_, u)| u.len()).sum();
    while kept + u.len() > CACHE_VALUES && !entries.is_empty() {
        kept -= entries.remove(0).1.len();
    }
    if u.len() <= CACHE_VALUES {
        entries.push((w.clone(), u.clone()));
    }
    u
}

/// `V = Bᵀ d B` of the tiles of tile rows `ty0..ty1` of channel `xc` (`[H, W]`), into `vc`
/// (16 rows `ld` apart, tile `(ty - ty0) * tw + tx` at that offset of each). `rows` is scratch
/// of `8 (2 tw + 2)` values.
fn input_transform(
    g: &Geometry,
    xc: &[f32],
    (ty0, ty1): (usize, usize),
    vc: &mut [f32],
    ld: usize,
    rows: &mut [f32],
) {
    let (tw, _) = tiles(g);
    let wp = 2 * tw + 2;
    let (d, t) = rows[..8 * wp].split_at_mut(4 * wp);
    // Padded column `x` reads input column `x - left`: inside the image for `lo..hi`.
    let left = g.pad[1];
    let (lo, hi) = (left.min(wp), (left + g.w).min(wp));
    for ty in ty0..ty1 {
        // The tile row's four input rows, zero-padded.
        for (i, row) in d.chunks_mut(wp).enumerate() {
            let y = (2 * ty + i).checked_sub(g.pad[0]).filter(|&y| y < g.h);
            match y {
                Some(y) if lo < hi => {
                    row[..lo].fill(0.0);
                    row[hi..].fill(0.0);
                    row[lo..hi].copy_from_slice(&xc[y * g.w + lo - left..][..hi - lo]);
                }
                _ => row.fill(0.0),
            }
        }
        // Bᵀ d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3.
        let (d0, d1, d2, d3) = (&d[..wp], &d[wp..2 * wp], &d[2 * wp..3 * wp], &d[3 * wp..]);
        let combine = |t: &mut [f32], a: &[f32], b: &[f32], sign: f32| {
            t.iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(t, (a, b))| *t = a + sign * b);
        };
        combine(&mut t[..wp], d0, d2, -1.0);
        combine(&mut t[wp..2 * wp], d1, d2, 1.0);
        combine(&mut t[2 * wp..3 * wp], d2, d1, -1.0);
        combine(&mut t[3 * wp..], d1, d3, -1.0);
        // (·) B: the same combination of each tile's four columns.
        let base = (ty - ty0) * tw;
        for (i, t) in t.chunks(wp).enumerate() {
            let [v0, v1, v2, v3] = [0, 1, 2, 3].map(|j| (i * 4 + j) * ld + base);
            for tx in 0..tw {
                let c = &t[2 * tx..2 * tx + 4];
                vc[v0 + tx] = c[0] - c[2];
                vc[v1 + tx] = c[1] + c[2];
                vc[v2 + tx] = c[2] - c[1];
                vc[v3 + tx] = c[1] - c[3];
            }
        }
    }
}

/// `Y = Aᵀ m A` of the tiles of tile rows `ty0..ty1` for output channel `o` of sample `s`:
/// `mo` holds the channel's 16 rows, `C_out · ld` apart, the tiles at the same offsets as
/// [`input_transform`]'s; `yo` is the channel's `[H', W']` plane, each finished row handed to
/// `ep`. `rows` is scratch of `4 tw` values.
#[allow(clippy::too_many_arguments)]
fn output_transform(
    g: &Geometry,
    mo: &[f32],
    (ty0, ty1): (usize, usize),
    ld: usize,
    yo: &mut [f32],
    ep: &Epilogue,
    (s, o): (usize, usize),
    rows: &mut [f32],
) {
    let (tw, _) = tiles(g);
    let plane = g.c_out * ld;
    let (r0, r1) = rows[..4 * tw].split_at_mut(2 * tw);
    let p = g.ho * g.wo;
    for ty in ty0..ty1 {
        let base = (ty - ty0) * tw;
        for tx in 0..tw {
            let m = |xi: usize| mo[xi * plane + base + tx];
            // Aᵀ m: rows m0 + m1 + m2 and m1 - m2 - m3; then (·) A on their columns.
            let s0: [f32; 4] = std::array::from_fn(|j| m(j) + m(4 + j) + m(8 + j));
            let s1: [f32; 4] = std::array::from_fn(|j| m(4 + j) - m(8 + j) - m(12 + j));
            r0[2 * tx] = s0[0] + s0[1] + s0[2];
            r0[2 * tx + 1] = s0[1] - s0[2] - s0[3];
            r1[2 * tx] = s1[0] + s1[1] + s1[2];
            r1[2 * tx + 1] = s1[1] - s1[2] - s1[3];
        }
        for (dy, r) in [&*r0, &*r1].into_iter().enumerate() {
            let y = 2 * ty + dy;
            if y < g.ho {
                let row = &mut yo[y * g.wo..][..g.wo];
                row.copy_from_slice(&r[..g.wo]);
                ep.apply_span(s, o, y * g.wo, p, row);
            }
        }
    }
}

/// The convolution's output `[N, C_out, H', W']` by F(2x2, 3x3) from its transformed weights
/// `u` ([`weights`]), each row finished by `ep`. Groups of samples ([`Blocks`]) are parallel
/// tasks when there are at least as many as threads; otherwise each stage of a block is: the
/// input transform's channels, the 16 products, the output transform's channels.
pub(super) fn forward(xs: &[f32], u: &[f32], ep: &Epilogue, g: Geometry) -> FlexTensor {
    let (tw, th) = tiles(&g);
    let (p, out_size) = (g.ho * g.wo, g.c_out * g.ho * g.wo);
    let Blocks { ns, br, split } = Blocks::new(&g);
    let group = |(i, ys): (usize, &mut [f32])| {
        let (s0, ns) = (i * ns, ys.len() / out_size);
        let mut v = Scratch::new(g.c * XI * ns * br * tw);
        let mut m = Scratch::new(g.c_out * XI * ns * br * tw);
        for ty0 in (0..th).step_by(br) {
            let ty1 = (ty0 + br).min(th);
            let (ts, tb) = ((ty1 - ty0) * tw, ns * (ty1 - ty0) * tw);
            let (v, m) = (&mut v[..g.c * XI * tb], &mut m[..g.c_out * XI * tb]);
            transform_input(&g, xs, (s0, ns), (ty0, ty1), v, !split);
            // M[ξ] = U[ξ] · V[ξ], one product per ξ: on the threads as 16 tasks when the
            // groups are not (one product each instead of `gemm`'s own threads, which
            // synchronise several times per product).
            let product = |(xi, mx): (usize, &mut [f32])| {
                matmul(
                    [g.c_out, tb, g.c],
                    (mx, 1, tb),
                    false,
                    (&u[xi * g.c..], 1, XI * g.c),
                    (&v[xi * tb..], 1, XI * tb),
                    Parallelism::None,
                );
            };
            for_each_chunk(m, g.c_out * tb, !split, product);
            let m = &*m;
            // Output planes `k = j · C_out + o` of the group, in the order of `ys`.
            let transform_out = |(k, yo): (usize, &mut [f32])| {
                let (j, o) = (k / g.c_out, k % g.c_out);
                let mut rows = Scratch::new(4 * tw);
                let mo = &m[o * tb + j * ts..];
                output_transform(&g, mo, (ty0, ty1), tb, yo, ep, (s0 + j, o), &mut rows);
            };
            for_each_chunk(ys, p, !split, transform_out);
        }
    };
    let y = super::zeroed_chunks(g.n * out_size, ns * out_size, split, group);
    tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
}

/// The input transform of a block: samples `s0..s0 + ns` of `xs`, tile rows `ty0..ty1`,
/// into `v` (`[C, 16, ns · ts]`, sample `j`'s `ts` tiles at `j · ts`), channels in parallel
/// when `parallel`.
fn transform_input(
    g: &Geometry,
    xs: &[f32],
    (s0, ns): (usize, usize),
    (ty0, ty1): (usize, usize),
    v: &mut [f32],
    parallel: bool,
) {
    let (tw, _) = tiles(g);
    let (ts, hw) = ((ty1 - ty0) * tw, g.h * g.w);
    let tb = ns * ts;
    let channel = |(ci, vc): (usize, &mut [f32])| {
        let mut rows = Scratch::new(8 * (2 * tw + 2));
        for j in 0..ns {
            let xc = &xs[((s0 + j) * g.c + ci) * hw..][..hw];
            input_transform(g, xc, (ty0, ty1), &mut vc[j * ts..], tb, &mut rows);
        }
    };
    for_each_chunk(v, XI * tb, parallel, channel);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Direct convolution in float64 with the same epilogue: `[N, C_out, H', W']`.
    fn direct(xs: &[f32], ws: &[f32], g: &Geometry, ep: &Epilogue) -> Vec<f64> {
        let mut y = vec![0f64; g.n * g.c_out * g.ho * g.wo];
        for s in 0..g.n {
            for o in 0..g.c_out {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0f64;
                        for c in 0..g.c {
                            for i in 0..3 {
                                for j in 0..3 {
                                    let (y, x) = (oy + i, ox + j);
                                    let (Some(y), Some(x)) =
                                        (y.checked_sub(g.pad[0]), x.checked_sub(g.pad[1]))
                                    else {
                                        continue;
                                    };
                                    if y < g.h && x < g.w {
                                        let xv = xs[((s * g.c + c) * g.h + y) * g.w + x];
                                        let wv = ws[((o * g.c + c) * 3 + i) * 3 + j];
                                        acc += xv as f64 * wv as f64;
                                    }
                                }
                            }
                        }
                        let k = ((s * g.c_out + o) * g.ho + oy) * g.wo + ox;
                        let mut v =
                            acc * ep.scale.map_or(1.0, |a| a[o] as f64) + ep.shift[o] as f64;
                        v += ep.residual.map_or(0.0, |r| r[k] as f64);
                        y[k] = if ep.relu { v.max(0.0) } else { v };
                    }
                }
            }
        }
        y
    }

    /// F(2x2, 3x3) agrees with a direct float64 convolution: odd and even map sizes (partial
    /// last tiles), no, "same" and wide padding, padding on one side only, maps split into
    /// several blocks of tile rows, small maps whose samples are grouped, the epilogue (scale, shift, residual, ReLU), batches run
    /// as parallel samples and one sample with parallel stages.
    #[test]
    fn matches_a_direct_convolution() {
        let cases = [
            // n, c, c_out, h, w, [top, left, bottom, right]
            (2, 16, 17, 9, 7, [1, 1, 1, 1]),
            (3, 5, 16, 8, 8, [0, 0, 0, 0]),
            (1, 16, 16, 6, 11, [2, 2, 2, 2]),
            (2, 3, 4, 7, 6, [1, 0, 0, 1]),
            (1, 16, 16, 70, 70, [1, 1, 1, 1]),
            (5, 16, 8, 4, 4, [1, 1, 1, 1]),
            (7, 8, 8, 2, 2, [1, 1, 1, 1]),
        ];
        for (k, &(n, c, c_out, h, w, padding)) in cases.iter().enumerate() {
            let xs = values(n * c * h * w, 1 + k as u32);
            let ws = values(c_out * c * 9, 100 + k as u32);
            let x = tensor(xs.clone(), Shape::new([n, c, h, w]));
            let wt = tensor(ws.clone(), Shape::new([c_out, c, 3, 3]));
            let g = Geometry::new(&x, &wt, [1, 1], padding);
            let scale = values(c_out, 7);
            let shift = values(c_out, 8);
            let residual = values(n * c_out * g.ho * g.wo, 9);
            for (threads, fused) in [(1, false), (3, false), (1, true), (3, true)] {
                let ep = Epilogue::new(
                    fused.then_some(&scale[..]),
                    &shift,
                    fused.then_some(&residual[..]),
                    fused,
                );
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let u = transform_weights(&ws, &g);
                let y = pool.install(|| forward(&xs, &u, &ep, g));
                assert_eq!(y.shape().dims(), [n, c_out, g.ho, g.wo]);
                let want = direct(&xs, &ws, &g, &ep);
                let got = y.as_slice::<f32>().unwrap();
                let scale = want.iter().fold(1e-6f64, |a, v| a.max(v.abs()));
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0f64, |a, (g, w)| a.max((*g as f64 - w).abs()));
                assert!(
                    err / scale < 1e-5,
                    "case {k} threads {threads} fused {fused}: {}",
                    err / scale
                );
            }
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// Inference convolutions through the cache give each weight's own result: again for the
    /// same weight (a hit), and for new weights made after the old ones were dropped (whose
    /// storage may come back at the same address).
    #[test]
    fn cached_weights_follow_the_weight_tensor() {
        let (n, c, h) = (1, 64, 14);
        let x = tensor(
            (0..n * c * h * h).map(|i| (i % 7) as f32 - 3.0).collect(),
            Shape::new([n, c, h, h]),
        );
        let zeros = vec![0f32; c];
        let ep = Epilogue::bias(&zeros);
        for k in 0..4 {
            let w = tensor(
                (0..c * c * 9).map(|i| ((i + k) % 5) as f32 - 2.0).collect(),
                Shape::new([c, c, 3, 3]),
            );
            let g = Geometry::new(&x, &w, [1, 1], [1, 1, 1, 1]);
            assert!(applies(&g));
            let (xs, ws) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
            let want = super::super::conv::forward_im2col(xs, ws, &ep, g);
            for _ in 0..2 {
                let y = super::super::conv::forward(&x, &w, &ep, g, true);
                let (y, want) = (
                    y.as_slice::<f32>().unwrap(),
                    want.as_slice::<f32>().unwrap(),
                );
                let err = y
                    .iter()
                    .zip(want)
                    .fold(0f32, |a, (y, w)| a.max((y - w).abs()));
                assert!(err < 1e-2, "weights {k}: {err}");
            }
        }
    }
}

/// Timings of single layers, Winograd against im2col (`cargo test --release -p
/// convnet-kernels timing -- --ignored --nocapture`): where [`applies`]' thresholds come from.
#[cfg(test)]
mod timing {
    use super::super::median;
    use super::*;

    #[test]
    #[ignore = "timing, not a check"]
    fn layers() {
        // n, c, c_out, h (= w): ResNet-50's 3x3 layers at batch 1 and 16, VGG-16's at 8,
        // ResNet-18's at 32x32 (batch 64), seed 003's CNN.
        // (`TIMING_FROM=k` and `TIMING_COUNT=m` run cases `k..k + m` only.)
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        let (from, count) = (var("TIMING_FROM"), var("TIMING_COUNT"));
        let cases = [
            (1, 64, 64, 56),
            (1, 128, 128, 28),
            (1, 256, 256, 14),
            (1, 512, 512, 7),
            (16, 64, 64, 56),
            (16, 128, 128, 28),
            (16, 256, 256, 14),
            (16, 512, 512, 7),
            (8, 64, 64, 224),
            (8, 128, 128, 112),
            (8, 256, 256, 56),
            (8, 512, 512, 28),
            (8, 512, 512, 14),
            (64, 64, 64, 32),
            (64, 128, 128, 16),
            (64, 256, 256, 8),
            (64, 32, 64, 14),
            (64, 16, 16, 28),
            (64, 64, 64, 8),
            (64, 128, 128, 4),
            (64, 256, 256, 2),
            (128, 64, 64, 7),
            (16, 512, 512, 7),
        ];
        println!("n c c_out map: im2col ms, winograd ms, ratio");
        let cases = cases.into_iter().skip(from.unwrap_or(0));
        for (n, c, c_out, h) in cases.take(count.unwrap_or(usize::MAX)) {
            let xs = vec![0.5f32; n * c * h * h];
            let ws = vec![0.25f32; c_out * c * 9];
            let x = tensor(xs.clone(), Shape::new([n, c, h, h]));
            let wt = tensor(ws.clone(), Shape::new([c_out, c, 3, 3]));
            let g = Geometry::new(&x, &wt, [1, 1], [1, 1, 1, 1]);
            let zeros = vec![0f32; c_out];
            let ep = Epilogue::bias(&zeros);
            let reps = (2e9 / (n * c * c_out * h * h * 18) as f64).clamp(3.0, 51.0) as usize;
            let a = median(reps, || {
                super::super::conv::forward_im2col(&xs, &ws, &ep, g);
            });
            let b = median(reps, || {
                forward(&xs, &transform_weights(&ws, &g), &ep, g);
            });
            let u = median(reps, || {
                transform_weights(&ws, &g);
            });
            println!(
                "{n} {c} {c_out} {h}x{h}: {:.2} {:.2} x{:.2} (weights {:.2})",
                a * 1e3,
                b * 1e3,
                a / b,
                u * 1e3
            );
        }
    }
}
