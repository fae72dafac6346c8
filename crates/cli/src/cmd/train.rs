//! `convnet train`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use convnet_data::{Preprocess, Source};
use convnet_nn::ModelSpec;
use convnet_train::config::{DataConfig, OptimizerConfig, OptimizerKind, ScheduleConfig};
use convnet_train::trainer::read_config;
use convnet_train::{RunPaths, Trainer, TrainingConfig};

/// Optimizers on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Optimizer {
    /// SGD (with --momentum).
    Sgd,
    /// Adam.
    Adam,
    /// RMSprop.
    Rmsprop,
}

/// Options of `convnet train`; every one has a default, so no argument is needed.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model to train (see `convnet models`).
    #[arg(long, default_value = "small-cnn")]
    pub model: String,
    /// Data: `fashion-mnist`, `mnist`, or a folder of class sub-folders (or of train/ val/ test/).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// JSON file mapping folder names to class names (`cat_to_name.json`).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Epochs to train [default: 4]; with --resume, the new total.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    pub optimizer: Optimizer,
    /// Learning rate [default: 0.001 for adam and rmsprop, 0.01 for sgd].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum for SGD and RMSprop [default: 0.9 for sgd, 0 for rmsprop].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Multiply the learning rate by --lr-gamma every this many epochs; 0 keeps it constant
    /// [default: one decay, after 3/4 of the epochs].
    #[arg(long)]
    pub lr_step: Option<usize>,
    /// Learning-rate decay factor for --lr-step.
    #[arg(long, default_value_t = 0.1)]
    pub lr_gamma: f64,
    /// Seed of initialisation, shuffling, the validation split and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of the training data held out for validation (when the data has no val/).
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Input channels (1 or 3) [default: the model's].
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Input size HxW, e.g. 32x32 [default: the model's].
    #[arg(long)]
    pub input_size: Option<String>,
    /// Run folder [default: runs/MODEL-DATA, numbered if it exists].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last completed epoch.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Compute device: cpu, cuda[:N] or vulkan[:N] (GPU ones need their cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Image decoding threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

pub fn parse_size(s: &str) -> Result<[usize; 2]> {
    let (h, w) = s
        .split_once('x')
        .with_context(|| format!("--input-size '{s}' is not HxW"))?;
    let h: usize = h
        .parse()
        .with_context(|| format!("--input-size '{s}' is not HxW"))?;
    let w: usize = w
        .parse()
        .with_context(|| format!("--input-size '{s}' is not HxW"))?;
    if h == 0 || w == 0 {
        bail!("--input-size must be positive");
    }
    Ok([h, w])
}

/// `runs/BASE`, or `runs/BASE-2`, `-3`, … when taken.
fn fresh_run_dir(base: &str) -> PathBuf {
    let root = PathBuf::from("runs");
    let mut dir = root.join(base);
    let mut n = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// Resolves the arguments into a full configuration.
fn config_from(a: &Args) -> Result<TrainingConfig> {
    let entry = convnet_nn::find(&a.model)?;
    let source = Source::parse(&a.data, a.class_map.as_deref())?;
    let classes = source.classes()?;
    let channels = a.in_channels.unwrap_or(entry.input[0]);
    if channels != 1 && channels != 3 {
        bail!("--in-channels must be 1 or 3");
    }
    let size = match &a.input_size {
        Some(s) => parse_size(s)?,
        None => [entry.input[1], entry.input[2]],
    };
    let (mean, std) = source.stats(channels);
    let (kind, lr, momentum) = match a.optimizer {
        Optimizer::Sgd => (
            OptimizerKind::Sgd,
            a.lr.unwrap_or(0.01),
            a.momentum.unwrap_or(0.9),
        ),
        Optimizer::Adam => (
            OptimizerKind::Adam,
            a.lr.unwrap_or(1e-3),
            a.momentum.unwrap_or(0.0),
        ),
        Optimizer::Rmsprop => (
            OptimizerKind::Rmsprop,
            a.lr.unwrap_or(1e-3),
            a.momentum.unwrap_or(0.0),
        ),
    };
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if !(0.0..1.0).contains(&a.val_split) {
        bail!("--val-split must be in [0, 1)");
    }
    let epochs = a.epochs.unwrap_or(DEFAULT_EPOCHS);
    if epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    Ok(TrainingConfig {
        model: ModelSpec {
            name: a.model.clone(),
            in_channels: channels,
            input_size: size,
            num_classes: classes.len(),
        },
        preprocess: Preprocess {
            channels,
            size,
            mean,
            std,
        },
        data: DataConfig {
            source: a.data.clone(),
            class_map: a.class_map.clone(),
            val_split: a.val_split,
            workers: a.workers,
        },
        epochs,
        batch_size: a.batch_size,
        optimizer: OptimizerConfig {
            kind,
            lr,
            momentum,
            weight_decay: a.weight_decay,
        },
        schedule: ScheduleConfig {
            step: default_step(a.lr_step, epochs),
            gamma: a.lr_gamma,
        },
        seed: a.seed,
    })
}

/// Epochs of the default run: with the default model and schedule, >91 % Fashion-MNIST test
/// accuracy in about 4 minutes on 2 cores (bench/RESULTS.md).
pub const DEFAULT_EPOCHS: usize = 4;

/// `--lr-step`: as given (0 = constant), else a single decay after 3/4 of the epochs.
fn default_step(step: Option<usize>, epochs: usize) -> Option<usize> {
    match step {
        Some(0) => None,
        Some(s) => Some(s),
        None if epochs >= 2 => Some((3 * epochs).div_ceil(4)),
        None => None,
    }
}

pub fn run(a: Args) -> Result<()> {
    crate::device::set_threads(a.threads);
    let device = crate::device::parse(&a.device)?;
    let (config, dir, resume) = match &a.resume {
        Some(dir) => {
            let mut c = read_config(dir)?;
            if let Some(e) = a.epochs {
                c.epochs = e;
            }
            (c, dir.clone(), true)
        }
        None => {
            let c = config_from(&a)?;
            let dir = a.out.clone().unwrap_or_else(|| {
                let data = Source::parse(&a.data, None)
                    .map(|s| s.name())
                    .unwrap_or_else(|_| "data".into());
                fresh_run_dir(&format!("{}-{}", a.model, data))
            });
            if dir.join("last.ckpt").exists() {
                bail!(
                    "{} already holds a run; continue it with --resume {0}, or choose another --out",
                    dir.display()
                );
            }
            (c, dir, false)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after this batch (Ctrl-C again to quit at once)");
        });
    }
    println!(
        "training {} on {} ({} classes, input {}x{}x{}) for {} epochs; run folder: {}",
        config.model.name,
        config.data.source,
        config.model.num_classes,
        config.model.in_channels,
        config.model.input_size[0],
        config.model.input_size[1],
        config.epochs,
        dir.display()
    );
    let trainer = Trainer {
        config,
        paths: RunPaths { dir: dir.clone() },
        device,
        stop,
        progress: super::interactive(),
    };
    let outcome = trainer.run(resume)?;
    println!(
        "done: best validation accuracy {:.2}%; checkpoints, history.csv and curves.png are in {}",
        100.0 * outcome.best_accuracy,
        dir.display()
    );
    println!(
        "next: convnet eval {0}   |   convnet predict {0} IMAGE…",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_decays_once_at_three_quarters() {
        assert_eq!(default_step(None, 4), Some(3));
        assert_eq!(default_step(None, 10), Some(8));
        assert_eq!(default_step(None, 1), None);
        assert_eq!(default_step(Some(0), 10), None);
        assert_eq!(default_step(Some(7), 30), Some(7));
        assert_eq!(parse_size("32x24").unwrap(), [32, 24]);
        assert!(parse_size("32").is_err() && parse_size("0x3").is_err());
    }
}
