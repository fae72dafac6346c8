//! Training: the nested configuration, optimizers and schedules, the epoch loop, history and
//! checkpoints.

pub mod checkpoint;
pub mod config;
pub mod early;
pub mod ema;
pub mod grad;
pub mod history;
pub mod loss;
pub mod lr_find;
pub mod optim;
pub mod schedule;
pub mod tensorboard;
pub mod trainer;
pub mod transfer;

pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::TrainingConfig;
pub use history::{History, HistoryRow};
pub use trainer::{RunPaths, TrainError, Trainer};
