//! MobileNets: depthwise-separable networks for mobile vision.
//!
//! - MobileNet v1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
//!   Vision Applications", 2017): a 3x3/2 stem and 13 depthwise-separable blocks (3x3 depthwise
//!   conv → BN → ReLU6 → 1x1 pointwise conv → BN → ReLU6), global average pooling, dropout and a
//!   classifier, at width multiplier 1.0 (paper Table 1). torchvision has no v1, so the details
//!   the paper leaves open follow Keras' `keras.applications.MobileNet`: ReLU6 (as in the
//!   authors' TF-slim release), stride-2 convolutions padded by one pixel at the bottom and right
//!   only (TensorFlow's `SAME` on even sizes), batch norm with eps 1e-3 and Keras momentum 0.99
//!   (0.01 in PyTorch's convention), dropout 1e-3 before the classifier.
//! - MobileNet v2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
//!   CVPR 2018): a 3x3/2 stem, 17 inverted-residual blocks (1x1 expansion → BN → ReLU6 → 3x3
//!   depthwise → BN → ReLU6 → linear 1x1 projection → BN, with a residual connection where the
//!   shape is kept), a 1x1 conv to 1280 channels, global average pooling, dropout 0.2 and a
//!   linear classifier. Layout, `state_dict` keys (`features.1.conv.0.0`, `classifier.1`),
//!   batch norm settings and initialisation follow torchvision's `mobilenet_v2`.
//!
//! Both are initialised like torchvision's `mobilenet_v2`: He-normal convolutions (`fan_out`),
//! unit/zero batch norm, classifier weights N(0, 0.01) and zero bias.

use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::{Device, Tensor, activation};

use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, add, flatten, record};

/// ReLU6 (`min(max(x, 0), 6)`), recorded.
fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    record("ReLU6", 0, 0, activation::relu6(x))
}

/// A bias-free `k`x`k` convolution with `groups` groups and explicit padding, He-normal in
/// PyTorch's `fan_out` mode (`c_out * k * k`, whatever the groups), as torchvision initialises
/// MobileNet v2.
fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
    padding: PaddingConfig2d,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(padding)
        .with_groups(groups)
        .with_bias(false)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: (2.0 / (c_out * k * k) as f64).sqrt(),
        })
        .init(device)
}

/// A classifier with N(0, 0.01) weights and zero bias.
fn classifier(c_in: usize, classes: usize, device: &Device) -> Linear {
    let mut fc = LinearConfig::new(c_in, classes)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    fc.bias = Some(Initializer::Zeros.init([classes], device));
    fc
}

/// Whether a side of `w` pixels survives `strides` stride-2 layers with every one of them getting
/// at least 2 pixels, `next` giving a layer's output side.
fn fits(w: usize, strides: usize, next: impl Fn(usize) -> usize) -> bool {
    (0..strides)
        .try_fold(w, |w, _| (w >= 2).then(|| next(w)))
        .is_some()
}

/// MobileNet v1's depthwise-separable block: 3x3 depthwise conv → BN → ReLU6 → 1x1 pointwise
/// conv → BN → ReLU6.
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    /// 3x3 depthwise convolution (one filter per channel), carrying the stride.
    pub conv_dw: Conv2d,
    /// Batch norm after the depthwise convolution.
    pub bn_dw: BatchNorm,
    /// 1x1 pointwise convolution.
    pub conv_pw: Conv2d,
    /// Batch norm after the pointwise convolution.
    pub bn_pw: BatchNorm,
}

/// Keras' batch norm defaults (eps 1e-3, momentum 0.99 = 0.01 in PyTorch's convention).
fn keras_bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c)
        .with_epsilon(1e-3)
        .with_momentum(0.01)
        .init(device)
}

/// Keras' padding: "same" (1 all round) at stride 1, one pixel bottom and right at stride 2.
fn keras_padding(stride: usize) -> PaddingConfig2d {
    if stride == 1 {
        PaddingConfig2d::Explicit(1, 1, 1, 1)
    } else {
        PaddingConfig2d::Explicit(0, 0, 1, 1)
    }
}

impl DepthwiseSeparable {
    /// A block from `c_in` to `c_out` channels with the given stride.
    pub fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv_dw: conv(c_in, c_in, 3, stride, c_in, keras_padding(stride), device),
            bn_dw: keras_bn(c_in, device),
            conv_pw: conv(c_in, c_out, 1, 1, 1, PaddingConfig2d::Valid, device),
            bn_pw: keras_bn(c_out, device),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu6(self.bn_dw.run(self.conv_dw.run(x)));
        relu6(self.bn_pw.run(self.conv_pw.run(x)))
    }
}

/// MobileNet v1: stem, 13 depthwise-separable blocks, global average pooling, dropout, classifier.
#[derive(Module, Debug)]
pub struct MobileNetV1 {
    /// 3x3 stride-2 stem convolution to 32 channels.
    pub conv1: Conv2d,
    /// Batch norm after the stem.
    pub bn1: BatchNorm,
    /// The depthwise-separable blocks.
    pub blocks: Vec<DepthwiseSeparable>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout (1e-3, as Keras) before the classifier.
    pub dropout: Dropout,
    /// Classifier (Keras' `conv_preds`, a 1x1 convolution on the pooled features).
    pub classifier: Linear,
}

impl MobileNetV1 {
    /// Output channels and stride of the 13 blocks (paper Table 1).
    pub const BLOCKS: [(usize, usize); 13] = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];

    /// MobileNet v1 at width 1.0. Needs at least 32x32 input (each of its five stride-2 layers
    /// needs 2x2; Keras asks the same).
    #[allow(
        clippy::self_named_constructors,
        reason = "presets are named after their registry entries"
    )]
    pub fn mobilenet_v1(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        // Stride 2, padding (0, 1): floor((w + 1 - 3) / 2) + 1 = w / 2.
        if spec.in_channels == 0 || !spec.input_size.iter().all(|&w| fits(w, 5, |w| w / 2)) {
            return Err(super::too_small(
                spec,
                "MobileNet v1 needs at least 32x32 (each of its five stride-2 layers needs 2x2)",
            ));
        }
        let mut c = 32;
        let blocks = Self::BLOCKS
            .iter()
            .map(|&(c_out, stride)| {
                let b = DepthwiseSeparable::new(c, c_out, stride, device);
                c = c_out;
                b
            })
            .collect();
        Ok(Self {
            conv1: conv(spec.in_channels, 32, 3, 2, 1, keras_padding(2), device),
            bn1: keras_bn(32, device),
            blocks,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(1e-3).init(),
            classifier: classifier(c, spec.num_classes, device),
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, 224, 224]` → `[N, 1024, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu6(self.bn1.run(self.conv1.run(x)));
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = flatten(self.avgpool.run(x));
        self.classifier.run(self.dropout.run(x))
    }
}

/// Conv → BN → ReLU6 (torchvision's `Conv2dNormActivation`, keys `.0` and `.1`).
pub type ConvBnRelu6 = (Conv2d, BatchNorm);

/// A `k`x`k` [`ConvBnRelu6`] with "same"-style padding `(k - 1) / 2` and PyTorch's batch norm.
fn conv_bn_relu6(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> ConvBnRelu6 {
    let p = (k - 1) / 2;
    (
        conv(
            c_in,
            c_out,
            k,
            stride,
            groups,
            PaddingConfig2d::Explicit(p, p, p, p),
            device,
        ),
        BatchNormConfig::new(c_out).init(device),
    )
}

/// Runs a [`ConvBnRelu6`].
fn run_conv_bn_relu6(layer: &ConvBnRelu6, x: Tensor<4>) -> Tensor<4> {
    relu6(layer.1.run(layer.0.run(x)))
}

/// One entry of an inverted residual's `conv` sequence.
// Modules are built once per model; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum InvertedOp {
    /// Expansion or depthwise conv → BN → ReLU6.
    ConvBnRelu6(ConvBnRelu6),
    /// Linear 1x1 projection.
    Conv(Conv2d),
    /// Batch norm after the projection.
    Bn(BatchNorm),
}

/// MobileNet v2's inverted residual block.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// [expansion conv-BN-ReLU6 (when `t > 1`),] depthwise conv-BN-ReLU6, projection conv, BN.
    pub conv: Vec<InvertedOp>,
    /// Whether the input is added to the output (stride 1 and as many channels out as in).
    pub use_res_connect: bool,
}

impl InvertedResidual {
    /// A block from `c_in` to `c_out` channels with the given stride and expansion factor `t`.
    pub fn new(c_in: usize, c_out: usize, stride: usize, t: usize, device: &Device) -> Self {
        let hidden = c_in * t;
        let mut conv_ops = Vec::new();
        if t != 1 {
            conv_ops.push(InvertedOp::ConvBnRelu6(conv_bn_relu6(
                c_in, hidden, 1, 1, 1, device,
            )));
        }
        conv_ops.extend([
            InvertedOp::ConvBnRelu6(conv_bn_relu6(hidden, hidden, 3, stride, hidden, device)),
            InvertedOp::Conv(conv(hidden, c_out, 1, 1, 1, PaddingConfig2d::Valid, device)),
            InvertedOp::Bn(BatchNormConfig::new(c_out).init(device)),
        ]);
        Self {
            conv: conv_ops,
            use_res_connect: stride == 1 && c_in == c_out,
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv.iter().fold(x.clone(), |y, op| match op {
            InvertedOp::ConvBnRelu6(l) => run_conv_bn_relu6(l, y),
            InvertedOp::Conv(c) => c.run(y),
            InvertedOp::Bn(b) => b.run(y),
        });
        if self.use_res_connect { add(x, y) } else { y }
    }
}

/// One entry of MobileNet v2's `features`.
// Modules are built once per model; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum V2Layer {
    /// The stem or the final 1x1 conv → BN → ReLU6.
    ConvBnRelu6(ConvBnRelu6),
    /// An inverted residual block.
    Block(InvertedResidual),
}

/// MobileNet v2: `features` (stem, 17 inverted residuals, 1x1 conv to 1280), global average
/// pooling, `classifier` (dropout 0.2, linear).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// Stem, inverted residual blocks and final 1x1 conv, indexed as in torchvision.
    pub features: Vec<V2Layer>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout (0.2) and the linear classifier, keys `classifier.1`.
    pub classifier: (Dropout, Linear),
}

impl MobileNetV2 {
    /// Expansion `t`, output channels `c`, repeats `n` and first stride `s` of each block group
    /// (paper Table 2).
    pub const SETTINGS: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];

    /// MobileNet v2 at width 1.0. Needs at least 17x17 input (every stride-2 layer must get at
    /// least 2x2).
    #[allow(
        clippy::self_named_constructors,
        reason = "presets are named after their registry entries"
    )]
    pub fn mobilenet_v2(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        // Five 3x3 stride-2 convolutions with padding 1: ceil(w / 2).
        if spec.in_channels == 0
            || !spec
                .input_size
                .iter()
                .all(|&w| fits(w, 5, |w| w.div_ceil(2)))
        {
            return Err(super::too_small(
                spec,
                "MobileNet v2 needs at least 17x17 (each of its five stride-2 layers needs 2x2)",
            ));
        }
        let mut features = vec![V2Layer::ConvBnRelu6(conv_bn_relu6(
            spec.in_channels,
            32,
            3,
            2,
            1,
            device,
        ))];
        let mut c = 32;
        for (t, c_out, n, s) in Self::SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                features.push(V2Layer::Block(InvertedResidual::new(
                    c, c_out, stride, t, device,
                )));
                c = c_out;
            }
        }
        features.push(V2Layer::ConvBnRelu6(conv_bn_relu6(
            c, 1280, 1, 1, 1, device,
        )));
        Ok(Self {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            classifier: (
                DropoutConfig::new(0.2).init(),
                classifier(1280, spec.num_classes, device),
            ),
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base (torchvision's `features`): `[N, C, 224, 224]` → `[N, 1280, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features.iter().fold(x, |x, layer| match layer {
            V2Layer::ConvBnRelu6(l) => run_conv_bn_relu6(l, x),
            V2Layer::Block(b) => b.forward(x),
        })
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = flatten(self.avgpool.run(x));
        self.classifier.1.run(self.classifier.0.run(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::ModuleSnapshot;
    use burn::tensor::Distribution;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("mobilenet", input, classes)
    }

    fn random(input: [usize; 3], d: &Device) -> Tensor<4> {
        let [c, h, w] = input;
        Tensor::<4>::random([1, c, h, w], Distribution::Default, d)
    }

    fn v1_logits(input: [usize; 3], classes: usize) -> Vec<usize> {
        let d = Device::flex();
        let net = MobileNetV1::mobilenet_v1(&spec(input, classes), &d).unwrap();
        net.valid().forward(random(input, &d)).dims().to_vec()
    }

    fn v2_logits(input: [usize; 3], classes: usize) -> Vec<usize> {
        let d = Device::flex();
        let net = MobileNetV2::mobilenet_v2(&spec(input, classes), &d).unwrap();
        net.valid().forward(random(input, &d)).dims().to_vec()
    }

    /// `(learnable, num_params)`: what PyTorch's `parameters()` counts, and what Burn's
    /// `num_params` counts, which adds batch norm's running means and variances (buffers in
    /// PyTorch).
    fn counts(net: &impl Module) -> (usize, usize) {
        (crate::learnable_params(net), net.num_params())
    }

    #[test]
    fn mobilenet_v1_parameter_count_matches_keras() {
        // keras.applications.MobileNet(alpha=1.0, input_shape=(224, 224, 3)).summary():
        // "Trainable params: 4,231,976"; its "Total params: 4,253,864" adds the 21,888 batch-norm
        // moving means and variances, as Burn's `num_params` does. By layer: stem 864 + 64,
        // blocks Σ (9 c_in + 2 c_in + c_in c_out + 2 c_out), classifier 1,025,000.
        let net = MobileNetV1::mobilenet_v1(&spec([3, 224, 224], 1000), &Device::flex()).unwrap();
        assert_eq!(counts(&net), (4_231_976, 4_253_864));
    }

    #[test]
    fn mobilenet_v2_parameter_count_matches_torchvision() {
        // torchvision 0.29 at 1000 classes: sum(p.numel() for p in mobilenet_v2().parameters()),
        // then plus the state_dict's running_mean/running_var elements (2 per BN channel).
        let net = MobileNetV2::mobilenet_v2(&spec([3, 224, 224], 1000), &Device::flex()).unwrap();
        assert_eq!(counts(&net), (3_504_872, 3_504_872 + 34_112));
    }

    #[test]
    fn mobilenet_v2_weight_keys_follow_torchvision() {
        let net = MobileNetV2::mobilenet_v2(&spec([3, 224, 224], 1000), &Device::flex()).unwrap();
        let keys: Vec<String> = net
            .collect(None, None, true)
            .into_iter()
            .map(|t| t.name.clone())
            .collect();
        for k in [
            "features.0.0.weight",
            "features.0.1.gamma",
            "features.1.conv.0.0.weight",
            "features.1.conv.1.weight",
            "features.1.conv.2.running_var",
            "features.2.conv.1.0.weight",
            "features.2.conv.3.beta",
            "features.17.conv.2.weight",
            "features.18.0.weight",
            "classifier.1.weight",
            "classifier.1.bias",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing");
        }
        assert!(!keys.iter().any(|x| x.starts_with("features.19")));
    }

    #[test]
    fn presets_give_logits() {
        assert_eq!(v1_logits([3, 224, 224], 1000), [1, 1000]);
        assert_eq!(v2_logits([3, 224, 224], 1000), [1, 1000]);
    }

    #[test]
    fn small_grayscale_inputs_work() {
        assert_eq!(v1_logits([1, 32, 32], 10), [1, 10]);
        assert_eq!(v2_logits([1, 32, 32], 10), [1, 10]);
        assert_eq!(v2_logits([1, 17, 17], 10), [1, 10]);
    }

    #[test]
    fn too_small_inputs_are_errors() {
        let d = Device::flex();
        for input in [[3, 31, 31], [3, 224, 16], [0, 224, 224]] {
            assert!(matches!(
                MobileNetV1::mobilenet_v1(&spec(input, 10), &d),
                Err(ModelError::BadInput { .. })
            ));
        }
        for input in [[3, 16, 16], [3, 224, 8], [0, 224, 224]] {
            assert!(matches!(
                MobileNetV2::mobilenet_v2(&spec(input, 10), &d),
                Err(ModelError::BadInput { .. })
            ));
        }
    }
}
