//! Wide residual networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016), the
//! CIFAR layout of the paper's Table 1: a 3x3 stem with 16 filters, three groups of `(d - 4) / 6`
//! pre-activation basic blocks with `16k`, `32k` and `64k` channels (the first block of the second
//! and third group with stride 2), batch norm + ReLU, global average pooling and a classifier.
//! WRN-d-k is `depth` d and widening factor k; the Fashion-MNIST benchmark's table quotes
//! WRN-28-10 (95.9 %) and WRN-40-4 (96.7 %).
//!
//! Blocks follow the authors' reference code: BN → ReLU → 3x3 conv → BN → ReLU → 3x3 conv, plus
//! the input where the shape is kept, or a bias-free 1x1 (strided) projection of the
//! pre-activated input where it changes. No dropout (the paper's 0.3 between the convolutions is
//! an option of its own there).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::conv_he;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, add, bn_relu, conv_bn_relu, flatten};

/// A pre-activation basic block from `c_in` to `c_out` channels.
#[derive(Module, Debug)]
pub struct WideBlock {
    /// Batch norm on the block's input.
    pub bn1: BatchNorm,
    /// First 3x3 convolution, carrying the block's stride.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn2: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// 1x1 projection of the pre-activated input where the shape changes.
    pub shortcut: Option<Conv2d>,
}

impl WideBlock {
    /// A block from `c_in` to `c_out` channels with the given stride.
    pub fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        let changes = c_in != c_out || stride != 1;
        Self {
            bn1: BatchNormConfig::new(c_in).init(device),
            conv1: conv_he(c_in, c_out, 3, stride, true, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            conv2: conv_he(c_out, c_out, 3, 1, true, device),
            shortcut: changes.then(|| conv_he(c_in, c_out, 1, stride, true, device)),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pre = bn_relu(&self.bn1, x.clone());
        let out = self
            .conv2
            .run(conv_bn_relu(&self.conv1, &self.bn2, pre.clone()));
        let shortcut = match &self.shortcut {
            Some(proj) => proj.run(pre),
            None => x,
        };
        add(out, shortcut)
    }
}

/// WRN-d-k for small images (CIFAR, Fashion-MNIST).
#[derive(Module, Debug)]
pub struct WideResNet {
    /// 3x3 stem convolution with 16 filters.
    pub conv1: Conv2d,
    /// The three groups of blocks, at 16k, 32k and 64k channels.
    pub block1: Vec<WideBlock>,
    /// Second group (first block stride 2).
    pub block2: Vec<WideBlock>,
    /// Third group (first block stride 2).
    pub block3: Vec<WideBlock>,
    /// Batch norm (+ ReLU) before pooling.
    pub bn1: BatchNorm,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
}

impl WideResNet {
    /// WRN-`depth`-`k`: `depth = 6n + 4` with `n` blocks per group. Needs at least 3x3 input
    /// (each stride-2 group needs 2x2).
    pub fn new(
        spec: &ModelSpec,
        depth: usize,
        k: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if depth < 10 || !(depth - 4).is_multiple_of(6) || k == 0 {
            return Err(super::too_small(
                spec,
                "a wide ResNet has depth 6n + 4 (n >= 1) and a widening factor of at least 1",
            ));
        }
        if !super::resnet::input_fits(spec, &[(3, 1, 1), (3, 2, 1), (3, 2, 1)]) {
            return Err(super::too_small(
                spec,
                "a wide ResNet needs at least 3x3 (each stride-2 group needs 2x2)",
            ));
        }
        let n = (depth - 4) / 6;
        let group = |c_in: usize, c_out: usize, stride: usize| -> Vec<WideBlock> {
            (0..n)
                .map(|i| match i {
                    0 => WideBlock::new(c_in, c_out, stride, device),
                    _ => WideBlock::new(c_out, c_out, 1, device),
                })
                .collect()
        };
        let widths = [16, 16 * k, 32 * k, 64 * k];
        Ok(Self {
            conv1: conv_he(spec.in_channels, widths[0], 3, 1, true, device),
            block1: group(widths[0], widths[1], 1),
            block2: group(widths[1], widths[2], 2),
            block3: group(widths[2], widths[3], 2),
            bn1: BatchNormConfig::new(widths[3]).init(device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(widths[3], spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 32, 32]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base with its final batch norm + ReLU: `[N, C, 32, 32]` →
    /// `[N, 64k, 8, 8]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.run(x);
        let x = [&self.block1, &self.block2, &self.block3]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x));
        bn_relu(&self.bn1, x)
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(flatten(self.avgpool.run(x)))
    }

    /// WRN-16-4 (2.7 M parameters at 10 classes).
    pub fn wrn16_4(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, 16, 4, device)
    }

    /// WRN-16-8 (11.0 M parameters).
    pub fn wrn16_8(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, 16, 8, device)
    }

    /// WRN-28-10 (36.5 M parameters).
    pub fn wrn28_10(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, 28, 10, device)
    }

    /// WRN-40-4 (8.9 M parameters).
    pub fn wrn40_4(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, 40, 4, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type Build = fn(&ModelSpec, &Device) -> Result<WideResNet, ModelError>;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("wrn", input, classes)
    }

    /// `(learnable, num_params)`: PyTorch's `parameters()` count, and Burn's, which adds batch
    /// norm's running means and variances.
    fn counts(build: Build, input: [usize; 3], classes: usize) -> (usize, usize) {
        let net = build(&spec(input, classes), &Device::flex()).unwrap();
        (crate::learnable_params(&net), net.num_params())
    }

    #[test]
    fn parameter_counts_follow_table_1() {
        // Per layer, 10 classes: stem 9·16·C_in; each block c → c' has BN 2c, 3x3 9cc', BN 2c',
        // 3x3 9c'², and cc' for a 1x1 projection when c ≠ c'; final BN 2·64k, classifier
        // 64k·10 + 10. Second figure: plus 2 running statistics per BN channel. The paper's
        // Table 2 rounds them to 2.7 M, 11.0 M, 36.5 M and 8.9 M.
        let n = |b: Build| counts(b, [3, 32, 32], 10);
        assert_eq!(n(WideResNet::wrn16_4), (2_748_890, 2_748_890 + 3_616));
        assert_eq!(n(WideResNet::wrn16_8), (10_961_370, 10_961_370 + 7_200));
        assert_eq!(n(WideResNet::wrn28_10), (36_479_194, 36_479_194 + 17_952));
        assert_eq!(n(WideResNet::wrn40_4), (8_949_210, 8_949_210 + 10_784));
        // A grayscale stem has 2·16·9 fewer weights.
        assert_eq!(counts(WideResNet::wrn16_4, [1, 28, 28], 10).0, 2_748_602);
    }

    #[test]
    fn logits_and_feature_shapes() {
        let d = Device::flex();
        let net = WideResNet::new(&spec([1, 28, 28], 10), 10, 2, &d)
            .unwrap()
            .valid();
        let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &d);
        assert_eq!(net.forward_features(x.clone()).dims(), [2, 128, 7, 7]);
        assert_eq!(net.forward(x).dims(), [2, 10]);
    }

    #[test]
    fn bad_depths_and_inputs_are_errors() {
        let d = Device::flex();
        for (depth, k, input) in [
            (15, 4, [3, 32, 32]),
            (4, 4, [3, 32, 32]),
            (16, 0, [3, 32, 32]),
            (16, 4, [3, 2, 2]),
            (16, 4, [0, 32, 32]),
        ] {
            assert!(matches!(
                WideResNet::new(&spec(input, 10), depth, k, &d),
                Err(ModelError::BadInput { .. })
            ));
        }
    }
}
