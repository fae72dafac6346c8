//! What a model is built from: its name, input shape and class count.

use serde::{Deserialize, Serialize};

/// Everything needed to rebuild a model's architecture; stored in every checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Registry name, e.g. `mnist-cnn`.
    pub name: String,
    /// Input channels (1 for grayscale, 3 for colour).
    pub in_channels: usize,
    /// Input height and width in pixels.
    pub input_size: [usize; 2],
    /// Number of output classes.
    pub num_classes: usize,
}

impl ModelSpec {
    /// The spec of `name` with input `[C, H, W]` and `num_classes` outputs.
    pub fn new(name: &str, [c, h, w]: [usize; 3], num_classes: usize) -> Self {
        Self {
            name: name.to_string(),
            in_channels: c,
            input_size: [h, w],
            num_classes,
        }
    }

    /// Input shape as `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.in_channels, self.input_size[0], self.input_size[1]]
    }
}

/// Why a model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No model of that name is registered.
    #[error("unknown model '{name}'; known models: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Comma-separated registered names.
        known: String,
    },
    /// The input is too small (or otherwise impossible) for the architecture.
    #[error("model '{name}' cannot take input {c}x{h}x{w}: {why}")]
    BadInput {
        /// Model name.
        name: String,
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
        /// Explanation.
        why: String,
    },
    /// Zero classes asked for.
    #[error("model '{0}' needs at least one class")]
    NoClasses(String),
}
