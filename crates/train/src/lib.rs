//! Training: the nested configuration, optimizers and schedules, the epoch loop, history and
//! checkpoints.

pub mod checkpoint;
pub mod config;
pub mod history;
pub mod optim;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::TrainingConfig;
pub use history::{History, HistoryRow};
pub use trainer::{RunPaths, TrainError, Trainer};
