//! The one nested training configuration, written as `config.json` into every run folder.

use convnet_data::Preprocess;
use convnet_nn::ModelSpec;
use serde::{Deserialize, Serialize};

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with optional (PyTorch-style, undampened) momentum.
    Sgd,
    /// Adam (Kingma & Ba 2015), PyTorch's defaults.
    Adam,
    /// RMSprop, PyTorch's defaults (alpha 0.99, eps 1e-8).
    Rmsprop,
    /// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.
    Adamw,
}

/// Optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Initial learning rate.
    pub lr: f64,
    /// Momentum (SGD, RMSprop).
    pub momentum: f64,
    /// Weight decay: L2, added to the gradient as PyTorch does, or decoupled (AdamW, or
    /// `decoupled`), applied to weight matrices and kernels only.
    pub weight_decay: f64,
    /// SGD: Nesterov momentum.
    #[serde(default)]
    pub nesterov: bool,
    /// Decoupled weight decay (`w ← w · (1 - lr · wd)`, no decay on biases and norm layers)
    /// for any optimizer; always on for AdamW.
    #[serde(default)]
    pub decoupled: bool,
}

impl OptimizerConfig {
    /// Whether weight decay is applied outside the optimizer, decoupled from the gradient.
    pub fn decoupled_decay(&self) -> bool {
        self.weight_decay > 0.0 && (self.decoupled || self.kind == OptimizerKind::Adamw)
    }
}

pub use crate::schedule::{ScheduleConfig, ScheduleKind};

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// `--data`: a dataset name or a folder.
    pub source: String,
    /// Optional JSON class-name map.
    pub class_map: Option<std::path::PathBuf>,
    /// Fraction of the training data held out for validation (when there is no `val/`).
    pub val_split: f64,
    /// Decoding threads (0 = one per core).
    pub workers: usize,
    /// `--augment`: the training augmentation spec or preset (`convnet_data::Augment`).
    #[serde(default)]
    pub augment: Option<String>,
    /// `--per-class`: keep at most this many training images per class (seeded subset).
    #[serde(default)]
    pub per_class: Option<usize>,
    /// `--strict`: an unreadable image stops the run instead of being skipped.
    #[serde(default)]
    pub strict: bool,
}

/// What to do when a batch's loss is NaN or infinite (`--nan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NanPolicy {
    /// Stop the run, naming the step and the last good checkpoint.
    #[default]
    Stop,
    /// Skip the batch's update, count it, and stop only after many in a row.
    SkipBatch,
}

/// Everything a training run is made of. CLI flags override its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// The architecture.
    pub model: ModelSpec,
    /// Input preprocessing (resize, normalisation).
    pub preprocess: Preprocess,
    /// Data.
    pub data: DataConfig,
    /// Number of epochs.
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Seed of weight initialisation, shuffling, splits and dropout.
    pub seed: u64,
    /// What a NaN/Inf loss does (absent in older `config.json`: stop).
    #[serde(default)]
    pub nan: NanPolicy,
    /// Label smoothing ε of the cross-entropy (Inception v3: 0.1).
    #[serde(default)]
    pub label_smoothing: f64,
    /// Weight of the auxiliary classifiers' losses (GoogLeNet, Inception v3); `None`: the
    /// paper's (0.3, 0.4); 0 turns them off.
    #[serde(default)]
    pub aux_weight: Option<f64>,
    /// Clip gradients to this global L2 norm.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Batches whose gradients are summed (and averaged) before each optimizer step.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Stop when the validation figure stops improving.
    #[serde(default)]
    pub early_stopping: Option<crate::early::EarlyStopping>,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999),
    /// evaluated each epoch and saved as `ema.ckpt`.
    #[serde(default)]
    pub ema: Option<f64>,
    /// Transfer learning: pretrained weights, head, freezing, backbone learning rate.
    #[serde(default)]
    pub transfer: Option<crate::transfer::TransferConfig>,
    /// Mixed precision: the float type the layers compute in (weights stay float32).
    #[serde(default)]
    pub precision: convnet_nn::Precision,
}

fn one() -> usize {
    1
}
