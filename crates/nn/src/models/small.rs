//! convnet's default small CNN: two conv-BN-ReLU-pool stages and a dropout-regularised dense
//! classifier. Built to pass 91 % on Fashion-MNIST within minutes on a laptop CPU.

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::ConvBnRelu;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, flatten, relu};

/// conv32-pool-conv64-pool-fc128-dropout-fc, every conv 3x3 with batch norm.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// First stage, 32 channels.
    pub block1: ConvBnRelu,
    /// Second stage, 64 channels.
    pub block2: ConvBnRelu,
    /// 2x2 max pooling after each stage.
    pub pool: MaxPool2d,
    /// Hidden dense layer.
    pub fc1: Linear,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// Classifier.
    pub fc2: Linear,
}

impl SmallCnn {
    /// Builds the network for `spec`; needs at least 4x4 input.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let [h, w] = spec.input_size.map(|s| s / 2 / 2);
        if h == 0 || w == 0 {
            return Err(super::too_small(spec, "needs at least 4x4"));
        }
        // (Convolutions first: the initialisation draws in layer order, as before.)
        let block1 = ConvBnRelu::new(spec.in_channels, 32, 3, 1, 1, device);
        let block2 = ConvBnRelu::new(32, 64, 3, 1, 1, device);
        let (pool, fc1, dropout, fc2) = head(64 * h * w, spec.num_classes, device);
        Ok(Self {
            block1,
            block2,
            pool,
            fc1,
            dropout,
            fc2,
        })
    }

    /// # Shapes
    /// `[N, C, H, W]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, H, W]` → `[N, 64, H/4, W/4]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.run(self.block1.run(x));
        self.pool.run(self.block2.run(x))
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        dense_head(&self.fc1, &self.dropout, &self.fc2, x)
    }
}

/// conv32-conv32-pool-conv64-conv64-pool-fc128-dropout-fc: [`SmallCnn`] with VGG's two 3x3
/// convolutions per stage (Simonyan & Zisserman 2014), the second doubling each stage's depth
/// and receptive field at 4.4x the compute; the fashion-small recipe's model.
#[derive(Module, Debug)]
pub struct SmallVgg {
    /// First stage, 32 channels at full resolution.
    pub stage1: [ConvBnRelu; 2],
    /// Second stage, 64 channels at half resolution.
    pub stage2: [ConvBnRelu; 2],
    /// 2x2 max pooling after each stage.
    pub pool: MaxPool2d,
    /// Hidden dense layer.
    pub fc1: Linear,
    /// Dropout before the classifier.
    pub dropout: Dropout,
    /// Classifier.
    pub fc2: Linear,
}

impl SmallVgg {
    /// Builds the network for `spec`; needs at least 4x4 input.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let [h, w] = spec.input_size.map(|s| s / 2 / 2);
        if h == 0 || w == 0 {
            return Err(super::too_small(spec, "needs at least 4x4"));
        }
        let stage1 = [
            ConvBnRelu::new(spec.in_channels, 32, 3, 1, 1, device),
            ConvBnRelu::new(32, 32, 3, 1, 1, device),
        ];
        let stage2 = [
            ConvBnRelu::new(32, 64, 3, 1, 1, device),
            ConvBnRelu::new(64, 64, 3, 1, 1, device),
        ];
        let (pool, fc1, dropout, fc2) = head(64 * h * w, spec.num_classes, device);
        Ok(Self {
            stage1,
            stage2,
            pool,
            fc1,
            dropout,
            fc2,
        })
    }

    /// # Shapes
    /// `[N, C, H, W]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, H, W]` → `[N, 64, H/4, W/4]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let stage = |x, s: &[ConvBnRelu; 2]| self.pool.run(s[1].run(s[0].run(x)));
        stage(stage(x, &self.stage1), &self.stage2)
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        dense_head(&self.fc1, &self.dropout, &self.fc2, x)
    }
}

/// The 2x2 pool and the classifier layers both models share: fc1 (`features` → 128), dropout
/// 0.3, fc2 (→ `classes`).
fn head(features: usize, classes: usize, device: &Device) -> (MaxPool2d, Linear, Dropout, Linear) {
    (
        MaxPool2dConfig::new([2, 2]).init(),
        LinearConfig::new(features, 128).init(device),
        DropoutConfig::new(0.3).init(),
        LinearConfig::new(128, classes).init(device),
    )
}

/// The classifier both models share: flatten, fc1, ReLU, dropout, fc2.
fn dense_head(fc1: &Linear, dropout: &Dropout, fc2: &Linear, x: Tensor<4>) -> Tensor<2> {
    let x = relu(fc1.run(flatten(x)));
    fc2.run(dropout.run(x))
}
