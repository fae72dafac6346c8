//! The learning-rate range test (Smith 2017; fastai's `lr_find`): train for a few hundred
//! batches while the rate grows exponentially, record the smoothed loss, stop when it blows
//! up, and suggest the rate where the loss falls fastest.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use convnet_data::{Loader, Source};
use convnet_eval::images_tensor;
use convnet_eval::plot::{Series, plot_curves_over};

use crate::config::TrainingConfig;
use crate::trainer::TrainError;
use crate::{loss, optim};

/// What the range test found.
#[derive(Debug, Clone)]
pub struct LrFind {
    /// `(learning rate, smoothed loss)` per batch.
    pub points: Vec<(f64, f64)>,
    /// The rate of the steepest descent of the smoothed loss.
    pub suggestion: f64,
}

/// Runs the range test from `start` to `end` over at most `steps` batches of `cfg`'s data and
/// model (freshly initialised; nothing is saved), and plots it to `plot`.
pub fn lr_find(
    cfg: &TrainingConfig,
    device: &Device,
    (start, end, steps): (f64, f64, usize),
    plot: &Path,
) -> Result<LrFind, TrainError> {
    let source = Source::parse(&cfg.data.source, cfg.data.class_map.as_deref())?;
    let (train, _) = source.train_val(cfg.data.val_split, cfg.seed)?;
    let classes = train.classes().len();
    let train_device = device.clone().autodiff();
    device.seed(cfg.seed);
    let mut model = convnet_nn::build(&cfg.model, &train_device)?;
    let mut optim = optim::build(&cfg.optimizer);
    let loader = Loader::new(
        train,
        cfg.preprocess.clone(),
        cfg.batch_size,
        true,
        cfg.seed,
    );
    let ratio = (end / start).powf(1.0 / steps.max(2).saturating_sub(1) as f64);
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    let mut points = Vec::new();
    let mut epoch = 0;
    'outer: loop {
        for mut batch in loader.epoch(epoch) {
            if batch.labels.is_empty() {
                continue;
            }
            let k = points.len();
            if k >= steps {
                break 'outer;
            }
            let lr = start * ratio.powi(k as i32);
            let x = images_tensor(&mut batch, &train_device);
            let targets = loss::smoothed_targets(&batch.labels, classes, cfg.label_smoothing);
            let t = loss::targets_tensor(targets, classes, &train_device);
            let l = loss::soft_cross_entropy(model.forward(x), t);
            let value = l.clone().into_scalar::<f32>() as f64;
            // fastai's bias-corrected exponential smoothing, β = 0.98.
            avg = 0.98 * avg + 0.02 * value;
            let smoothed = avg / (1.0 - 0.98f64.powi(k as i32 + 1));
            if !smoothed.is_finite() || (k > 10 && smoothed > 4.0 * best) {
                break 'outer;
            }
            best = best.min(smoothed);
            points.push((lr, smoothed));
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        epoch += 1;
    }
    if points.len() < 5 {
        return Err(TrainError::Config(format!(
            "the range test stopped after {} batches: the loss diverged at once; try a smaller start rate",
            points.len()
        )));
    }
    let suggestion = steepest(&points);
    let log = |p: &[(f64, f64)]| p.iter().map(|&(lr, l)| (lr.log10(), l)).collect();
    let series = [Series {
        name: format!("smoothed loss; steepest at lr {suggestion:.1e}"),
        points: log(&points),
    }];
    let tail = [Series {
        name: "smoothed loss, last 30%".into(),
        points: log(&points[points.len() * 7 / 10..]),
    }];
    plot_curves_over(
        plot,
        "log10(learning rate)",
        ("loss vs log10(learning rate)", &series),
        ("the end of the range", &tail),
    )
    .map_err(|e| TrainError::Config(format!("{}: {e}", plot.display())))?;
    Ok(LrFind { points, suggestion })
}

/// The rate where the smoothed loss falls fastest per decade (skipping the noisy start).
fn steepest(points: &[(f64, f64)]) -> f64 {
    let skip = points.len() / 10;
    let mut best = (f64::INFINITY, points[points.len() / 2].0);
    for w in points[skip..].windows(2) {
        let slope = (w[1].1 - w[0].1) / (w[1].0.log10() - w[0].0.log10()).max(1e-12);
        if slope < best.0 {
            best = (slope, w[0].0);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steepest_descent_is_found() {
        // Loss flat, then falling fastest around 1e-3, then rising.
        let points: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                let lr = 1e-6 * 10f64.powf(i as f64 / 10.0);
                let x = lr.log10() + 3.0;
                (
                    lr,
                    2.0 - (x * 2.0).tanh() + if x > 1.5 { (x - 1.5) * 4.0 } else { 0.0 },
                )
            })
            .collect();
        let s = steepest(&points);
        assert!((s.log10() + 3.0).abs() <= 0.11, "{s}");
    }
}
