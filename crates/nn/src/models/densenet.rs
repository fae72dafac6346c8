//! DenseNet (Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
//! CVPR 2017).
//!
//! DenseNet-BC as in the paper's Table 1 and torchvision's `densenet121`: a 7x7/2 stem with
//! 3x3/2 max pooling, four dense blocks whose layers (BN → ReLU → 1x1 conv to `bn_size * k` →
//! BN → ReLU → 3x3 conv to `k`) each see the concatenation of all earlier feature maps, and
//! transitions (BN → ReLU → 1x1 conv halving the channels → 2x2 average pooling) between them.
//! Module names and nesting follow torchvision's `state_dict` keys
//! (`features.denseblock1.denselayer1.norm1`, `features.transition1.conv`, `classifier`).

use burn::module::{
    Content, Devices, Initializer, Module, ModuleDisplay, ModuleMapper, ModuleVisitor,
};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, concat, flatten, relu};

/// torchvision's He-normal, bias-free convolution for this family.
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    crate::layers::conv_he(c_in, c_out, k, stride, false, device)
}

/// One dense layer: BN → ReLU → 1x1 conv → BN → ReLU → 3x3 conv, producing `growth_rate` maps.
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// Batch norm over the concatenated input.
    pub norm1: BatchNorm,
    /// 1x1 bottleneck convolution to `bn_size * growth_rate` channels.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub norm2: BatchNorm,
    /// 3x3 convolution to `growth_rate` channels.
    pub conv2: Conv2d,
}

impl DenseLayer {
    /// A layer taking `c_in` channels.
    pub fn new(c_in: usize, growth_rate: usize, bn_size: usize, device: &Device) -> Self {
        let mid = bn_size * growth_rate;
        Self {
            norm1: BatchNormConfig::new(c_in).init(device),
            conv1: conv(c_in, mid, 1, 1, device),
            norm2: BatchNormConfig::new(mid).init(device),
            conv2: conv(mid, growth_rate, 3, 1, device),
        }
    }

    /// New feature maps from all earlier ones.
    ///
    /// # Shapes
    /// `[N, c_i, H, W]` for each earlier output (channels summing to `c_in`) →
    /// `[N, growth_rate, H, W]`
    pub fn forward(&self, features: Vec<Tensor<4>>) -> Tensor<4> {
        let x = if features.len() == 1 {
            features.into_iter().next().expect("one feature map")
        } else {
            concat(features)
        };
        let x = self.conv1.run(relu(self.norm1.run(x)));
        self.conv2.run(relu(self.norm2.run(x)))
    }
}

/// A dense block: its layers, named `denselayer1`, `denselayer2`, … in the weight keys as in
/// torchvision (a hand-written [`Module`] impl, since a `Vec` would name them `0`, `1`, …).
#[derive(Debug, Clone)]
pub struct DenseBlock {
    /// The dense layers, in order.
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    /// `num_layers` layers on `c_in` input channels; the block outputs
    /// `c_in + num_layers * growth_rate` channels.
    pub fn new(
        num_layers: usize,
        c_in: usize,
        growth_rate: usize,
        bn_size: usize,
        device: &Device,
    ) -> Self {
        let layers = (0..num_layers)
            .map(|i| DenseLayer::new(c_in + i * growth_rate, growth_rate, bn_size, device))
            .collect();
        Self { layers }
    }

    /// The input concatenated with every layer's output.
    ///
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_in + num_layers * growth_rate, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut features = vec![x];
        for layer in &self.layers {
            let y = layer.forward(features.clone());
            features.push(y);
        }
        concat(features)
    }

    fn child_name(i: usize) -> String {
        format!("denselayer{}", i + 1)
    }
}

impl Module for DenseBlock {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.layers.collect_devices(devices)
    }

    fn fork(self, device: &Device) -> Self {
        Self {
            layers: self.layers.fork(device),
        }
    }

    fn to_device(self, device: &Device) -> Self {
        Self {
            layers: self.layers.to_device(device),
        }
    }

    fn train(self) -> Self {
        Self {
            layers: self.layers.train(),
        }
    }

    fn valid(&self) -> Self {
        Self {
            layers: self.layers.valid(),
        }
    }

    fn materialize(self) -> Self {
        Self {
            layers: self.layers.materialize(),
        }
    }

    fn num_params(&self) -> usize {
        self.layers.num_params()
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        for (i, layer) in self.layers.iter().enumerate() {
            let name = Self::child_name(i);
            visitor.enter_module(&name, "Struct:DenseBlock");
            layer.visit(visitor);
            visitor.exit_module(&name, "Struct:DenseBlock");
        }
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| {
                let name = Self::child_name(i);
                mapper.enter_module(&name, "Struct:DenseBlock");
                let layer = layer.map(mapper);
                mapper.exit_module(&name, "Struct:DenseBlock");
                layer
            })
            .collect();
        Self { layers }
    }
}

impl burn::module::ModuleDisplayDefault for DenseBlock {
    fn content(&self, content: Content) -> Option<Content> {
        self.layers
            .iter()
            .enumerate()
            .fold(content, |acc, (i, layer)| {
                acc.add(&Self::child_name(i), layer)
            })
            .set_top_level_type("DenseBlock")
            .optional()
    }

    fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

impl ModuleDisplay for DenseBlock {}

impl std::fmt::Display for DenseBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", ModuleDisplay::format(self, Default::default()))
    }
}

/// A transition between dense blocks: BN → ReLU → 1x1 conv → 2x2 average pooling.
#[derive(Module, Debug)]
pub struct Transition {
    /// Batch norm over the block output.
    pub norm: BatchNorm,
    /// 1x1 convolution (compression: half the channels in DenseNet-BC).
    pub conv: Conv2d,
    /// 2x2 stride-2 average pooling.
    pub pool: AvgPool2d,
}

impl Transition {
    /// A transition from `c_in` to `c_out` channels.
    pub fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            norm: BatchNormConfig::new(c_in).init(device),
            conv: conv(c_in, c_out, 1, 1, device),
            pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H / 2, W / 2]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.run(self.conv.run(relu(self.norm.run(x))))
    }
}

/// The feature extractor, torchvision's `features` (stem, four dense blocks, three transitions,
/// final batch norm).
#[derive(Module, Debug)]
pub struct DenseFeatures {
    /// 7x7 stride-2 stem convolution.
    pub conv0: Conv2d,
    /// Batch norm after the stem.
    pub norm0: BatchNorm,
    /// 3x3 stride-2 max pooling.
    pub pool0: MaxPool2d,
    /// First dense block.
    pub denseblock1: DenseBlock,
    /// Transition after block 1.
    pub transition1: Transition,
    /// Second dense block.
    pub denseblock2: DenseBlock,
    /// Transition after block 2.
    pub transition2: Transition,
    /// Third dense block.
    pub denseblock3: DenseBlock,
    /// Transition after block 3.
    pub transition3: Transition,
    /// Fourth dense block.
    pub denseblock4: DenseBlock,
    /// Final batch norm.
    pub norm5: BatchNorm,
}

/// DenseNet-BC: features, ReLU, global average pooling, linear classifier.
#[derive(Module, Debug)]
pub struct DenseNet {
    /// Convolutional features.
    pub features: DenseFeatures,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub classifier: Linear,
}

impl DenseNet {
    /// A DenseNet-BC with growth rate `growth_rate`, `blocks[i]` layers per dense block, a stem
    /// of `init_features` channels, bottleneck width `bn_size * growth_rate` and compression 0.5.
    /// Needs at least 29x29 input (every stride-2 layer must get at least 2x2).
    pub fn new(
        spec: &ModelSpec,
        growth_rate: usize,
        blocks: [usize; 4],
        init_features: usize,
        bn_size: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let chain = [(7, 2, 3), (3, 2, 1), (2, 2, 0), (2, 2, 0), (2, 2, 0)];
        let fits = |w: usize| {
            chain
                .iter()
                .try_fold(
                    w,
                    |w, &(k, s, p)| if w < s { None } else { conv_out(w, k, s, p) },
                )
                .is_some()
        };
        if spec.in_channels == 0 || !spec.input_size.into_iter().all(fits) {
            return Err(super::too_small(
                spec,
                "DenseNet needs at least 29x29 (each of its five stride-2 layers needs 2x2)",
            ));
        }
        let mut c = init_features;
        let block = |n: usize, c: &mut usize| {
            let b = DenseBlock::new(n, *c, growth_rate, bn_size, device);
            *c += n * growth_rate;
            b
        };
        let transition = |c: &mut usize| {
            let t = Transition::new(*c, *c / 2, device);
            *c /= 2;
            t
        };
        let denseblock1 = block(blocks[0], &mut c);
        let transition1 = transition(&mut c);
        let denseblock2 = block(blocks[1], &mut c);
        let transition2 = transition(&mut c);
        let denseblock3 = block(blocks[2], &mut c);
        let transition3 = transition(&mut c);
        let denseblock4 = block(blocks[3], &mut c);
        let features = DenseFeatures {
            conv0: conv(spec.in_channels, init_features, 7, 2, device),
            norm0: BatchNormConfig::new(init_features).init(device),
            pool0: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            denseblock1,
            transition1,
            denseblock2,
            transition2,
            denseblock3,
            transition3,
            denseblock4,
            norm5: BatchNormConfig::new(c).init(device),
        };
        // torchvision: default weight init, zero bias.
        let mut classifier = LinearConfig::new(c, spec.num_classes).init(device);
        classifier.bias = Some(Initializer::Zeros.init([spec.num_classes], device));
        Ok(Self {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            classifier,
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base with its final norm and ReLU: `[N, C, 224, 224]` → `[N, 1024, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let f = &self.features;
        let x = f.pool0.run(relu(f.norm0.run(f.conv0.run(x))));
        let x = f.transition1.forward(f.denseblock1.forward(x));
        let x = f.transition2.forward(f.denseblock2.forward(x));
        let x = f.transition3.forward(f.denseblock3.forward(x));
        relu(f.norm5.run(f.denseblock4.forward(x)))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.classifier.run(flatten(self.avgpool.run(x)))
    }

    /// DenseNet-121: growth rate 32, blocks `[6, 12, 24, 16]`, 64 stem channels, `bn_size` 4.
    pub fn densenet121(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, 32, [6, 12, 24, 16], 64, 4, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::ModuleSnapshot;
    use burn::tensor::Distribution;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("densenet121", input, classes)
    }

    fn logits_shape(input: [usize; 3], classes: usize) -> Vec<usize> {
        let d = Device::flex();
        let net = DenseNet::densenet121(&spec(input, classes), &d)
            .unwrap()
            .valid();
        let [c, h, w] = input;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &d);
        net.forward(x).dims().to_vec()
    }

    /// `(learnable, num_params)`: what PyTorch's `parameters()` counts, and what Burn's
    /// `num_params` counts, which adds batch norm's running means and variances (buffers in
    /// PyTorch).
    fn counts(net: &impl Module) -> (usize, usize) {
        (crate::learnable_params(net), net.num_params())
    }

    #[test]
    fn densenet121_parameter_count_matches_torchvision() {
        // torchvision 0.29 at 1000 classes: sum(p.numel() for p in densenet121().parameters()),
        // then plus the state_dict's running_mean/running_var elements (2 per BN channel).
        let net = DenseNet::densenet121(&spec([3, 224, 224], 1000), &Device::flex()).unwrap();
        assert_eq!(counts(&net), (7_978_856, 7_978_856 + 83_648));
    }

    #[test]
    fn weight_keys_follow_torchvision() {
        let net = DenseNet::densenet121(&spec([3, 224, 224], 1000), &Device::flex()).unwrap();
        let keys: Vec<String> = net
            .collect(None, None, true)
            .into_iter()
            .map(|t| t.name.clone())
            .collect();
        for k in [
            "features.conv0.weight",
            "features.norm0.gamma",
            "features.denseblock1.denselayer1.norm1.running_mean",
            "features.denseblock1.denselayer6.conv2.weight",
            "features.denseblock3.denselayer24.conv1.weight",
            "features.transition3.conv.weight",
            "features.norm5.beta",
            "classifier.weight",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing");
        }
        assert!(!keys.iter().any(|x| x.contains("denselayer0")));
        assert!(!keys.iter().any(|x| x.contains("denseblock1.denselayer7")));
    }

    #[test]
    fn densenet121_gives_logits() {
        assert_eq!(logits_shape([3, 224, 224], 1000), [1, 1000]);
    }

    #[test]
    fn small_grayscale_input_works() {
        assert_eq!(logits_shape([1, 32, 32], 10), [1, 10]);
    }

    #[test]
    fn too_small_input_is_an_error() {
        let d = Device::flex();
        for input in [[3, 28, 28], [3, 224, 20], [0, 224, 224]] {
            assert!(matches!(
                DenseNet::densenet121(&spec(input, 10), &d),
                Err(ModelError::BadInput { .. })
            ));
        }
        assert!(DenseNet::densenet121(&spec([3, 29, 29], 10), &d).is_ok());
    }
}
