//! Layers and the model zoo of convnet.
//!
//! Every model is a Burn [`Module`](burn::module::Module) that maps an image batch
//! `[N, C, H, W]` to class logits `[N, classes]`. [`Network`] is the one type the training,
//! evaluation and prediction code handle; [`registry::MODELS`] lists what can be built by name.

pub mod layers;
pub mod models;
pub mod registry;
pub mod spec;

pub use models::Network;
pub use registry::{MODELS, ModelEntry, build, find};
pub use spec::{ModelError, ModelSpec};
