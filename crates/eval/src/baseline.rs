//! Non-CNN baselines on raw pixels (seed 003): k-nearest neighbours with L1 or L2 distance,
//! and linear classifiers (multiclass SVM or softmax) trained by minibatch SGD. They give the
//! floor a CNN has to beat.
//!
//! Pixels are scaled to [0, 1]. KNN's L2 distances are computed on the tensor backend as
//! `||b||^2 - 2 a.b` (the `||a||^2` term does not change a query's ranking), one matrix
//! product per batch of queries; L1 distances are exact sums of absolute differences of the
//! 8-bit pixels (the same ranking as on [0, 1]), parallel over queries with rayon.

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use convnet_data::Dataset;
use image::imageops::FilterType;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

/// Why a baseline could not run.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A sample could not be decoded.
    #[error(transparent)]
    Data(#[from] convnet_data::DataError),
    /// Bad settings (empty data, k larger than the training set, …).
    #[error("{0}")]
    Config(String),
}

/// Raw pixels of a dataset: `n` rows of `dim` bytes, with labels.
#[derive(Debug, Clone)]
pub struct Pixels {
    /// `n * dim` bytes, row-major.
    pub data: Vec<u8>,
    /// Bytes per sample (`C * H * W`).
    pub dim: usize,
    /// One label per row.
    pub labels: Vec<usize>,
}

impl Pixels {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Pixels {
        Pixels {
            data: idx
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
            dim: self.dim,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Rows as floats in [0, 1] on `device`, `[n, dim]`.
    pub fn tensor(&self, device: &Device) -> Tensor<2> {
        let f: Vec<f32> = self.data.iter().map(|&v| v as f32 / 255.0).collect();
        Tensor::<2>::from_data(TensorData::new(f, [self.len(), self.dim]), device)
    }
}

/// Decodes every sample of `ds` as `channels` (1 or 3) x `size` bytes (resized when needed),
/// in parallel.
pub fn load_pixels(
    ds: &dyn Dataset,
    channels: usize,
    size: [usize; 2],
) -> Result<Pixels, BaselineError> {
    let [h, w] = size;
    let rows: Vec<Vec<u8>> = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let img = ds.image(i)?;
            let img = if img.width() as usize != w || img.height() as usize != h {
                img.resize_exact(w as u32, h as u32, FilterType::Triangle)
            } else {
                img
            };
            Ok(if channels == 1 {
                img.to_luma8().into_raw()
            } else {
                img.to_rgb8().into_raw()
            })
        })
        .collect::<Result<_, BaselineError>>()?;
    Ok(Pixels {
        data: rows.concat(),
        dim: channels * h * w,
        labels: (0..ds.len()).map(|i| ds.label(i)).collect(),
    })
}

/// KNN distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Sum of absolute differences.
    L1,
    /// Euclidean.
    L2,
}

/// The `kmax` nearest training rows of every query, as `(distance, train label)` sorted
/// nearest first (ties by training index). Queries are processed `batch` at a time.
pub fn neighbours(
    train: &Pixels,
    queries: &Pixels,
    kmax: usize,
    distance: Distance,
    device: &Device,
    batch: usize,
) -> Result<Vec<Vec<(f32, usize)>>, BaselineError> {
    if train.is_empty() || queries.is_empty() {
        return Err(BaselineError::Config("no training or query samples".into()));
    }
    if kmax == 0 || kmax > train.len() {
        return Err(BaselineError::Config(format!(
            "k must be between 1 and the {} training samples",
            train.len()
        )));
    }
    if train.dim != queries.dim {
        return Err(BaselineError::Config(format!(
            "training samples have {} values but queries {}",
            train.dim, queries.dim
        )));
    }
    let nearest = |d: &[f32]| -> Vec<(f32, usize)> {
        let mut idx: Vec<usize> = (0..d.len()).collect();
        let by = |a: &usize, b: &usize| d[*a].total_cmp(&d[*b]).then(a.cmp(b));
        if kmax < idx.len() {
            idx.select_nth_unstable_by(kmax - 1, by);
            idx.truncate(kmax);
        }
        idx.sort_by(by);
        idx.into_iter().map(|j| (d[j], train.labels[j])).collect()
    };
    let mut out = Vec::with_capacity(queries.len());
    match distance {
        Distance::L2 => {
            let t = train.tensor(device);
            let tn = t
                .clone()
                .powf_scalar(2.0)
                .sum_dim(1)
                .reshape([1, train.len()]);
            let tt = t.transpose();
            for start in (0..queries.len()).step_by(batch.max(1)) {
                let end = (start + batch.max(1)).min(queries.len());
                let q = queries
                    .subset(&(start..end).collect::<Vec<_>>())
                    .tensor(device);
                let qn = q.clone().powf_scalar(2.0).sum_dim(1);
                // ||a||^2 + ||b||^2 - 2ab, clamped at 0 against rounding; sqrt is monotone
                // so it is left out of the ranking and applied to the kept distances only.
                let d = (q.matmul(tt.clone()).mul_scalar(-2.0) + tn.clone() + qn).clamp_min(0.0);
                let d: Vec<f32> = d.into_data().try_to_vec::<f32>().expect("f32 distances");
                out.par_extend(
                    d.par_chunks_exact(train.len())
                        .map(|row| {
                            nearest(row)
                                .into_iter()
                                .map(|(v, l)| (v.sqrt(), l))
                                .collect()
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        Distance::L1 => {
            out = (0..queries.len())
                .into_par_iter()
                .map(|i| {
                    let q = queries.row(i);
                    let d: Vec<f32> = (0..train.len())
                        .map(|j| {
                            let s: u32 = q
                                .iter()
                                .zip(train.row(j))
                                .map(|(&a, &b)| a.abs_diff(b) as u32)
                                .sum();
                            s as f32 / 255.0
                        })
                        .collect();
                    nearest(&d)
                })
                .collect();
        }
    }
    Ok(out)
}

/// Majority vote of the first `k` neighbours; a tie between classes goes to the class whose
/// nearest member comes first.
pub fn vote(neigh: &[(f32, usize)], k: usize, num_classes: usize) -> usize {
    let mut count = vec![0usize; num_classes];
    let mut first = vec![usize::MAX; num_classes];
    for (pos, &(_, l)) in neigh.iter().take(k).enumerate() {
        count[l] += 1;
        first[l] = first[l].min(pos);
    }
    (0..num_classes)
        .max_by(|&a, &b| count[a].cmp(&count[b]).then(first[b].cmp(&first[a])))
        .unwrap_or(0)
}

/// Accuracy of a KNN vote with `k` neighbours over precomputed neighbour lists.
pub fn knn_accuracy(
    neigh: &[Vec<(f32, usize)>],
    labels: &[usize],
    k: usize,
    num_classes: usize,
) -> f64 {
    let right = neigh
        .iter()
        .zip(labels)
        .filter(|(n, l)| vote(n, k, num_classes) == **l)
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// What a KNN baseline run found.
#[derive(Debug, Clone, Serialize)]
pub struct KnnReport {
    /// Distance used.
    pub distance: Distance,
    /// `(k, validation accuracy)` for every k tried.
    pub validation: Vec<(usize, f64)>,
    /// The k with the best validation accuracy (the smallest on ties).
    pub best_k: usize,
    /// Test accuracy with `best_k`, the whole training set (train + validation) as memory.
    pub test_accuracy: f64,
    /// Seconds spent choosing k (distances of the validation split).
    pub validation_seconds: f64,
    /// Seconds spent on the test set.
    pub test_seconds: f64,
}

/// KNN: chooses k among `ks` on `val` with `train` as memory, then classifies `test` with
/// `train + val` as memory.
#[allow(clippy::too_many_arguments)]
pub fn knn(
    train: &Pixels,
    val: &Pixels,
    test: &Pixels,
    ks: &[usize],
    distance: Distance,
    num_classes: usize,
    device: &Device,
    batch: usize,
) -> Result<KnnReport, BaselineError> {
    let kmax = ks.iter().copied().max().unwrap_or(0);
    let started = Instant::now();
    let vn = neighbours(train, val, kmax, distance, device, batch)?;
    let validation: Vec<(usize, f64)> = ks
        .iter()
        .map(|&k| (k, knn_accuracy(&vn, &val.labels, k, num_classes)))
        .collect();
    let validation_seconds = started.elapsed().as_secs_f64();
    let best_k = validation
        .iter()
        .fold(None::<(usize, f64)>, |best, &(k, a)| match best {
            Some((bk, ba)) if ba > a || (ba == a && bk < k) => Some((bk, ba)),
            _ => Some((k, a)),
        })
        .map(|b| b.0)
        .unwrap_or(1);
    let started = Instant::now();
    let memory = Pixels {
        data: [train.data.as_slice(), val.data.as_slice()].concat(),
        dim: train.dim,
        labels: [train.labels.as_slice(), val.labels.as_slice()].concat(),
    };
    let tn = neighbours(&memory, test, best_k, distance, device, batch)?;
    let test_accuracy = knn_accuracy(&tn, &test.labels, best_k, num_classes);
    Ok(KnnReport {
        distance,
        validation,
        best_k,
        test_accuracy,
        validation_seconds,
        test_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Loss of a linear classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearLoss {
    /// Multiclass hinge (Weston-Watkins / cs231n), margin 1.
    Svm,
    /// Softmax cross-entropy.
    Softmax,
}

/// Training settings of one linear classifier.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LinearSettings {
    /// Loss.
    pub loss: LinearLoss,
    /// L2 penalty `reg * ||W||^2`.
    pub reg: f64,
    /// SGD step size.
    pub lr: f64,
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Seed of the initial weights and the shuffles.
    pub seed: u64,
}

/// A trained linear classifier `scores = (x - mean) W + b` on pixels in [0, 1].
pub struct LinearModel {
    mean: Tensor<2>,
    w: Tensor<2>,
    b: Tensor<2>,
    /// Mean training loss (data term + penalty) of the last epoch.
    pub final_loss: f64,
}

impl LinearModel {
    /// Class scores `[n, K]` of `x` (`[n, dim]` in [0, 1]).
    pub fn scores(&self, x: Tensor<2>) -> Tensor<2> {
        (x - self.mean.clone()).matmul(self.w.clone()) + self.b.clone()
    }

    /// Top-1 accuracy on `data`.
    pub fn accuracy(&self, data: &Pixels, device: &Device) -> f64 {
        let s = self.scores(data.tensor(device));
        let pred: Vec<i64> = s
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("int predictions");
        let right = pred
            .iter()
            .zip(&data.labels)
            .filter(|(p, l)| **p as usize == **l)
            .count();
        right as f64 / data.len().max(1) as f64
    }
}

/// Trains a linear classifier with minibatch SGD and hand-written gradients on the backend.
pub fn train_linear(
    train: &Pixels,
    num_classes: usize,
    s: &LinearSettings,
    device: &Device,
) -> Result<LinearModel, BaselineError> {
    if train.is_empty() {
        return Err(BaselineError::Config("no training samples".into()));
    }
    let (n, d, k) = (train.len(), train.dim, num_classes);
    let x_all = train.tensor(device);
    let mean = x_all.clone().mean_dim(0);
    let x_all = x_all - mean.clone();
    let y_all = Tensor::<1, Int>::from_data(
        TensorData::new(
            train.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            [n],
        ),
        device,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed);
    let w0: Vec<f32> = (0..d * k)
        .map(|_| 0.001 * (rng.random::<f32>() - 0.5))
        .collect();
    let mut w = Tensor::<2>::from_data(TensorData::new(w0, [d, k]), device);
    let mut b = Tensor::<2>::zeros([1, k], device);
    let mut order: Vec<usize> = (0..n).collect();
    let bs = s.batch.clamp(1, n);
    let mut final_loss = f64::NAN;
    for _ in 0..s.epochs.max(1) {
        order.shuffle(&mut rng);
        let mut loss_sum = Tensor::<1>::zeros([1], device);
        let mut steps = 0usize;
        for chunk in order.chunks(bs) {
            let m = chunk.len();
            let idx = Tensor::<1, Int>::from_data(
                TensorData::new(chunk.iter().map(|&i| i as i64).collect::<Vec<_>>(), [m]),
                device,
            );
            let x = x_all.clone().select(0, idx.clone());
            let y = y_all.clone().select(0, idx);
            let yh: Tensor<2> = y.clone().one_hot::<2>(k).float();
            let scores = x.clone().matmul(w.clone()) + b.clone();
            let (loss, g) = match s.loss {
                LinearLoss::Softmax => {
                    let p = burn::tensor::activation::softmax(scores.clone(), 1);
                    let logp = burn::tensor::activation::log_softmax(scores, 1);
                    let loss = (logp * yh.clone()).sum().neg().div_scalar(m as f32);
                    (loss, (p - yh).div_scalar(m as f32))
                }
                LinearLoss::Svm => {
                    let correct = scores.clone().gather(1, y.reshape([m, 1])).expand([m, k]);
                    let margins = (scores - correct).add_scalar(1.0).clamp_min(0.0)
                        * (yh.clone().neg().add_scalar(1.0));
                    let mask = margins.clone().greater_elem(0.0).float();
                    let loss = margins.sum().div_scalar(m as f32);
                    let g = mask.clone() - yh * mask.sum_dim(1);
                    (loss, g.div_scalar(m as f32))
                }
            };
            let penalty = w.clone().powf_scalar(2.0).sum().mul_scalar(s.reg);
            loss_sum = loss_sum + loss + penalty;
            steps += 1;
            let gw = x.transpose().matmul(g.clone()) + w.clone().mul_scalar(2.0 * s.reg);
            let gb = g.sum_dim(0);
            w = w - gw.mul_scalar(s.lr);
            b = b - gb.mul_scalar(s.lr);
        }
        let total: f32 = loss_sum.into_scalar();
        final_loss = total as f64 / steps.max(1) as f64;
        if !final_loss.is_finite() {
            return Err(BaselineError::Config(format!(
                "training diverged (loss {final_loss}) with lr {} and reg {}; use a smaller --lr",
                s.lr, s.reg
            )));
        }
    }
    Ok(LinearModel {
        mean,
        w,
        b,
        final_loss,
    })
}

/// One point of the linear classifier's hyper-parameter search.
#[derive(Debug, Clone, Serialize)]
pub struct LinearTrial {
    /// Settings tried.
    pub settings: LinearSettings,
    /// Validation accuracy (NaN when training diverged).
    pub val_accuracy: f64,
    /// Final training loss.
    pub train_loss: f64,
    /// Seconds of training.
    pub seconds: f64,
}

/// What a linear baseline run found.
#[derive(Debug, Clone, Serialize)]
pub struct LinearReport {
    /// Every (reg, lr) tried.
    pub trials: Vec<LinearTrial>,
    /// The best trial's settings.
    pub best: LinearSettings,
    /// Test accuracy of the best settings retrained on train + validation.
    pub test_accuracy: f64,
    /// Seconds of the final training.
    pub final_seconds: f64,
}

/// Linear classifier: tries every `(reg, lr)` on `val`, retrains the best on `train + val`,
/// reports test accuracy. Diverging settings are recorded and skipped.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    train: &Pixels,
    val: &Pixels,
    test: &Pixels,
    base: LinearSettings,
    regs: &[f64],
    lrs: &[f64],
    num_classes: usize,
    device: &Device,
) -> Result<LinearReport, BaselineError> {
    let mut trials = Vec::new();
    for &reg in regs {
        for &lr in lrs {
            let settings = LinearSettings { reg, lr, ..base };
            let started = Instant::now();
            let (val_accuracy, train_loss) =
                match train_linear(train, num_classes, &settings, device) {
                    Ok(m) => (m.accuracy(val, device), m.final_loss),
                    Err(BaselineError::Config(_)) => (f64::NAN, f64::NAN),
                    Err(e) => return Err(e),
                };
            trials.push(LinearTrial {
                settings,
                val_accuracy,
                train_loss,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    let best = trials
        .iter()
        .filter(|t| t.val_accuracy.is_finite())
        .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy))
        .ok_or_else(|| {
            BaselineError::Config("every setting diverged; try smaller --lr values".into())
        })?
        .settings;
    let started = Instant::now();
    let all = Pixels {
        data: [train.data.as_slice(), val.data.as_slice()].concat(),
        dim: train.dim,
        labels: [train.labels.as_slice(), val.labels.as_slice()].concat(),
    };
    let model = train_linear(&all, num_classes, &best, device)?;
    let test_accuracy = model.accuracy(test, device);
    Ok(LinearReport {
        trials,
        best,
        test_accuracy,
        final_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Splits `ds` into `(train, val)` pixel sets with a seeded `val_fraction`.
pub fn split(p: &Pixels, val_fraction: f64, seed: u64) -> (Pixels, Pixels) {
    let (tr, va) = convnet_data::split_indices(p.len(), val_fraction, seed);
    (p.subset(&tr), p.subset(&va))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(rows: &[&[u8]], labels: &[usize]) -> Pixels {
        Pixels {
            data: rows.concat(),
            dim: rows[0].len(),
            labels: labels.to_vec(),
        }
    }

    #[test]
    fn l1_and_l2_neighbours_match_brute_force() {
        let train = px(
            &[&[0, 0], &[255, 0], &[0, 255], &[255, 255], &[10, 20]],
            &[0, 1, 1, 2, 0],
        );
        let q = px(&[&[250, 10], &[5, 5]], &[1, 0]);
        let dev = Device::flex();
        for dist in [Distance::L1, Distance::L2] {
            let n = neighbours(&train, &q, 3, dist, &dev, 1).unwrap();
            for (qi, row) in n.iter().enumerate() {
                let mut brute: Vec<(f32, usize)> = (0..train.len())
                    .map(|j| {
                        let diffs = q
                            .row(qi)
                            .iter()
                            .zip(train.row(j))
                            .map(|(&a, &b)| (a as f32 - b as f32).abs() / 255.0);
                        let d = match dist {
                            Distance::L1 => diffs.sum::<f32>(),
                            Distance::L2 => diffs.map(|x| x * x).sum::<f32>().sqrt(),
                        };
                        (d, train.labels[j])
                    })
                    .collect();
                brute.sort_by(|a, b| a.0.total_cmp(&b.0));
                for (a, b) in row.iter().zip(&brute) {
                    assert_eq!(a.1, b.1, "{dist:?}");
                    assert!((a.0 - b.0).abs() < 1e-3, "{dist:?}: {} vs {}", a.0, b.0);
                }
            }
        }
        assert!(neighbours(&train, &q, 6, Distance::L1, &dev, 4).is_err());
    }

    #[test]
    fn vote_breaks_ties_by_nearest() {
        // Labels by distance: 2, 1, 1, 2 -> k=1: 2; k=3: 1; k=4: tie 2-2, class 2 is nearest.
        let n = [(0.1, 2), (0.2, 1), (0.3, 1), (0.4, 2)];
        assert_eq!(vote(&n, 1, 3), 2);
        assert_eq!(vote(&n, 3, 3), 1);
        assert_eq!(vote(&n, 4, 3), 2);
    }

    /// Two well-separated blobs: both linear losses learn them, KNN picks a k.
    #[test]
    fn baselines_learn_separable_data() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut make = |n: usize| {
            let mut data = Vec::new();
            let mut labels = Vec::new();
            for i in 0..n {
                let l = i % 2;
                for j in 0..16 {
                    let base: i32 = if (j < 8) == (l == 0) { 200 } else { 40 };
                    data.push((base + rng.random_range(-30..30)).clamp(0, 255) as u8);
                }
                labels.push(l);
            }
            Pixels {
                data,
                dim: 16,
                labels,
            }
        };
        let (train, val, test) = (make(200), make(50), make(50));
        let dev = Device::flex();
        for loss in [LinearLoss::Svm, LinearLoss::Softmax] {
            let base = LinearSettings {
                loss,
                reg: 0.0,
                lr: 0.0,
                epochs: 5,
                batch: 32,
                seed: 1,
            };
            let r = linear(&train, &val, &test, base, &[1e-4, 1e-2], &[0.1], 2, &dev).unwrap();
            assert_eq!(r.trials.len(), 2);
            assert!(r.test_accuracy > 0.95, "{loss:?}: {}", r.test_accuracy);
        }
        let r = knn(&train, &val, &test, &[1, 3], Distance::L2, 2, &dev, 16).unwrap();
        assert!(r.test_accuracy > 0.95 && [1, 3].contains(&r.best_k));
    }

    #[test]
    fn svm_gradient_matches_finite_differences() {
        // One step with lr=1 from W=0 moves W by -grad; check the hinge gradient by hand:
        // x = (1, 0) centred over two samples, scores 0, every wrong class has margin 1 > 0.
        let train = px(&[&[255, 0], &[0, 255]], &[0, 1]);
        let dev = Device::flex();
        let s = LinearSettings {
            loss: LinearLoss::Svm,
            reg: 0.0,
            lr: 0.5,
            epochs: 1,
            batch: 2,
            seed: 0,
        };
        let m = train_linear(&train, 2, &s, &dev).unwrap();
        // After one step the classifier separates the two samples.
        assert_eq!(m.accuracy(&train, &dev), 1.0);
        assert!(m.final_loss > 0.9 && m.final_loss < 1.1, "{}", m.final_loss);
    }
}
