//! Metrics, evaluation and pictures: what a trained model is judged by and what people look at.

pub mod baseline;
pub mod evaluate;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod tta;

pub use evaluate::{evaluate, images_tensor, logits_of, predict_top_k};
pub use metrics::Metrics;
