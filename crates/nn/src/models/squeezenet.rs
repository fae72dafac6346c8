//! SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, "SqueezeNet: AlexNet-level
//! accuracy with 50x fewer parameters and <0.5MB model size", 2016).
//!
//! Fire modules (a 1x1 "squeeze" convolution feeding parallel 1x1 and 3x3 "expand" convolutions
//! whose outputs are concatenated) between max-pooling layers, and a convolutional classifier
//! (dropout → 1x1 conv to the classes → ReLU → global average pooling) instead of dense layers.
//! Version 1.0 is the paper's Table 1; version 1.1 (from the authors' repository) starts with 64
//! 3x3 filters and pools earlier, for 2.4x less computation at the same accuracy. The layout,
//! `state_dict` keys (`features.3.squeeze`, `classifier.1`) and initialisation follow
//! torchvision's `squeezenet1_0` / `squeezenet1_1`.

use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, concat, conv_relu, flatten, relu};

/// A convolution with weights drawn by `init` and a zero bias (torchvision's SqueezeNet
/// initialisation), padded by `k / 2` at stride 1 and not at all at stride 2 (the stem).
fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    init: Initializer,
    device: &Device,
) -> Conv2d {
    let p = if stride == 1 { k / 2 } else { 0 };
    let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_initializer(init)
        .init(device);
    conv.bias = Some(Initializer::Zeros.init([c_out], device));
    conv
}

/// PyTorch's `kaiming_uniform_` with its defaults: bound `sqrt(6 / fan_in)`.
fn he_uniform() -> Initializer {
    Initializer::KaimingUniform {
        gain: 2f64.sqrt(),
        fan_out_only: false,
    }
}

/// 3x3 stride-2 max pooling with ceiling rounding, as in the Caffe original.
fn max_pool() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_ceil_mode(true)
        .init()
}

/// The Fire module: squeeze 1x1 → ReLU → (expand 1x1 → ReLU ‖ expand 3x3 → ReLU), concatenated.
#[derive(Module, Debug)]
pub struct Fire {
    /// 1x1 squeeze convolution.
    pub squeeze: Conv2d,
    /// 1x1 expand convolution.
    pub expand1x1: Conv2d,
    /// 3x3 expand convolution (padding 1).
    pub expand3x3: Conv2d,
}

impl Fire {
    /// A Fire module from `c_in` channels through `squeeze` to `e1 + e3` channels.
    pub fn new(c_in: usize, squeeze: usize, e1: usize, e3: usize, device: &Device) -> Self {
        Self {
            squeeze: conv(c_in, squeeze, 1, 1, he_uniform(), device),
            expand1x1: conv(squeeze, e1, 1, 1, he_uniform(), device),
            expand3x3: conv(squeeze, e3, 3, 1, he_uniform(), device),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, e1 + e3, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = conv_relu(&self.squeeze, x);
        concat(vec![
            conv_relu(&self.expand1x1, s.clone()),
            conv_relu(&self.expand3x3, s),
        ])
    }
}

/// One entry of torchvision's `features` / `classifier` sequences (parameter-free entries keep
/// the indices of the parameterised ones aligned with torchvision's keys).
// Modules are built once per model; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SqueezeLayer {
    /// A convolution.
    Conv(Conv2d),
    /// ReLU.
    Relu(Relu),
    /// Max pooling.
    MaxPool(MaxPool2d),
    /// A Fire module.
    Fire(Fire),
    /// Dropout.
    Dropout(Dropout),
    /// Global average pooling.
    AvgPool(AdaptiveAvgPool2d),
}

impl SqueezeLayer {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C', H', W']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            SqueezeLayer::Conv(c) => c.run(x),
            SqueezeLayer::Relu(_) => relu(x),
            SqueezeLayer::MaxPool(p) => p.run(x),
            SqueezeLayer::Fire(f) => f.forward(x),
            SqueezeLayer::Dropout(d) => d.run(x),
            SqueezeLayer::AvgPool(p) => p.run(x),
        }
    }
}

/// The two published SqueezeNet versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqueezeVersion {
    /// The paper's network: 96 7x7/2 stem filters, pooling after Fire 4 and Fire 8.
    V1_0,
    /// 64 3x3/2 stem filters, pooling after Fire 3 and Fire 5.
    V1_1,
}

/// SqueezeNet: `features` (stem, Fire modules, max pooling) and a convolutional `classifier`.
#[derive(Module, Debug)]
pub struct SqueezeNet {
    /// Stem, Fire modules and pooling, indexed as in torchvision.
    pub features: Vec<SqueezeLayer>,
    /// Dropout (0.5), 1x1 conv to the classes, ReLU, global average pooling.
    pub classifier: Vec<SqueezeLayer>,
}

impl SqueezeNet {
    /// Builds `version` for `spec`. Needs at least 29x29 (version 1.0) or 25x25 (version 1.1)
    /// input, for the stem and its three 3x3 max-pooling windows to fit.
    pub fn new(
        spec: &ModelSpec,
        version: SqueezeVersion,
        device: &Device,
    ) -> Result<Self, ModelError> {
        use SqueezeLayer::{Fire as F, MaxPool as P};
        let fire = |c, s, e| F(Fire::new(c, s, e, e, device));
        let (stem, k, min) = match version {
            SqueezeVersion::V1_0 => (96, 7, 29),
            SqueezeVersion::V1_1 => (64, 3, 25),
        };
        // Stem `k`x`k` stride 2 without padding, then three 3x3/2 ceil-mode pools.
        let fits = |w: usize| {
            let pool = |w: usize| (w >= 3).then(|| (w - 3).div_ceil(2) + 1);
            (w >= k)
                .then(|| (w - k) / 2 + 1)
                .and_then(pool)
                .and_then(pool)
                .and_then(pool)
                .is_some()
        };
        if spec.in_channels == 0 || !spec.input_size.into_iter().all(fits) {
            return Err(super::too_small(
                spec,
                &format!("this SqueezeNet needs at least {min}x{min}"),
            ));
        }
        let mut features = vec![
            SqueezeLayer::Conv(conv(spec.in_channels, stem, k, 2, he_uniform(), device)),
            SqueezeLayer::Relu(Relu::new()),
            P(max_pool()),
        ];
        features.extend(match version {
            SqueezeVersion::V1_0 => vec![
                fire(96, 16, 64),
                fire(128, 16, 64),
                fire(128, 32, 128),
                P(max_pool()),
                fire(256, 32, 128),
                fire(256, 48, 192),
                fire(384, 48, 192),
                fire(384, 64, 256),
                P(max_pool()),
                fire(512, 64, 256),
            ],
            SqueezeVersion::V1_1 => vec![
                fire(64, 16, 64),
                fire(128, 16, 64),
                P(max_pool()),
                fire(128, 32, 128),
                fire(256, 32, 128),
                P(max_pool()),
                fire(256, 48, 192),
                fire(384, 48, 192),
                fire(384, 64, 256),
                fire(512, 64, 256),
            ],
        });
        let final_conv = conv(
            512,
            spec.num_classes,
            1,
            1,
            Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            },
            device,
        );
        let classifier = vec![
            SqueezeLayer::Dropout(DropoutConfig::new(0.5).init()),
            SqueezeLayer::Conv(final_conv),
            SqueezeLayer::Relu(Relu::new()),
            SqueezeLayer::AvgPool(AdaptiveAvgPool2dConfig::new([1, 1]).init()),
        ];
        Ok(Self {
            features,
            classifier,
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base (torchvision's `features`): `[N, C, 224, 224]` → `[N, 512, 13, 13]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features.iter().fold(x, |x, layer| layer.forward(x))
    }

    /// The convolutional classifier (dropout, 1x1 conv, ReLU, global pooling).
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        flatten(self.classifier.iter().fold(x, |x, layer| layer.forward(x)))
    }

    /// SqueezeNet 1.0 (paper Table 1).
    pub fn squeezenet1_0(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, SqueezeVersion::V1_0, device)
    }

    /// SqueezeNet 1.1.
    pub fn squeezenet1_1(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, SqueezeVersion::V1_1, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::ModuleSnapshot;
    use burn::tensor::Distribution;

    type Build = fn(&ModelSpec, &Device) -> Result<SqueezeNet, ModelError>;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("squeezenet", input, classes)
    }

    fn logits_shape(build: Build, input: [usize; 3], classes: usize) -> Vec<usize> {
        let d = Device::flex();
        let net = build(&spec(input, classes), &d).unwrap().valid();
        let [c, h, w] = input;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &d);
        net.forward(x).dims().to_vec()
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        // torchvision 0.29: sum(p.numel() for p in torchvision.models.squeezenet1_x().parameters());
        // no batch norm, so Burn's num_params counts the same.
        let d = Device::flex();
        let n = |b: Build| b(&spec([3, 224, 224], 1000), &d).unwrap().num_params();
        assert_eq!(n(SqueezeNet::squeezenet1_0), 1_248_424);
        // 1.1 differs only in the stem: 64 3x3 filters (1,792) instead of 96 7x7 (14,208) and a
        // first Fire module on 64 instead of 96 channels (512 fewer squeeze weights).
        assert_eq!(n(SqueezeNet::squeezenet1_1), 1_235_496);
    }

    #[test]
    fn weight_keys_follow_torchvision() {
        let d = Device::flex();
        let keys = |b: Build| -> Vec<String> {
            b(&spec([3, 224, 224], 1000), &d)
                .unwrap()
                .collect(None, None, true)
                .into_iter()
                .map(|t| t.name.clone())
                .collect()
        };
        let k0 = keys(SqueezeNet::squeezenet1_0);
        for k in [
            "features.0.weight",
            "features.3.squeeze.weight",
            "features.7.expand1x1.bias",
            "features.12.expand3x3.weight",
            "classifier.1.weight",
            "classifier.1.bias",
        ] {
            assert!(k0.iter().any(|x| x == k), "{k} missing");
        }
        assert_eq!(k0.len(), 52);
        let k1 = keys(SqueezeNet::squeezenet1_1);
        assert!(k1.iter().any(|x| x == "features.12.expand3x3.weight"));
        assert!(k1.iter().any(|x| x == "features.4.squeeze.weight"));
        assert!(!k1.iter().any(|x| x.starts_with("features.5.")));
    }

    #[test]
    fn presets_give_logits() {
        assert_eq!(
            logits_shape(SqueezeNet::squeezenet1_0, [3, 224, 224], 1000),
            [1, 1000]
        );
        assert_eq!(
            logits_shape(SqueezeNet::squeezenet1_1, [3, 224, 224], 1000),
            [1, 1000]
        );
    }

    #[test]
    fn small_grayscale_inputs_work() {
        assert_eq!(
            logits_shape(SqueezeNet::squeezenet1_0, [1, 32, 32], 10),
            [1, 10]
        );
        assert_eq!(
            logits_shape(SqueezeNet::squeezenet1_0, [1, 29, 29], 10),
            [1, 10]
        );
        assert_eq!(
            logits_shape(SqueezeNet::squeezenet1_1, [1, 25, 25], 10),
            [1, 10]
        );
    }

    #[test]
    fn too_small_inputs_are_errors() {
        let d = Device::flex();
        for (b, input) in [
            (SqueezeNet::squeezenet1_0 as Build, [3, 28, 28]),
            (SqueezeNet::squeezenet1_1, [3, 224, 24]),
            (SqueezeNet::squeezenet1_1, [0, 224, 224]),
        ] {
            assert!(matches!(
                b(&spec(input, 10), &d),
                Err(ModelError::BadInput { .. })
            ));
        }
    }
}
