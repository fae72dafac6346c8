//! `convnet baseline knn|linear`: raw-pixel baselines (seed 003) to compare CNNs against.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use convnet_data::{Dataset, Source, split_indices};
use convnet_eval::baseline::{self, Distance, LinearLoss, LinearSettings, Pixels, load_pixels};
use image::DynamicImage;

/// Data options shared by the baselines.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// Data: `fashion-mnist`, `mnist`, or a folder of class sub-folders (or of train/ val/ test/).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// JSON file mapping folder names to class names.
    #[arg(long)]
    pub class_map: Option<std::path::PathBuf>,
    /// Fraction of the training data held out to choose hyper-parameters.
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Seed of the validation split, the subsets and the linear classifier.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use only this many training samples (a seeded random subset) [default: all].
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only this many test samples (a seeded random subset) [default: all].
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// KNN distances on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DistanceArg {
    /// Sum of absolute differences.
    L1,
    /// Euclidean distance.
    L2,
}

/// Linear losses on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossArg {
    /// Multiclass hinge loss, margin 1.
    Svm,
    /// Softmax cross-entropy.
    Softmax,
}

/// `convnet baseline …`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// k-nearest neighbours on raw pixels; k chosen on the validation split.
    Knn {
        /// Values of k to try (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
        k: Vec<usize>,
        /// Distance.
        #[arg(long, value_enum, default_value_t = DistanceArg::L2)]
        distance: DistanceArg,
        /// Queries per distance batch.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Linear classifier (SVM or softmax) on raw pixels, minibatch SGD; regularisation and
    /// learning rate chosen on the validation split.
    Linear {
        /// Loss.
        #[arg(long, value_enum, default_value_t = LossArg::Softmax)]
        loss: LossArg,
        /// L2 penalties to try (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1e-4,1e-3,1e-2")]
        reg: Vec<f64>,
        /// Learning rates to try (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "0.05,0.2")]
        lr: Vec<f64>,
        /// Epochs per trial.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Samples per SGD step.
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A seeded random subset of `n` samples of `ds` (all when `limit` is `None` or larger).
fn limited(ds: Arc<dyn Dataset>, limit: Option<usize>, seed: u64) -> Arc<dyn Dataset> {
    match limit {
        Some(l) if l < ds.len() => {
            let (_, mut keep) = split_indices(ds.len(), l as f64 / ds.len() as f64, seed);
            keep.sort_unstable();
            Arc::new(convnet_data::Subset::new(ds, keep))
        }
        _ => ds,
    }
}

/// Train, validation and test pixels, and the class names.
fn load(d: &DataArgs) -> Result<(Pixels, Pixels, Pixels, Vec<String>, f64)> {
    if !(0.0..1.0).contains(&d.val_split) || d.val_split == 0.0 {
        bail!("--val-split must be in (0, 1): the baselines choose their settings on it");
    }
    let started = Instant::now();
    let source = Source::parse(&d.data, d.class_map.as_deref())?;
    let (train, _) = source.train_val(0.0, d.seed)?;
    let train = limited(train, d.train_limit, d.seed);
    let test = limited(source.test()?, d.test_limit, d.seed);
    if train.len() < 2 || test.is_empty() {
        bail!("{}: too few images for a baseline", d.data);
    }
    let first = train.image(0)?;
    let channels = match first {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_) => 1,
        _ => 3,
    };
    let size = [first.height() as usize, first.width() as usize];
    let all = load_pixels(train.as_ref(), channels, size)?;
    let (tr, va) = baseline::split(&all, d.val_split, d.seed);
    let te = load_pixels(test.as_ref(), channels, size)?;
    Ok((
        tr,
        va,
        te,
        train.classes().to_vec(),
        started.elapsed().as_secs_f64(),
    ))
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Knn {
            k,
            distance,
            batch_size,
            data,
        } => {
            crate::device::set_threads(data.threads);
            let device = crate::device::parse(&data.device)?;
            if k.is_empty() || k.contains(&0) {
                bail!("--k must list positive values, e.g. --k 1,3,5,10");
            }
            let (tr, va, te, classes, load_s) = load(&data)?;
            let dist = match distance {
                DistanceArg::L1 => Distance::L1,
                DistanceArg::L2 => Distance::L2,
            };
            let r = baseline::knn(&tr, &va, &te, &k, dist, classes.len(), &device, batch_size)
                .context("knn baseline")?;
            if data.json {
                let mut v = serde_json::to_value(&r)?;
                v["data"] = data.data.clone().into();
                v["train"] = (tr.len() + va.len()).into();
                v["test"] = te.len().into();
                v["load_seconds"] = load_s.into();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "KNN ({:?}) on {} raw pixels: {} train ({} for choosing k), {} test; loaded in {load_s:.1} s",
                    r.distance,
                    data.data,
                    tr.len() + va.len(),
                    va.len(),
                    te.len()
                );
                for (k, acc) in &r.validation {
                    println!("  k = {k:<3} validation accuracy {:.2}%", 100.0 * acc);
                }
                println!(
                    "best k = {}: test accuracy {:.2}% (choosing k {:.1} s, test {:.1} s)",
                    r.best_k,
                    100.0 * r.test_accuracy,
                    r.validation_seconds,
                    r.test_seconds
                );
            }
        }
        Command::Linear {
            loss,
            reg,
            lr,
            epochs,
            batch_size,
            data,
        } => {
            crate::device::set_threads(data.threads);
            let device = crate::device::parse(&data.device)?;
            if reg.is_empty() || reg.iter().any(|r| !(r.is_finite() && *r >= 0.0)) {
                bail!("--reg must list non-negative numbers, e.g. --reg 1e-4,1e-3");
            }
            if lr.is_empty() || lr.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
                bail!("--lr must list positive numbers, e.g. --lr 0.05,0.2");
            }
            if epochs == 0 || batch_size == 0 {
                bail!("--epochs and --batch-size must be at least 1");
            }
            let (tr, va, te, classes, load_s) = load(&data)?;
            let base = LinearSettings {
                loss: match loss {
                    LossArg::Svm => LinearLoss::Svm,
                    LossArg::Softmax => LinearLoss::Softmax,
                },
                reg: 0.0,
                lr: 0.0,
                epochs,
                batch: batch_size,
                seed: data.seed,
            };
            let started = Instant::now();
            let r = baseline::linear(&tr, &va, &te, base, &reg, &lr, classes.len(), &device)
                .context("linear baseline")?;
            let total = started.elapsed().as_secs_f64();
            if data.json {
                let mut v = serde_json::to_value(&r)?;
                v["data"] = data.data.clone().into();
                v["seconds"] = total.into();
                v["load_seconds"] = load_s.into();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "linear {:?} on {} raw pixels: {} train ({} for validation), {} test; loaded in {load_s:.1} s",
                    base.loss,
                    data.data,
                    tr.len() + va.len(),
                    va.len(),
                    te.len()
                );
                for t in &r.trials {
                    println!(
                        "  reg {:<8} lr {:<6} validation accuracy {:>6}  ({:.1} s)",
                        t.settings.reg,
                        t.settings.lr,
                        if t.val_accuracy.is_finite() {
                            format!("{:.2}%", 100.0 * t.val_accuracy)
                        } else {
                            "diverged".into()
                        },
                        t.seconds
                    );
                }
                println!(
                    "best reg {} lr {}: test accuracy {:.2}% (retrained on train + validation in {:.1} s; {total:.1} s in all)",
                    r.best.reg,
                    r.best.lr,
                    100.0 * r.test_accuracy,
                    r.final_seconds
                );
            }
        }
    }
    Ok(())
}
