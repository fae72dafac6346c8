//! `convnet train-head`: train a linear or MLP classifier on features saved by
//! `convnet features` (seed 001's feature extraction: the convolutional base runs once, the
//! head trains in seconds).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use convnet_train::config::{OptimizerConfig, OptimizerKind};
use convnet_train::transfer::{self, FeatureSet, HeadConfig};

/// Options of `convnet train-head`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Features written by `convnet features`.
    pub features: PathBuf,
    /// Hidden units (0: a linear classifier).
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Dropout before the output layer.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = super::train::Optimizer::Adam)]
    pub optimizer: super::train::Optimizer,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Momentum (sgd, rmsprop).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(a: Args) -> Result<()> {
    crate::device::in_pool(a.threads, || train_head(a))
}

fn train_head(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    if a.epochs == 0 || a.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    if !(0.0..1.0).contains(&a.dropout) {
        bail!("--dropout must be in [0, 1)");
    }
    let set = FeatureSet::load(&a.features)?;
    let kind = match a.optimizer {
        super::train::Optimizer::Sgd => OptimizerKind::Sgd,
        super::train::Optimizer::Adam => OptimizerKind::Adam,
        super::train::Optimizer::Rmsprop => OptimizerKind::Rmsprop,
        super::train::Optimizer::Adamw => OptimizerKind::Adamw,
    };
    let cfg = HeadConfig {
        hidden: (a.hidden > 0).then_some(a.hidden),
        dropout: a.dropout,
        epochs: a.epochs,
        batch_size: a.batch_size,
        optimizer: OptimizerConfig {
            kind,
            lr: a.lr,
            momentum: if kind == OptimizerKind::Adam {
                0.0
            } else {
                a.momentum
            },
            weight_decay: a.weight_decay,
            nesterov: false,
            decoupled: false,
        },
        seed: a.seed,
    };
    let train = set.split("train").expect("load checks the train split");
    println!(
        "training a {} head on {} features of {} ({} train images, {} classes)",
        match cfg.hidden {
            Some(h) => format!("{h}-unit MLP"),
            None => "linear".to_string(),
        },
        train.dim,
        set.model,
        train.labels.len(),
        set.classes.len()
    );
    let started = Instant::now();
    let (head, _) = transfer::train_head(&set, &cfg, &device, &mut |r| {
        println!(
            "epoch {:>3}/{}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%",
            r.epoch,
            cfg.epochs,
            r.train.0,
            100.0 * r.train.1,
            r.val.0,
            100.0 * r.val.1
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    match set.split("test") {
        Some(test) => {
            let m = transfer::evaluate_head(&head, test, set.classes.len(), &device);
            println!(
                "test: {} images, loss {:.4}, top-1 {:.2}%; head trained in {secs:.1} s",
                test.labels.len(),
                m.loss(),
                100.0 * m.accuracy()
            );
        }
        None => println!("no test split in the file; head trained in {secs:.1} s"),
    }
    Ok(())
}
