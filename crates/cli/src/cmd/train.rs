//! `convnet train`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use convnet_data::{Preprocess, Source};
use convnet_nn::ModelSpec;
use convnet_train::config::{
    DataConfig, NanPolicy, OptimizerConfig, OptimizerKind, ScheduleConfig,
};
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
    /// AdamW: Adam with decoupled weight decay (--weight-decay, e.g. 0.05).
    Adamw,
}

impl Optimizer {
    /// The optimizer kind, learning rate and momentum for `--lr` / `--momentum` as given or
    /// defaulted (SGD: 0.01 and 0.9; the others 1e-3 and 0), for `train` and `bench`.
    pub fn resolve(self, lr: Option<f64>, momentum: Option<f64>) -> (OptimizerKind, f64, f64) {
        let (kind, default_lr, default_momentum) = match self {
            Optimizer::Sgd => (OptimizerKind::Sgd, 0.01, 0.9),
            Optimizer::Adam => (OptimizerKind::Adam, 1e-3, 0.0),
            Optimizer::Rmsprop => (OptimizerKind::Rmsprop, 1e-3, 0.0),
            Optimizer::Adamw => (OptimizerKind::Adamw, 1e-3, 0.0),
        };
        (
            kind,
            lr.unwrap_or(default_lr),
            momentum.unwrap_or(default_momentum),
        )
    }
}

/// `--nan` on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NanArg {
    /// Stop the run.
    Stop,
    /// Skip the batch's update.
    SkipBatch,
}

impl From<NanArg> for NanPolicy {
    fn from(a: NanArg) -> Self {
        match a {
            NanArg::Stop => NanPolicy::Stop,
            NanArg::SkipBatch => NanPolicy::SkipBatch,
        }
    }
}

/// Options of `convnet train`; every one has a default, so no argument is needed.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start from a built-in recipe (see `convnet recipes`); flags given here override it.
    #[arg(long, value_name = "NAME")]
    pub recipe: Option<String>,
    /// Start from a TOML file of these options (`epochs = 10`, `schedule = "cosine"`, …);
    /// flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Weight decay: L2 in the gradient (sgd, adam, rmsprop) or decoupled (adamw,
    /// --decoupled-wd), the latter on weights only, not biases or norm layers.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Decoupled weight decay for any optimizer (SGDW-style).
    #[arg(long)]
    pub decoupled_wd: bool,
    /// Nesterov momentum (sgd).
    #[arg(long)]
    pub nesterov: bool,
    /// Learning-rate schedule: step, multi-step, exponential, cosine (with --warmup-epochs),
    /// one-cycle or plateau (on the validation loss).
    #[arg(long, default_value = "step")]
    pub schedule: convnet_train::config::ScheduleKind,
    /// multi-step: epochs at which the rate is multiplied by --lr-gamma, e.g. 30,80.
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<usize>,
    /// Epochs of linear warm-up from lr/100, per batch (fractions allowed); every schedule but
    /// one-cycle, which rises on its own.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// cosine: final learning rate.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    /// plateau: epochs without improvement before the rate is cut by --lr-gamma.
    #[arg(long, default_value_t = 10)]
    pub plateau_patience: usize,
    /// Label smoothing ε (Inception v3 uses 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Weight of auxiliary classifier losses (googlenet, inception_v3) [default: the paper's
    /// 0.3 / 0.4]; 0 turns them off.
    #[arg(long)]
    pub aux_weight: Option<f64>,
    /// Clip gradients to this global L2 norm.
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// Sum gradients over this many batches per optimizer step (effective batch = N x
    /// --batch-size).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Stop after this many epochs without improvement of the validation accuracy (or loss,
    /// with --monitor val-loss) by more than --min-delta.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// Early stopping: the smallest change that counts as an improvement.
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Early stopping: val-acc or val-loss.
    #[arg(long, default_value = "val-acc")]
    pub monitor: String,
    /// Instead of training: the learning-rate range test (1e-7 to 10 over --lr-find-steps batches,
    /// stopping when the loss blows up); plots it to lr_find.png (in --out, else here) and
    /// prints the rate of steepest descent.
    #[arg(long)]
    pub lr_find: bool,
    /// Batches of the range test (fastai's `num_it`).
    #[arg(long, default_value_t = 300)]
    pub lr_find_steps: usize,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999),
    /// evaluated each epoch and saved as ema.ckpt.
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
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
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl] (GPU ones need
    /// their cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Mixed precision: f16 or bf16 activations and products with float32 weights (as
    /// torch.autocast; f16 with dynamic loss scaling), for GPUs; f32 is everything in float32.
    #[arg(long, default_value = "f32", value_name = "f32|f16|bf16")]
    pub precision: convnet_nn::Precision,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Image decoding threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Training augmentation: a spec (`hflip,shift=0.1,rotate=15`) or a preset
    /// (`imagenet-train`, `keras-seed001`, …); `convnet augment` previews it. `none` turns off
    /// a recipe's augmentation.
    #[arg(long)]
    pub augment: Option<String>,
    /// Keep at most N training images per class (a seeded, class-balanced subset; e.g.
    /// seed 001's 1000 cats + 1000 dogs).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Stop at the first unreadable image instead of skipping it with a warning.
    #[arg(long)]
    pub strict: bool,
    /// On a NaN/Inf loss: `stop` (naming the step and the last good checkpoint) or
    /// `skip-batch` (skip that update; stops after 10 such batches in a row) [default: stop;
    /// with --resume, the run's own setting].
    #[arg(long, value_enum)]
    pub nan: Option<NanArg>,
    /// Start from pretrained weights: a registered name (`resnet18.tv_in1k`, see `convnet
    /// pretrained`; downloaded once, SHA-256 checked), a torchvision .pth, a safetensors file,
    /// or a convnet checkpoint / run folder. The head is replaced for the data's classes.
    #[arg(long, value_name = "WEIGHTS")]
    pub pretrained: Option<String>,
    /// With --pretrained: every tensor outside the head must load (false: load what fits).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub strict_weights: bool,
    /// With --pretrained: keep the pretrained classifier (the data must have its classes).
    #[arg(long)]
    pub keep_head: bool,
    /// Freeze: none, backbone (all but the classifier) or until=LAYER (the layers before
    /// LAYER, named as in `convnet summary`, e.g. until=Conv2d-11).
    #[arg(long, default_value = "none", value_name = "WHAT")]
    pub freeze: String,
    /// Unfreeze everything from this epoch on (1-based; two-phase fine-tuning).
    #[arg(long, value_name = "EPOCH")]
    pub unfreeze_at: Option<usize>,
    /// Backbone learning rate = X × --lr (the classifier keeps --lr), e.g. 0.1.
    #[arg(long, value_name = "X")]
    pub backbone_lr_mult: Option<f64>,
}

/// The transfer-learning settings of the arguments (`None` when none is used).
fn transfer_from(a: &Args) -> Result<Option<convnet_train::transfer::TransferConfig>> {
    let freeze: convnet_train::transfer::Freeze =
        a.freeze.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    if let Some(m) = a.backbone_lr_mult
        && !(m.is_finite() && m >= 0.0)
    {
        bail!("--backbone-lr-mult must be a number >= 0");
    }
    if let Some(p) = &a.pretrained
        && let Some(e) = convnet_nn::pretrained::find_pretrained(p)
        && !convnet_train::transfer::fits(e, &a.model)
    {
        bail!(
            "--pretrained {p}: these are {} weights; use --model {}",
            e.model,
            e.model
        );
    }
    if a.unfreeze_at.is_some() && freeze == convnet_train::transfer::Freeze::None {
        bail!("--unfreeze-at needs --freeze backbone or --freeze until=LAYER");
    }
    if a.unfreeze_at == Some(0) {
        bail!("--unfreeze-at is a 1-based epoch: use 1 or more");
    }
    let used = a.pretrained.is_some()
        || freeze != convnet_train::transfer::Freeze::None
        || a.unfreeze_at.is_some()
        || a.backbone_lr_mult.is_some()
        || a.keep_head;
    Ok(used.then(|| convnet_train::transfer::TransferConfig {
        pretrained: a.pretrained.clone(),
        strict: a.strict_weights,
        keep_head: a.keep_head,
        freeze,
        unfreeze_at: a.unfreeze_at,
        backbone_lr_mult: a.backbone_lr_mult,
    }))
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

impl Args {
    /// The optimizer's name, for messages.
    fn optimizer_name(&self) -> String {
        format!("{:?}", self.optimizer).to_lowercase()
    }
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
    let (mut mean, mut std) = source.stats(channels);
    // Pretrained weights come with their own normalisation (ImageNet's, or a checkpoint's).
    if let Some(p) = &a.pretrained
        && let Some((m, s, input)) =
            convnet_train::transfer::Pretrained::resolve(p)?.preprocessing()?
        && input[0] == channels
    {
        (mean, std) = (m, s);
    }
    let (kind, lr, momentum) = a.optimizer.resolve(a.lr, a.momentum);
    if !(0.0..1.0).contains(&a.label_smoothing) {
        bail!("--label-smoothing must be in [0, 1)");
    }
    if a.accumulate == 0 {
        bail!("--accumulate must be at least 1");
    }
    if let Some(d) = a.ema
        && !(0.0..1.0).contains(&d)
    {
        bail!("--ema must be a decay in [0, 1), e.g. 0.999");
    }
    if let Some(c) = a.clip_grad_norm
        && (c.is_nan() || c <= 0.0)
    {
        bail!("--clip-grad-norm must be positive");
    }
    let monitor = match a.monitor.as_str() {
        "val-acc" => convnet_train::early::Monitor::ValAcc,
        "val-loss" => convnet_train::early::Monitor::ValLoss,
        other => bail!("--monitor '{other}': use val-acc or val-loss"),
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
            augment: match a.augment.as_deref().map(str::trim) {
                None | Some("none") => None,
                Some(spec) => Some(convnet_data::Augment::parse(spec)?.spec().to_string()),
            },
            per_class: a.per_class,
            strict: a.strict,
        },
        epochs,
        batch_size: a.batch_size,
        optimizer: OptimizerConfig {
            kind,
            lr,
            momentum,
            weight_decay: a.weight_decay,
            nesterov: a.nesterov,
            decoupled: a.decoupled_wd,
        },
        schedule: ScheduleConfig {
            kind: a.schedule,
            step: default_step(a.lr_step, epochs),
            gamma: a.lr_gamma,
            milestones: a.milestones.clone(),
            warmup_epochs: a.warmup_epochs,
            min_lr: a.min_lr,
            patience: a.plateau_patience,
            ..Default::default()
        },
        seed: a.seed,
        nan: a.nan.map(NanPolicy::from).unwrap_or_default(),
        label_smoothing: a.label_smoothing,
        aux_weight: a.aux_weight,
        clip_grad_norm: a.clip_grad_norm,
        accumulate: a.accumulate,
        early_stopping: a
            .early_stopping
            .map(|patience| convnet_train::early::EarlyStopping {
                patience,
                min_delta: a.min_delta,
                monitor,
            }),
        ema: a.ema,
        transfer: transfer_from(a)?,
        precision: a.precision,
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
    crate::device::in_pool(a.threads, || train(a))
}

fn train(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    crate::device::check_precision(&device, &a.device, a.precision)?;
    if a.precision != convnet_nn::Precision::F32 && device == burn::tensor::Device::flex() {
        eprintln!(
            "warning: --precision {} on the CPU runs Burn's generic half-precision kernels, several times slower than float32 (small-cnn: 6.6x); it is meant for GPUs",
            a.precision
        );
    }
    if a.lr_find {
        let config = config_from(&a)?;
        let dir = a.out.clone().unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let plot = dir.join("lr_find.png");
        println!(
            "learning-rate range test: {} on {}, {} optimizer, batch {}",
            config.model.name,
            config.data.source,
            a.optimizer_name(),
            config.batch_size
        );
        let found = convnet_train::lr_find::lr_find(
            &config,
            &device,
            (1e-7, 10.0, a.lr_find_steps),
            &plot,
        )?;
        let (last_lr, _) = found.points.last().copied().unwrap_or_default();
        println!(
            "{} batches, up to lr {last_lr:.1e}; steepest descent at lr {:.1e} (a good --lr is at or a little below it); plot: {}",
            found.points.len(),
            found.suggestion,
            plot.display()
        );
        return Ok(());
    }
    let (config, dir, resume) = match &a.resume {
        Some(dir) => {
            let mut c = read_config(dir)?;
            if let Some(e) = a.epochs {
                c.epochs = e;
            }
            if let Some(n) = a.nan {
                c.nan = n.into();
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
        "training {} on {} ({} classes, input {}x{}x{}) for {} epochs, seed {} (the same seed gives the same run); run folder: {}",
        config.model.name,
        config.data.source,
        config.model.num_classes,
        config.model.in_channels,
        config.model.input_size[0],
        config.model.input_size[1],
        config.epochs,
        config.seed,
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
    // Test-set evaluation and report.html (a failure here does not undo the training).
    match super::eval::after_training(&dir, &a.device) {
        Ok(e) => println!(
            "test top-1 {:.2}% (top-5 {:.2}%); report: {}",
            100.0 * e.metrics.accuracy(),
            100.0 * e.metrics.top5(),
            e.out.join("report.html").display()
        ),
        Err(e) => eprintln!("warning: no test evaluation or report.html: {e:#}"),
    }
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
