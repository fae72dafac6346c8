//! Batch-level augmentation: MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019). Each
//! sample is mixed with its predecessor in the batch (torchvision's `roll(1)` pairing) and the
//! batch gets soft targets (`Batch::soft`, rows summing to 1) for a soft-label loss.

use rand::Rng;
use rand::rngs::StdRng;

use super::color::normal;
use crate::loader::Batch;

/// Which batch mix to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mix {
    /// Convex combination of whole images with `lambda ~ Beta(alpha, alpha)`.
    MixUp(f64),
    /// A box of the partner image pasted in; area fraction `1 - lambda`.
    CutMix(f64),
}

/// A `Gamma(shape, 1)` draw (Marsaglia and Tsang).
fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = 1.0 - rng.random::<f64>();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A `Beta(a, a)` draw.
pub fn beta(rng: &mut StdRng, a: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, a);
    if x + y == 0.0 { 0.5 } else { x / (x + y) }
}

/// Mixes the images of `batch` in place and sets `batch.soft` (`N x num_classes`, each row
/// summing to 1). One `lambda` per batch, as in both papers. A batch of one is left unmixed
/// but still gets one-hot soft targets.
pub fn mix_batch(batch: &mut Batch, num_classes: usize, mix: Mix, rng: &mut StdRng) {
    let [n, c, h, w] = batch.shape;
    let len = c * h * w;
    let mut soft = vec![0f32; n * num_classes];
    let mut lam = 1.0f64;
    if n > 1 {
        let src = batch.images.clone();
        match mix {
            Mix::MixUp(alpha) => {
                lam = beta(rng, alpha);
                let (a, b) = (lam as f32, 1.0 - lam as f32);
                for i in 0..n {
                    let j = (i + n - 1) % n;
                    let dst = &mut batch.images[i * len..(i + 1) * len];
                    for (k, d) in dst.iter_mut().enumerate() {
                        *d = a * src[i * len + k] + b * src[j * len + k];
                    }
                }
            }
            Mix::CutMix(alpha) => {
                let l = beta(rng, alpha);
                let cut = (1.0 - l).sqrt();
                let (cw, ch) = ((w as f64 * cut) as usize, (h as f64 * cut) as usize);
                let (cx, cy) = (rng.random_range(0..w), rng.random_range(0..h));
                let (x0, x1) = (cx.saturating_sub(cw / 2), (cx + cw / 2).min(w));
                let (y0, y1) = (cy.saturating_sub(ch / 2), (cy + ch / 2).min(h));
                lam = 1.0 - ((x1 - x0) * (y1 - y0)) as f64 / (w * h) as f64;
                for i in 0..n {
                    let j = (i + n - 1) % n;
                    for ci in 0..c {
                        for y in y0..y1 {
                            let o = ci * h * w + y * w;
                            batch.images[i * len + o + x0..i * len + o + x1]
                                .copy_from_slice(&src[j * len + o + x0..j * len + o + x1]);
                        }
                    }
                }
            }
        }
    }
    for i in 0..n {
        let j = if n > 1 { (i + n - 1) % n } else { i };
        soft[i * num_classes + batch.labels[i]] += lam as f32;
        soft[i * num_classes + batch.labels[j]] += 1.0 - lam as f32;
    }
    batch.soft = Some(soft);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn batch(n: usize) -> Batch {
        let len = 2 * 4 * 4;
        Batch {
            images: (0..n * len).map(|i| (i / len) as f32).collect(),
            labels: (0..n).map(|i| i % 3).collect(),
            indices: (0..n).collect(),
            shape: [n, 2, 4, 4],
            skipped: vec![],
            soft: None,
        }
    }

    #[test]
    fn mixup_and_cutmix_labels_sum_to_one_and_match_the_pixels() {
        let mut rng = StdRng::seed_from_u64(1);
        for mix in [Mix::MixUp(0.4), Mix::CutMix(1.0)] {
            for _ in 0..20 {
                let mut b = batch(5);
                mix_batch(&mut b, 3, mix, &mut rng);
                let soft = b.soft.clone().unwrap();
                assert_eq!(soft.len(), 15);
                for i in 0..5 {
                    let row = &soft[i * 3..(i + 1) * 3];
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                    assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
                    // Image i started as the constant i and is mixed with i - 1: its mean is
                    // lam * i + (1 - lam) * (i - 1), lam = the weight of its own label.
                    let j = (i + 4) % 5;
                    let lam = if b.labels[i] == b.labels[j] {
                        1.0
                    } else {
                        row[b.labels[i]]
                    };
                    let img = &b.images[i * 32..(i + 1) * 32];
                    let mean = img.iter().sum::<f32>() / 32.0;
                    let want = lam * i as f32 + (1.0 - lam) * j as f32;
                    if b.labels[i] != b.labels[j] {
                        assert!((mean - want).abs() < 1e-4, "{mix:?} {mean} {want}");
                    }
                }
            }
        }
        let mut one = batch(1);
        mix_batch(&mut one, 3, Mix::MixUp(1.0), &mut rng);
        assert_eq!(one.soft.unwrap(), vec![1.0, 0.0, 0.0]);
        let mean: f64 = (0..2000).map(|_| beta(&mut rng, 0.4)).sum::<f64>() / 2000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
