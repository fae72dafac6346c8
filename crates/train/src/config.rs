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
    /// L2 weight decay, added to the gradient as PyTorch does.
    pub weight_decay: f64,
}

/// Step decay: the learning rate is multiplied by `gamma` every `step` epochs
/// (`StepLR(step_size, gamma)`); no decay when `step` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Epochs between decays.
    pub step: Option<usize>,
    /// Decay factor.
    pub gamma: f64,
}

impl ScheduleConfig {
    /// Learning rate of the 0-based `epoch`.
    pub fn lr_at(&self, base: f64, epoch: usize) -> f64 {
        match self.step {
            Some(s) if s > 0 => base * self.gamma.powi((epoch / s) as i32),
            _ => base,
        }
    }
}

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_every_step_epochs() {
        let s = ScheduleConfig {
            step: Some(7),
            gamma: 0.1,
        };
        assert_eq!(s.lr_at(1.0, 0), 1.0);
        assert_eq!(s.lr_at(1.0, 6), 1.0);
        assert!((s.lr_at(1.0, 7) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(1.0, 14) - 0.01).abs() < 1e-12);
        assert_eq!(
            ScheduleConfig {
                step: None,
                gamma: 0.1
            }
            .lr_at(0.5, 100),
            0.5
        );
    }
}
