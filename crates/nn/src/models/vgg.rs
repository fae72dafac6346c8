//! VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition", ICLR 2015).
//!
//! Stacks of 3x3 convolutions (stride 1, padding 1) with ReLU, five 2x2/2 max-pools, and a
//! 4096-4096-classes classifier. One [`Vgg`] struct built from the paper's configuration table
//! ([`VggConfig`], table 1): A (VGG-11), A-LRN, B (VGG-13), C (VGG-16 with 1x1 convolutions),
//! D (VGG-16) and E (VGG-19), with batch norm after every convolution where torchvision has
//! `_bn` models. Presets with a torchvision counterpart have its `state_dict` keys
//! (`features.0.weight`, …, `classifier.6.bias`), parameter count and initialisation (He normal
//! over fan-out for convolutions, N(0, 0.01) for dense layers, zero biases); the head is
//! torchvision's adaptive 7x7 average pool and 25088-4096-4096-classes.
//!
//! The convolutional base is its own module, [`VggFeatures`], for transfer learning; seed 001's
//! Keras model, [`Vgg::vgg16_seed001`], puts a small dense head on VGG-16's base.

use burn::module::{Content, Devices, Module, ModuleDisplay, ModuleMapper, ModuleVisitor};
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{
    BatchNormConfig, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::tensor::{Device, Tensor};

use super::alexnet::{ClassifierLayer, FeatureLayer, paper_lrn};
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, flatten};

/// One column entry of the paper's table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `conv3-N`: 3x3 convolution, padding 1, N filters.
    Conv3(usize),
    /// `conv1-N`: 1x1 convolution, N filters.
    Conv1(usize),
    /// Local response normalisation (configuration A-LRN).
    Lrn,
    /// 2x2/2 max-pool.
    Pool,
}

use Entry::{Conv1, Conv3, Lrn, Pool};

const A: &[Entry] = &[
    Conv3(64),
    Pool,
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
];
const A_LRN: &[Entry] = &[
    Conv3(64),
    Lrn,
    Pool,
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
];
const B: &[Entry] = &[
    Conv3(64),
    Conv3(64),
    Pool,
    Conv3(128),
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Pool,
];
const C: &[Entry] = &[
    Conv3(64),
    Conv3(64),
    Pool,
    Conv3(128),
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Conv1(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv1(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv1(512),
    Pool,
];
const D: &[Entry] = &[
    Conv3(64),
    Conv3(64),
    Pool,
    Conv3(128),
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Conv3(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Pool,
];
const E: &[Entry] = &[
    Conv3(64),
    Conv3(64),
    Pool,
    Conv3(128),
    Conv3(128),
    Pool,
    Conv3(256),
    Conv3(256),
    Conv3(256),
    Conv3(256),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Pool,
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Conv3(512),
    Pool,
];

/// A column of the paper's table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggConfig {
    /// VGG-11: 8 convolutions.
    A,
    /// VGG-11 with local response normalisation after the first convolution.
    ALrn,
    /// VGG-13: 10 convolutions.
    B,
    /// VGG-16 whose last convolution in blocks 3-5 is 1x1.
    C,
    /// VGG-16: 13 3x3 convolutions.
    D,
    /// VGG-19: 16 convolutions.
    E,
}

impl VggConfig {
    fn entries(self) -> &'static [Entry] {
        match self {
            VggConfig::A => A,
            VggConfig::ALrn => A_LRN,
            VggConfig::B => B,
            VggConfig::C => C,
            VggConfig::D => D,
            VggConfig::E => E,
        }
    }
}

/// A VGG convolutional base: the configuration's convolutions (each followed by batch norm
/// when asked, then ReLU) and its five max-pools, as torchvision's `features` `Sequential`.
///
/// Inside [`Vgg`] its entries are named `features.0`, `features.1`, … exactly like
/// torchvision's, so `features.*` weights of a torchvision VGG load into it; on its own (the
/// root module) the names lose the `features.` prefix. `Module` is implemented by hand, passing
/// straight through to the entries, so that no extra path segment appears.
#[derive(Debug, Clone)]
pub struct VggFeatures {
    /// The `Sequential` entries, indexed as torchvision's.
    pub layers: Vec<FeatureLayer>,
}

impl VggFeatures {
    /// The base of `config` on `in_channels`-channel images, with batch norm (torchvision's
    /// `_bn` models: eps 1e-5, momentum 0.1, convolution biases kept) or without. Works on any
    /// input of at least 32x32 (see [`VggFeatures::output_size`]).
    pub fn new(config: VggConfig, batch_norm: bool, in_channels: usize, device: &Device) -> Self {
        let mut layers = Vec::new();
        let mut c_in = in_channels;
        for &entry in config.entries() {
            let (c_out, k) = match entry {
                Conv3(c) => (c, 3),
                Conv1(c) => (c, 1),
                Lrn => {
                    layers.push(FeatureLayer::Lrn(paper_lrn()));
                    continue;
                }
                Pool => {
                    layers.push(FeatureLayer::MaxPool(MaxPool2dConfig::new([2, 2]).init()));
                    continue;
                }
            };
            let p = k / 2;
            // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), zero bias.
            let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_initializer(Initializer::KaimingNormal {
                    gain: 2f64.sqrt(),
                    fan_out_only: true,
                })
                .init(device);
            conv.bias = Some(Initializer::Zeros.init([c_out], device));
            layers.push(FeatureLayer::Conv(conv));
            if batch_norm {
                layers.push(FeatureLayer::BatchNorm(
                    BatchNormConfig::new(c_out).init(device),
                ));
            }
            layers.push(FeatureLayer::Relu(Relu::new()));
            c_in = c_out;
        }
        Self { layers }
    }

    /// VGG-16's base (configuration D, no batch norm): 14,714,688 parameters on 3 channels.
    pub fn vgg16(in_channels: usize, device: &Device) -> Self {
        Self::new(VggConfig::D, false, in_channels, device)
    }

    /// Spatial size of the feature map for an `[H, W]` input (five 2x2/2 pools, rounding
    /// down), or `None` below 32x32.
    pub fn output_size([h, w]: [usize; 2]) -> Option<[usize; 2]> {
        let (h, w) = (h / 32, w / 32);
        (h > 0 && w > 0).then_some([h, w])
    }

    /// The feature map.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, 512, H/32, W/32]` (e.g. `[N, 3, 150, 150]` → `[N, 512, 4, 4]`)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        super::alexnet::run_features(&self.layers, x)
    }
}

// Pass-through `Module`: what `#[derive(Module)]` would generate, minus the field name.
impl Module for VggFeatures {
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
        self.layers.visit(visitor)
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        Self {
            layers: self.layers.map(mapper),
        }
    }
}

impl burn::module::ModuleDisplayDefault for VggFeatures {
    fn content(&self, content: Content) -> Option<Content> {
        burn::module::ModuleDisplayDefault::content(&self.layers, content)
    }

    fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

impl ModuleDisplay for VggFeatures {}

/// VGG: a [`VggFeatures`] base, an optional adaptive average pool, and a dense `classifier`.
#[derive(Module, Debug)]
pub struct Vgg {
    /// The convolutional base (`features.N` keys, as torchvision).
    pub features: VggFeatures,
    /// torchvision's adaptive 7x7 average pool; `None` for seed 001's head, which flattens
    /// the feature map as it is.
    pub avgpool: Option<AdaptiveAvgPool2d>,
    /// The dense stack.
    pub classifier: Vec<ClassifierLayer>,
}

/// A dense layer initialised as torchvision's VGG does: N(0, 0.01) weights, zero bias.
fn linear_normal(d_in: usize, d_out: usize, device: &Device) -> ClassifierLayer {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    l.bias = Some(Initializer::Zeros.init([d_out], device));
    ClassifierLayer::Linear(l)
}

/// A dense layer initialised as Keras' `Dense` does: Glorot uniform weights, zero bias.
fn linear_glorot(d_in: usize, d_out: usize, device: &Device) -> ClassifierLayer {
    let mut l: Linear = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device);
    l.bias = Some(Initializer::Zeros.init([d_out], device));
    ClassifierLayer::Linear(l)
}

impl Vgg {
    /// A torchvision-style VGG of `config`: base, adaptive 7x7 average pool, 25088 → 4096,
    /// ReLU, dropout, 4096 → 4096, ReLU, dropout, 4096 → classes.
    fn torchvision(
        spec: &ModelSpec,
        config: VggConfig,
        batch_norm: bool,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if VggFeatures::output_size(spec.input_size).is_none() {
            return Err(super::too_small(spec, "VGG needs at least 32x32"));
        }
        let dropout = || ClassifierLayer::Dropout(DropoutConfig::new(0.5).init());
        let relu = || ClassifierLayer::Relu(Relu::new());
        Ok(Self {
            features: VggFeatures::new(config, batch_norm, spec.in_channels, device),
            avgpool: Some(AdaptiveAvgPool2dConfig::new([7, 7]).init()),
            classifier: vec![
                linear_normal(512 * 7 * 7, 4096, device),
                relu(),
                dropout(),
                linear_normal(4096, 4096, device),
                relu(),
                dropout(),
                linear_normal(4096, spec.num_classes, device),
            ],
        })
    }

    /// VGG-11 (configuration A), torchvision's `vgg11`; 3x224x224, at least 32x32.
    pub fn vgg11(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::A, false, device)
    }

    /// VGG-11 with batch norm, torchvision's `vgg11_bn`.
    pub fn vgg11_bn(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::A, true, device)
    }

    /// VGG-11 with LRN after the first convolution (configuration A-LRN; no torchvision
    /// model, torchvision's head).
    pub fn vgg11_lrn(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::ALrn, false, device)
    }

    /// VGG-13 (configuration B), torchvision's `vgg13`.
    pub fn vgg13(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::B, false, device)
    }

    /// VGG-13 with batch norm, torchvision's `vgg13_bn`.
    pub fn vgg13_bn(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::B, true, device)
    }

    /// VGG-16 with 1x1 last convolutions in blocks 3-5 (configuration C; no torchvision
    /// model, torchvision's head).
    pub fn vgg16_c(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::C, false, device)
    }

    /// VGG-16 (configuration D), torchvision's `vgg16`.
    pub fn vgg16(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::D, false, device)
    }

    /// VGG-16 with batch norm, torchvision's `vgg16_bn`.
    pub fn vgg16_bn(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::D, true, device)
    }

    /// VGG-19 (configuration E), torchvision's `vgg19`.
    pub fn vgg19(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::E, false, device)
    }

    /// VGG-19 with batch norm, torchvision's `vgg19_bn`.
    pub fn vgg19_bn(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::torchvision(spec, VggConfig::E, true, device)
    }

    /// Seed 001's Keras model: VGG-16's base (native input 3x150x150 → 512x4x4), flatten,
    /// dense 256 + ReLU, dropout 0.5, dense `num_classes` (the seed has one sigmoid unit; here
    /// the logits). The head is initialised like Keras (Glorot uniform, zero bias); the base
    /// like torchvision's VGG-16, whose `features.*` weights it takes. Needs at least 32x32.
    ///
    /// Keras flattens channels-last, so a Keras-trained head would need its rows permuted.
    pub fn vgg16_seed001(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let Some([h, w]) = VggFeatures::output_size(spec.input_size) else {
            return Err(super::too_small(spec, "VGG needs at least 32x32"));
        };
        Ok(Self {
            features: VggFeatures::vgg16(spec.in_channels, device),
            avgpool: None,
            classifier: vec![
                linear_glorot(512 * h * w, 256, device),
                ClassifierLayer::Relu(Relu::new()),
                ClassifierLayer::Dropout(DropoutConfig::new(0.5).init()),
                linear_glorot(256, spec.num_classes, device),
            ],
        })
    }

    /// Class logits.
    ///
    /// # Shapes
    /// `[N, C, 224, 224]` (`[N, C, 150, 150]` for seed 001) → `[N, 512, 7, 7]` (`[N, 512, 4, 4]`)
    /// → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base (Keras' `include_top=False`): `[N, C, 224, 224]` → `[N, 512, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features.forward(x)
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = match &self.avgpool {
            Some(pool) => pool.run(x),
            None => x,
        };
        self.classifier.iter().fold(flatten(x), |x, l| l.run(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// Parameter paths as PyTorch names them: enum variants skipped (as burn-store's
    /// `skip_enum_variants` does), batch norm's `gamma`/`beta` called `weight`/`bias`.
    /// Visiting does not initialise lazy parameters.
    fn torch_keys<M: Module>(m: &M) -> Vec<String> {
        #[derive(Default)]
        struct Keys {
            path: Vec<Option<String>>,
            out: Vec<String>,
        }
        impl ModuleVisitor for Keys {
            fn enter_module(&mut self, name: &str, container: &str) {
                let skip = container.starts_with("Enum:");
                self.path.push((!skip).then(|| name.to_string()));
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
                let mut parts: Vec<&str> = self.path.iter().flatten().map(|s| s.as_str()).collect();
                if let Some(last) = parts.last_mut() {
                    *last = match *last {
                        "gamma" => "weight",
                        "beta" => "bias",
                        other => other,
                    };
                }
                self.out.push(parts.join("."));
            }
        }
        let mut keys = Keys::default();
        m.visit(&mut keys);
        keys.out
    }

    type Preset = fn(&ModelSpec, &Device) -> Result<Vgg, ModelError>;

    /// Running mean and variance of every batch norm: Burn's `num_params` counts these
    /// buffers, PyTorch's `parameters()` does not.
    fn bn_buffers(m: &Vgg) -> usize {
        let bn: usize = m
            .features
            .layers
            .iter()
            .map(|l| match l {
                FeatureLayer::BatchNorm(bn) => bn.gamma.lazy_shape().num_elements(),
                _ => 0,
            })
            .sum();
        2 * bn
    }

    fn logits(m: &Vgg, input: [usize; 3]) -> [usize; 2] {
        let [c, h, w] = input;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &Device::flex());
        let y = m.valid().forward(x);
        let v = y.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        y.dims()
    }

    /// Builds `preset` at 3x224x224 with 1000 classes, checks its PyTorch-style parameter
    /// count, and when `forward` runs it once.
    fn check(name: &str, preset: Preset, torch_params: usize, forward: bool) {
        let d = Device::flex();
        let m = preset(&ModelSpec::new(name, [3, 224, 224], 1000), &d).unwrap();
        assert_eq!(m.num_params() - bn_buffers(&m), torch_params, "{name}");
        if forward {
            assert_eq!(logits(&m, [3, 224, 224]), [1, 1000], "{name}");
        }
    }

    // Counts: sum(p.numel() for p in torchvision.models.NAME().parameters()). The _bn ones add
    // 2 * (sum of conv widths) for gamma and beta: A 2*2,752, B 2*2,944, D 2*4,224, E 2*5,504.

    #[test]
    fn vgg11_family() {
        check("vgg11", Vgg::vgg11, 132_863_336, true);
        check("vgg11_bn", Vgg::vgg11_bn, 132_868_840, true);
        // Paper table 2: A-LRN 133M; LRN has no parameters, so exactly A's count.
        check("vgg11-lrn", Vgg::vgg11_lrn, 132_863_336, true);
    }

    #[test]
    fn vgg13_family() {
        check("vgg13", Vgg::vgg13, 133_047_848, true);
        check("vgg13_bn", Vgg::vgg13_bn, 133_053_736, true);
    }

    #[test]
    fn vgg16_family() {
        check("vgg16", Vgg::vgg16, 138_357_544, true);
        check("vgg16_bn", Vgg::vgg16_bn, 138_365_992, true);
        // Paper table 2: C 134M. D less the 3x3 → 1x1 change of conv3_3, conv4_3 and conv5_3:
        // 256*256*8 + 2 * 512*512*8 = 4,718,592 fewer weights, 138,357,544 - 4,718,592.
        check("vgg16-c", Vgg::vgg16_c, 133_638_952, true);
    }

    #[test]
    fn vgg19_family() {
        check("vgg19", Vgg::vgg19, 143_667_240, true);
        check("vgg19_bn", Vgg::vgg19_bn, 143_678_248, true);
    }

    #[test]
    fn vgg16_base_at_150_has_14_714_688_parameters_and_gives_512x4x4() {
        let d = Device::flex();
        let base = VggFeatures::vgg16(3, &d);
        // sum(p.numel() for p in torchvision.models.vgg16().features.parameters()), and
        // Keras' VGG16(include_top=False, input_shape=(150, 150, 3)).count_params().
        assert_eq!(base.num_params(), 14_714_688);
        let x = Tensor::<4>::random([1, 3, 150, 150], Distribution::Default, &d);
        assert_eq!(base.valid().forward(x).dims(), [1, 512, 4, 4]);
        assert_eq!(VggFeatures::output_size([150, 150]), Some([4, 4]));
    }

    #[test]
    fn seed001_has_16_812_353_parameters_with_one_unit() {
        let d = Device::flex();
        let m = Vgg::vgg16_seed001(&ModelSpec::new("vgg16-seed001", [3, 150, 150], 1), &d).unwrap();
        // Seed 001's model.summary(): 14,714,688 (base) + (8192+1)*256 + (256+1)*1.
        assert_eq!(m.num_params(), 14_714_688 + 2_097_408 + 257);
        assert_eq!(m.num_params(), 16_812_353);
        assert_eq!(logits(&m, [3, 150, 150]), [1, 1]);
        let keys = torch_keys(&m);
        assert_eq!(keys[0], "features.0.weight");
        assert_eq!(
            &keys[26..],
            ["classifier.0.weight", "classifier.0.bias"]
                .iter()
                .chain(&["classifier.3.weight", "classifier.3.bias"])
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
    }

    /// The `state_dict` keys of torchvision's VGG whose convolutions sit at `conv`, batch norms
    /// at `bn` (`num_batches_tracked` left out: Burn keeps no such buffer).
    fn torchvision_keys(conv: &[usize], bn: &[usize]) -> Vec<String> {
        let mut layers: Vec<(usize, bool)> = conv.iter().map(|&i| (i, false)).collect();
        layers.extend(bn.iter().map(|&i| (i, true)));
        layers.sort();
        let mut keys = Vec::new();
        for (i, is_bn) in layers {
            keys.push(format!("features.{i}.weight"));
            keys.push(format!("features.{i}.bias"));
            if is_bn {
                keys.push(format!("features.{i}.running_mean"));
                keys.push(format!("features.{i}.running_var"));
            }
        }
        for i in [0, 3, 6] {
            keys.push(format!("classifier.{i}.weight"));
            keys.push(format!("classifier.{i}.bias"));
        }
        keys
    }

    #[test]
    fn keys_match_torchvision() {
        let d = Device::flex();
        let keys =
            |p: Preset| torch_keys(&p(&ModelSpec::new("vgg", [3, 224, 224], 1000), &d).unwrap());
        // [i for i, l in enumerate(torchvision.models.NAME().features) if isinstance(l, nn.Conv2d)]
        // and likewise for nn.BatchNorm2d.
        let vgg11 = [0, 3, 6, 8, 11, 13, 16, 18];
        assert_eq!(keys(Vgg::vgg11), torchvision_keys(&vgg11, &[]));
        let vgg11_bn = [0, 4, 8, 11, 15, 18, 22, 25];
        let bn = vgg11_bn.map(|i| i + 1);
        assert_eq!(keys(Vgg::vgg11_bn), torchvision_keys(&vgg11_bn, &bn));
        let vgg13 = [0, 2, 5, 7, 10, 12, 15, 17, 20, 22];
        assert_eq!(keys(Vgg::vgg13), torchvision_keys(&vgg13, &[]));
        let vgg16 = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
        assert_eq!(keys(Vgg::vgg16), torchvision_keys(&vgg16, &[]));
        let vgg16_bn = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40];
        let bn = vgg16_bn.map(|i| i + 1);
        assert_eq!(keys(Vgg::vgg16_bn), torchvision_keys(&vgg16_bn, &bn));
        let vgg19 = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34];
        assert_eq!(keys(Vgg::vgg19), torchvision_keys(&vgg19, &[]));
        let vgg19_bn = [0, 3, 7, 10, 14, 17, 20, 23, 27, 30, 33, 36, 40, 43, 46, 49];
        let bn = vgg19_bn.map(|i| i + 1);
        assert_eq!(keys(Vgg::vgg19_bn), torchvision_keys(&vgg19_bn, &bn));
        // A-LRN: the LRN takes index 2, after conv 0 and its ReLU.
        let a_lrn = [0, 4, 7, 9, 12, 14, 17, 19];
        assert_eq!(keys(Vgg::vgg11_lrn), torchvision_keys(&a_lrn, &[]));
    }

    #[test]
    fn small_grayscale_input_and_ten_classes() {
        let d = Device::flex();
        let m = Vgg::vgg11_bn(&ModelSpec::new("vgg11_bn", [1, 32, 32], 10), &d).unwrap();
        assert_eq!(logits(&m, [1, 32, 32]), [1, 10]);
        let m = Vgg::vgg16_seed001(&ModelSpec::new("vgg16-seed001", [1, 32, 32], 10), &d).unwrap();
        // 512*1*1 features into the 256-unit layer.
        assert_eq!(
            m.num_params(),
            14_714_688 - 2 * 9 * 64 + (512 + 1) * 256 + 257 * 10
        );
        assert_eq!(logits(&m, [1, 32, 32]), [1, 10]);
    }

    #[test]
    fn the_hand_written_module_impl_passes_through() {
        let d = Device::flex();
        let s = ModelSpec::new("vgg16-seed001", [1, 32, 32], 10);
        let m = Vgg::vgg16_seed001(&s, &d).unwrap();
        // A record round trip restores the base's weights.
        let fresh = Vgg::vgg16_seed001(&s, &d).unwrap();
        let loaded = fresh.load_record(m.clone().into_record());
        let weight = |m: &Vgg| match &m.features.layers[0] {
            FeatureLayer::Conv(c) => c.weight.val().into_data(),
            _ => unreachable!("features.0 is a convolution"),
        };
        assert_eq!(weight(&loaded), weight(&m));
        // `valid` reaches the head's dropout: two inference passes agree.
        let x = Tensor::<4>::random([2, 1, 32, 32], Distribution::Default, &d);
        let m = m.valid();
        let (a, b) = (m.forward(x.clone()), m.forward(x));
        assert_eq!(a.into_data(), b.into_data());
        // Display lists the base's entries.
        assert!(format!("{m}").contains("Conv2d"));
    }

    #[test]
    fn too_small_inputs_are_errors() {
        let d = Device::flex();
        let presets: [Preset; 3] = [Vgg::vgg11, Vgg::vgg16_bn, Vgg::vgg16_seed001];
        for preset in presets {
            let r = preset(&ModelSpec::new("vgg", [3, 31, 224], 10), &d);
            assert!(matches!(r, Err(ModelError::BadInput { .. })));
        }
        assert_eq!(VggFeatures::output_size([224, 16]), None);
    }
}
