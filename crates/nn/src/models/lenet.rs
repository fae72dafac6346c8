//! LeNet-5 (LeCun et al., "Gradient-based learning applied to document recognition", 1998).
//!
//! C1 6@28x28 → S2 → C3 16@10x10 → S4 → C5 120 → F6 84 → classes, on a 1x32x32 input.
//! Subsampling is average pooling and the squashing function is tanh, as in the paper;
//! C5 is a 5x5 convolution that becomes fully connected on the classic 32x32 input.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::{conv_out, conv2d};
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, flatten, tanh};

/// LeNet-5.
#[derive(Module, Debug)]
pub struct LeNet5 {
    /// C1: 6 5x5 filters.
    pub conv1: Conv2d,
    /// C3: 16 5x5 filters.
    pub conv2: Conv2d,
    /// C5: 120 5x5 filters.
    pub conv3: Conv2d,
    /// S2 and S4: 2x2 average pooling.
    pub pool: AvgPool2d,
    /// F6: 84 units.
    pub fc1: Linear,
    /// Output layer.
    pub fc2: Linear,
}

impl LeNet5 {
    /// Builds LeNet-5 for `spec`; needs at least 32x32 input.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let side = |w: usize| {
            conv_out(w, 5, 1, 0)
                .map(|w| w / 2)
                .and_then(|w| conv_out(w, 5, 1, 0))
                .map(|w| w / 2)
                .and_then(|w| conv_out(w, 5, 1, 0))
        };
        let (h, w) = match (side(spec.input_size[0]), side(spec.input_size[1])) {
            (Some(h), Some(w)) if h > 0 && w > 0 => (h, w),
            _ => return Err(super::too_small(spec, "LeNet-5 needs at least 32x32")),
        };
        Ok(Self {
            conv1: conv2d(spec.in_channels, 6, 5, 1, 0, device),
            conv2: conv2d(6, 16, 5, 1, 0, device),
            conv3: conv2d(16, 120, 5, 1, 0, device),
            pool: AvgPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(120 * h * w, 84).init(device),
            fc2: LinearConfig::new(84, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 32, 32]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base (C1–C5): `[N, C, 32, 32]` → `[N, 120, 1, 1]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.run(tanh(self.conv1.run(x)));
        let x = self.pool.run(tanh(self.conv2.run(x)));
        tanh(self.conv3.run(x))
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc2.run(tanh(self.fc1.run(flatten(x))))
    }
}
