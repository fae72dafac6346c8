//! Xception (Chollet, "Xception: deep learning with depthwise separable convolutions",
//! CVPR 2017), 3x299x299.
//!
//! The entry flow (two plain convolutions, then three residual blocks that each halve the
//! grid), the middle flow (eight residual blocks of three separable convolutions at 728
//! channels) and the exit flow (a last reducing block to 1024 channels, separable
//! convolutions to 1536 and 2048, global average pooling, classifier) of the paper's Figure 5,
//! as in Keras' `Xception()`: 22,855,952 parameters at 1000 classes, the paper's Table 3
//! figure. A separable convolution is a depthwise 3x3 (groups = channels, no bias) followed
//! by a pointwise 1x1 (no bias); every convolution is followed by batch norm (Keras' eps
//! 0.001), and there is no ReLU between the depthwise and the pointwise step.
//!
//! Names and `Sequential` indices are those of timm's `legacy_xception` (weights ported from
//! Keras): `conv1`, `bn1`, `block1.skip`, `block1.skipbn`, `block1.rep.0.conv1`
//! (depthwise), `block1.rep.0.pointwise`, `block1.rep.1` (batch norm), …, `conv3`, `bn4`,
//! `fc`. Each block's `rep` keeps timm's parameter-free ReLU and pooling entries, so the
//! indices match. The strided max pooling uses Keras' "same" padding, which on an even grid
//! pads only at the end (timm pads one on each side: the same shapes, windows shifted by one
//! at the 74x74 stage of a 299 input); the residual branch takes the block's input before its
//! first ReLU, as in Keras. Initialisation is Burn's default (PyTorch's), where Keras uses
//! Glorot-uniform.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use super::inception::{check_sides, global_pool};
use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, add, bn_relu, conv_bn, conv_bn_relu, flatten, relu};

/// Batch norm with Keras' eps 0.001.
fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(1e-3).init(device)
}

/// A bias-free square convolution.
fn plain_conv(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

/// A depthwise separable convolution: 3x3 depthwise (one filter per channel), then 1x1
/// pointwise; no biases.
#[derive(Module, Debug)]
pub struct SeparableConv2d {
    /// 3x3 depthwise, padding 1, groups = input channels.
    pub conv1: Conv2d,
    /// 1x1 pointwise to the output channels.
    pub pointwise: Conv2d,
}

impl SeparableConv2d {
    /// `c_in` → `c_out` channels, grid kept.
    pub fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        let conv1 = Conv2dConfig::new([c_in, c_in], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_groups(c_in)
            .with_bias(false)
            .init(device);
        Self {
            conv1,
            pointwise: plain_conv(c_in, c_out, 1, 1, 0, device),
        }
    }
}

impl Layer<4> for SeparableConv2d {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        self.pointwise.run(self.conv1.run(x))
    }
}

/// One entry of a block's `rep` sequence (timm's `nn.Sequential`); the variant name is not
/// part of the weight keys.
// A few per model, built once: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum RepLayer {
    /// ReLU (no parameters; keeps timm's indices).
    Relu(Relu),
    /// Separable convolution.
    Sep(SeparableConv2d),
    /// Batch normalisation.
    Bn(BatchNorm),
    /// 3x3/2 max pooling with "same" padding.
    Pool(MaxPool2d),
}

impl Layer<4> for RepLayer {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C', H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            RepLayer::Relu(_) => relu(x),
            RepLayer::Sep(m) => m.run(x),
            RepLayer::Bn(m) => m.run(x),
            RepLayer::Pool(m) => m.run(x),
        }
    }
}

/// An Xception residual block: `reps` x (ReLU → separable conv → BN), then 3x3/2 max pooling
/// when strided, plus the input, through a 1x1 conv + BN when the width or grid changes.
#[derive(Module, Debug)]
pub struct Block {
    /// 1x1 projection of the input (stride 2 when the block reduces), when needed.
    pub skip: Option<Conv2d>,
    /// Batch norm after `skip`.
    pub skipbn: Option<BatchNorm>,
    /// The main path.
    pub rep: Vec<RepLayer>,
}

impl Block {
    /// `reps` separable convolutions from `c_in` to `c_out` channels, widening at the first
    /// (`grow_first`) or the last; `start_with_relu` is false only for the first block, which
    /// follows a ReLU already.
    fn new(
        [c_in, c_out]: [usize; 2],
        reps: usize,
        stride: usize,
        start_with_relu: bool,
        grow_first: bool,
        device: &Device,
    ) -> Self {
        let project = c_in != c_out || stride != 1;
        let mut rep = Vec::new();
        for i in 0..reps {
            let (inc, outc) = match (grow_first, i) {
                (true, 0) => (c_in, c_out),
                (true, _) => (c_out, c_out),
                (false, i) if i + 1 < reps => (c_in, c_in),
                (false, _) => (c_in, c_out),
            };
            if i > 0 || start_with_relu {
                rep.push(RepLayer::Relu(Relu::new()));
            }
            rep.push(RepLayer::Sep(SeparableConv2d::new(inc, outc, device)));
            rep.push(RepLayer::Bn(bn(outc, device)));
        }
        if stride != 1 {
            rep.push(RepLayer::Pool(same_max_pool(stride)));
        }
        Self {
            skip: project.then(|| plain_conv(c_in, c_out, 1, stride, 0, device)),
            skipbn: project.then(|| bn(c_out, device)),
            rep,
        }
    }
}

/// Keras' `MaxPooling2D((3, 3), strides, padding='same')`: output `⌈H / stride⌉`, the odd
/// padding cell at the end.
fn same_max_pool(stride: usize) -> MaxPool2d {
    MaxPool2dConfig::new([3, 3])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Same)
        .init()
}

impl Layer<4> for Block {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, ⌈H / s⌉, ⌈W / s⌉]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.rep.iter().fold(x.clone(), |y, layer| layer.run(y));
        let shortcut = match (&self.skip, &self.skipbn) {
            (Some(conv), Some(bn)) => conv_bn(conv, bn, x),
            _ => x,
        };
        add(y, shortcut)
    }
}

/// Xception with timm's `legacy_xception` names: stem `conv1`/`bn1` (3x3/2, 32) and
/// `conv2`/`bn2` (3x3, 64), `block1`-`block3` (entry flow), `block4`-`block11` (middle flow),
/// `block12` and the separable `conv3`/`bn3` (1536), `conv4`/`bn4` (2048) (exit flow), global
/// average pooling, `fc`.
#[derive(Module, Debug)]
pub struct Xception {
    /// 3x3/2, 32, no padding.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3x3, 64, no padding.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// Entry flow, 64 → 128, /2.
    pub block1: Block,
    /// Entry flow, 128 → 256, /2.
    pub block2: Block,
    /// Entry flow, 256 → 728, /2.
    pub block3: Block,
    /// Middle flow, 728.
    pub block4: Block,
    /// Middle flow, 728.
    pub block5: Block,
    /// Middle flow, 728.
    pub block6: Block,
    /// Middle flow, 728.
    pub block7: Block,
    /// Middle flow, 728.
    pub block8: Block,
    /// Middle flow, 728.
    pub block9: Block,
    /// Middle flow, 728.
    pub block10: Block,
    /// Middle flow, 728.
    pub block11: Block,
    /// Exit flow, 728 → 1024, /2.
    pub block12: Block,
    /// Separable, 1024 → 1536.
    pub conv3: SeparableConv2d,
    /// Batch norm after `conv3`.
    pub bn3: BatchNorm,
    /// Separable, 1536 → 2048.
    pub conv4: SeparableConv2d,
    /// Batch norm after `conv4`.
    pub bn4: BatchNorm,
    /// Global average pooling.
    pub global_pool: AdaptiveAvgPool2d,
    /// 2048 → classes.
    pub fc: Linear,
}

impl Xception {
    /// Xception for `spec`; needs at least 7x7 input (Keras asks for 71x71, which its
    /// pretrained weights need; the architecture itself fits from 7x7).
    // Named like Keras' and timm's constructors, as the registry's presets are.
    #[allow(clippy::self_named_constructors)]
    pub fn xception(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let side = |n| conv_out(n, 3, 2, 0).and_then(|n| conv_out(n, 3, 1, 0));
        check_sides(spec, side, "Xception needs at least 7x7")?;
        let middle = || Block::new([728, 728], 3, 1, true, true, device);
        Ok(Self {
            conv1: plain_conv(spec.in_channels, 32, 3, 2, 0, device),
            bn1: bn(32, device),
            conv2: plain_conv(32, 64, 3, 1, 0, device),
            bn2: bn(64, device),
            block1: Block::new([64, 128], 2, 2, false, true, device),
            block2: Block::new([128, 256], 2, 2, true, true, device),
            block3: Block::new([256, 728], 2, 2, true, true, device),
            block4: middle(),
            block5: middle(),
            block6: middle(),
            block7: middle(),
            block8: middle(),
            block9: middle(),
            block10: middle(),
            block11: middle(),
            block12: Block::new([728, 1024], 2, 2, true, false, device),
            conv3: SeparableConv2d::new(1024, 1536, device),
            bn3: bn(1536, device),
            conv4: SeparableConv2d::new(1536, 2048, device),
            bn4: bn(2048, device),
            global_pool: global_pool(),
            fc: LinearConfig::new(2048, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 299, 299]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(flatten(self.global_pool.run(x)))
    }

    /// The convolutional base: `[N, C, 299, 299]` → `[N, 2048, 10, 10]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv_bn_relu(&self.conv1, &self.bn1, x);
        let x = conv_bn_relu(&self.conv2, &self.bn2, x);
        let blocks = [
            &self.block1,
            &self.block2,
            &self.block3,
            &self.block4,
            &self.block5,
            &self.block6,
            &self.block7,
            &self.block8,
            &self.block9,
            &self.block10,
            &self.block11,
            &self.block12,
        ];
        let x = blocks.iter().fold(x, |x, b| b.run(x));
        let x = bn_relu(&self.bn3, self.conv3.run(x));
        bn_relu(&self.bn4, self.conv4.run(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::inception::tests::{assert_keys, logits_dims, spec, torch_count};

    #[test]
    fn xception_matches_keras_and_timm() {
        let d = Device::flex();
        // Keras `Xception()` at 1000 classes: 22,855,952 trainable parameters (the paper's
        // Table 3), as timm's `legacy_xception`, in 156 tensors. Burn's `num_params()` also
        // counts batch norm's running mean and variance (2 x 27,264; Keras lists them as
        // non-trainable: 22,910,480 in all).
        let m = Xception::xception(&spec("xception", 3, 299, 1000), &d).unwrap();
        assert_eq!(torch_count(&m), (22_855_952, 156));
        assert_eq!(m.num_params(), 22_855_952 + 2 * 27_264);
        assert_keys(
            &m,
            &[
                "conv1.weight",
                "bn2.gamma",
                "block1.skip.weight",
                "block1.skipbn.beta",
                "block1.rep.0.conv1.weight",
                "block1.rep.0.pointwise.weight",
                "block1.rep.1.gamma",
                "block1.rep.3.conv1.weight",
                "block2.rep.1.conv1.weight",
                "block4.rep.7.pointwise.weight",
                "block4.rep.8.beta",
                "block12.rep.4.pointwise.weight",
                "conv3.conv1.weight",
                "bn4.beta",
                "fc.weight",
            ],
        );
        let m = m.valid();
        assert_eq!(logits_dims(|x| m.forward(x), 3, 299), [1, 1000]);
    }

    #[test]
    fn xception_takes_small_grey_input_and_refuses_tiny() {
        let d = Device::flex();
        // 7x7: 3x3 after the stem, then "same" pooling halves it to 2, 1, 1, 1.
        let s = spec("xception", 1, 7, 10);
        let m = Xception::xception(&s, &d).unwrap().valid();
        assert_eq!(logits_dims(|x| m.forward(x), 1, 7), [1, 10]);
        // An even grid at a strided block (74x74 at block2 for 299) pads only at the end.
        let s = spec("xception", 1, 32, 10);
        let m = Xception::xception(&s, &d).unwrap().valid();
        assert_eq!(logits_dims(|x| m.forward(x), 1, 32), [1, 10]);
        assert!(matches!(
            Xception::xception(&spec("xception", 1, 6, 10), &d),
            Err(ModelError::BadInput { .. })
        ));
    }
}
