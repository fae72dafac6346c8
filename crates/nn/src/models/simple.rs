//! The small CNNs the seeds build by hand: seed 003's MNIST CNN and seed 000's GTSRB net.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::{conv_out, conv2d};
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, conv_relu, flatten, relu};

/// Seed 003's MNIST CNN: conv 16 5x5 p2 → ReLU → pool 2 → conv 32 5x5 p2 → ReLU → pool 2 →
/// linear (1568 → classes on 28x28 input).
#[derive(Module, Debug)]
pub struct MnistCnn {
    /// 16 5x5 filters, padding 2.
    pub conv1: Conv2d,
    /// 32 5x5 filters, padding 2.
    pub conv2: Conv2d,
    /// 2x2 max pooling.
    pub pool: MaxPool2d,
    /// Classifier.
    pub out: Linear,
}

impl MnistCnn {
    /// Builds the network for `spec`; needs at least 4x4 input.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let [h, w] = spec.input_size.map(|s| s / 2 / 2);
        if h == 0 || w == 0 {
            return Err(super::too_small(spec, "needs at least 4x4"));
        }
        Ok(Self {
            conv1: conv2d(spec.in_channels, 16, 5, 1, 2, device),
            conv2: conv2d(16, 32, 5, 1, 2, device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            out: LinearConfig::new(32 * h * w, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 28, 28]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, 28, 28]` → `[N, 32, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.run(conv_relu(&self.conv1, x));
        self.pool.run(conv_relu(&self.conv2, x))
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.out.run(flatten(x))
    }
}

/// Seed 000's GTSRB net: conv 6 3x3 → ReLU → pool → conv 16 3x3 → ReLU → pool → 120 → 84 →
/// classes (43 traffic signs in the seed; any count here).
#[derive(Module, Debug)]
pub struct GtsrbNet {
    /// 6 3x3 filters.
    pub conv1: Conv2d,
    /// 16 3x3 filters.
    pub conv2: Conv2d,
    /// 2x2 max pooling.
    pub pool: MaxPool2d,
    /// 120 units.
    pub fc1: Linear,
    /// 84 units.
    pub fc2: Linear,
    /// Classifier.
    pub fc3: Linear,
}

impl GtsrbNet {
    /// Builds the network for `spec`; needs at least 10x10 input.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let side = |w: usize| {
            conv_out(w, 3, 1, 0)
                .map(|w| w / 2)
                .and_then(|w| conv_out(w, 3, 1, 0))
                .map(|w| w / 2)
        };
        let (h, w) = match (side(spec.input_size[0]), side(spec.input_size[1])) {
            (Some(h), Some(w)) if h > 0 && w > 0 => (h, w),
            _ => return Err(super::too_small(spec, "needs at least 10x10")),
        };
        Ok(Self {
            conv1: conv2d(spec.in_channels, 6, 3, 1, 0, device),
            conv2: conv2d(6, 16, 3, 1, 0, device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(16 * h * w, 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 32, 32]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, 32, 32]` → `[N, 16, 6, 6]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.run(conv_relu(&self.conv1, x));
        self.pool.run(conv_relu(&self.conv2, x))
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.fc1.run(flatten(x)));
        self.fc3.run(relu(self.fc2.run(x)))
    }
}
