//! ResNet (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016).
//!
//! The ImageNet networks of the paper's Table 1 (ResNet-18/34 with basic blocks, ResNet-50/101/152
//! with bottlenecks) laid out like torchvision's `resnet*` (same `state_dict` keys, batch norm
//! eps 1e-5 and momentum 0.1, bias-free convolutions, He-normal `fan_out` initialisation), and the
//! CIFAR-10 networks of section 4.2 (ResNet-20/32/44/56/110: a 3x3 stem, three stages of `n` basic
//! blocks with 16, 32 and 64 channels, option-A shortcuts, global average pooling and a classifier).
//!
//! The shortcut connection where a block changes shape is the paper's choice of section 3.3 and
//! Table 3, given as [`Shortcut`]. Like torchvision (its "ResNet v1.5"), a bottleneck downsamples in
//! its 3x3 convolution rather than in its first 1x1 one as the paper does; parameter counts are the
//! same either way.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, s};

use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, conv_bn, conv_bn_add_relu, conv_bn_relu, flatten, record};

/// The shortcut connection of a residual block (paper section 3.3, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shortcut {
    /// Identity everywhere; where a block changes shape the input is subsampled with the block's
    /// stride and zero-padded to the new channel count. No parameters.
    A,
    /// Identity where the shape is kept, a 1x1 projection + batch norm where it changes
    /// (torchvision's `downsample`).
    #[default]
    B,
    /// A 1x1 projection + batch norm on every block.
    C,
}

/// Which residual block a network stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34 and the CIFAR networks).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per `planes` (1 for basic blocks, 4 for bottlenecks).
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// torchvision's He-normal, bias-free convolution for this family.
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    crate::layers::conv_he(c_in, c_out, k, stride, true, device)
}

/// Batch norm with PyTorch's defaults (eps 1e-5, momentum 0.1, weight 1, bias 0).
fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

/// The projection shortcut `downsample.0` (1x1 conv with the block's stride) and
/// `downsample.1` (batch norm), where `shortcut` asks for one.
fn downsample(
    c_in: usize,
    c_out: usize,
    stride: usize,
    shortcut: Shortcut,
    device: &Device,
) -> Option<(Conv2d, BatchNorm)> {
    let changes = stride != 1 || c_in != c_out;
    let project = match shortcut {
        Shortcut::A => false,
        Shortcut::B => changes,
        Shortcut::C => true,
    };
    project.then(|| (conv(c_in, c_out, 1, stride, device), bn(c_out, device)))
}

/// The shortcut branch: the projection when there is one, otherwise the identity, subsampled by
/// `stride` and zero-padded to `c_out` channels where the shape changes (option A).
///
/// # Shapes
/// `[N, C, H, W]` → `[N, c_out, ceil(H / stride), ceil(W / stride)]`
fn shortcut(
    proj: &Option<(Conv2d, BatchNorm)>,
    x: Tensor<4>,
    stride: usize,
    c_out: usize,
) -> Tensor<4> {
    if let Some((conv, bn)) = proj {
        return conv_bn(conv, bn, x);
    }
    let [n, c, h, w] = x.dims();
    if stride == 1 && c == c_out {
        return x;
    }
    let x = if stride > 1 {
        x.slice(s![.., .., ..;stride, ..;stride])
    } else {
        x
    };
    let x = if c_out > c {
        let zeros = Tensor::zeros(
            [n, c_out - c, h.div_ceil(stride), w.div_ceil(stride)],
            &x.device(),
        );
        let zeros = crate::precision::same_type(zeros, &x);
        Tensor::cat(vec![x, zeros], 1)
    } else {
        x
    };
    record("ZeroPadShortcut", 0, 0, x)
}

/// The basic block: 3x3 conv → BN → ReLU → 3x3 conv → BN, plus the shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution, carrying the block's stride.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// Projection shortcut (options B and C), `None` for an identity or option-A shortcut.
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    /// A block from `c_in` to `planes` channels with the given stride.
    pub fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        shortcut: Shortcut,
        device: &Device,
    ) -> Self {
        Self {
            conv1: conv(c_in, planes, 3, stride, device),
            bn1: bn(planes, device),
            conv2: conv(planes, planes, 3, 1, device),
            bn2: bn(planes, device),
            downsample: downsample(c_in, planes, stride, shortcut, device),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, planes, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_bn_relu(&self.conv1, &self.bn1, x.clone());
        let [c_out, _, _, _] = self.conv2.weight.dims();
        let stride = self.conv1.stride[0];
        conv_bn_add_relu(&self.conv2, &self.bn2, out, || {
            shortcut(&self.downsample, x, stride, c_out)
        })
    }
}

/// The bottleneck block: 1x1 conv → BN → ReLU → 3x3 conv (stride) → BN → ReLU → 1x1 conv (x4)
/// → BN, plus the shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction to `planes`.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3x3 convolution, carrying the block's stride.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// 1x1 expansion to `4 * planes`.
    pub conv3: Conv2d,
    /// Batch norm after `conv3`.
    pub bn3: BatchNorm,
    /// Projection shortcut (options B and C), `None` for an identity or option-A shortcut.
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

impl Bottleneck {
    /// A block from `c_in` to `4 * planes` channels with the given stride.
    pub fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        shortcut: Shortcut,
        device: &Device,
    ) -> Self {
        let c_out = planes * BlockKind::Bottleneck.expansion();
        Self {
            conv1: conv(c_in, planes, 1, 1, device),
            bn1: bn(planes, device),
            conv2: conv(planes, planes, 3, stride, device),
            bn2: bn(planes, device),
            conv3: conv(planes, c_out, 1, 1, device),
            bn3: bn(c_out, device),
            downsample: downsample(c_in, c_out, stride, shortcut, device),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 4 * planes, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_bn_relu(&self.conv1, &self.bn1, x.clone());
        let out = conv_bn_relu(&self.conv2, &self.bn2, out);
        let [c_out, _, _, _] = self.conv3.weight.dims();
        let stride = self.conv2.stride[0];
        conv_bn_add_relu(&self.conv3, &self.bn3, out, || {
            shortcut(&self.downsample, x, stride, c_out)
        })
    }
}

/// One residual block of either kind (the variant name is not part of the weight keys).
// Modules are built once per model; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResidualBlock {
    /// A basic block.
    Basic(BasicBlock),
    /// A bottleneck block.
    Bottleneck(Bottleneck),
}

impl ResidualBlock {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ResidualBlock::Basic(b) => b.forward(x),
            ResidualBlock::Bottleneck(b) => b.forward(x),
        }
    }
}

/// A residual network: stem, up to four stages of residual blocks, global average pooling and a
/// classifier. The CIFAR networks have a 3x3 stem without max pooling and an empty `layer4`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution: 7x7 stride 2 (ImageNet) or 3x3 stride 1 (CIFAR).
    pub conv1: Conv2d,
    /// Batch norm after the stem.
    pub bn1: BatchNorm,
    /// 3x3 stride-2 max pooling after the stem (ImageNet only).
    pub maxpool: Option<MaxPool2d>,
    /// First stage (stride 1).
    pub layer1: Vec<ResidualBlock>,
    /// Second stage (first block stride 2).
    pub layer2: Vec<ResidualBlock>,
    /// Third stage (first block stride 2).
    pub layer3: Vec<ResidualBlock>,
    /// Fourth stage (first block stride 2); empty in the CIFAR networks.
    pub layer4: Vec<ResidualBlock>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
}

/// Side length after a chain of `(kernel, stride, padding)` layers, or `None` when a window does
/// not fit or a stride-2 layer would get less than 2 pixels to subsample.
fn side_after(w: usize, layers: &[(usize, usize, usize)]) -> Option<usize> {
    layers.iter().try_fold(w, |w, &(k, s, p)| {
        if w < s {
            return None;
        }
        conv_out(w, k, s, p)
    })
}

/// Whether `spec` has channels and both input sides survive `chain` (see [`side_after`]).
pub(crate) fn input_fits(spec: &ModelSpec, chain: &[(usize, usize, usize)]) -> bool {
    spec.in_channels > 0
        && spec
            .input_size
            .iter()
            .all(|&w| side_after(w, chain).is_some())
}

/// Builds one stage of `blocks` blocks; the first takes `c_in` channels and the stride.
fn stage(
    block: BlockKind,
    c_in: usize,
    planes: usize,
    blocks: usize,
    stride: usize,
    shortcut: Shortcut,
    device: &Device,
) -> Vec<ResidualBlock> {
    let c_out = planes * block.expansion();
    (0..blocks)
        .map(|i| {
            let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
            match block {
                BlockKind::Basic => {
                    ResidualBlock::Basic(BasicBlock::new(c, planes, s, shortcut, device))
                }
                BlockKind::Bottleneck => {
                    ResidualBlock::Bottleneck(Bottleneck::new(c, planes, s, shortcut, device))
                }
            }
        })
        .collect()
}

impl ResNet {
    /// An ImageNet ResNet (paper Table 1): 7x7/2 stem, 3x3/2 max pooling, four stages of
    /// `layers[i]` blocks with 64, 128, 256 and 512 planes. Needs at least 17x17 input (every
    /// stride-2 layer must get at least 2x2).
    pub fn imagenet(
        spec: &ModelSpec,
        block: BlockKind,
        layers: [usize; 4],
        shortcut: Shortcut,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let chain = [(7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)];
        if !input_fits(spec, &chain) {
            return Err(super::too_small(
                spec,
                "ResNet needs at least 17x17 (each of its five stride-2 layers needs 2x2)",
            ));
        }
        let e = block.expansion();
        Ok(Self {
            conv1: conv(spec.in_channels, 64, 7, 2, device),
            bn1: bn(64, device),
            maxpool: Some(
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(),
            ),
            layer1: stage(block, 64, 64, layers[0], 1, shortcut, device),
            layer2: stage(block, 64 * e, 128, layers[1], 2, shortcut, device),
            layer3: stage(block, 128 * e, 256, layers[2], 2, shortcut, device),
            layer4: stage(block, 256 * e, 512, layers[3], 2, shortcut, device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(512 * e, spec.num_classes).init(device),
        })
    }

    /// A CIFAR ResNet of depth `6n + 2` (paper section 4.2): 3x3 stem with 16 filters, three
    /// stages of `n` basic blocks with 16, 32 and 64 channels, global average pooling and a
    /// classifier. Needs at least 3x3 input.
    pub fn cifar(
        spec: &ModelSpec,
        n: usize,
        shortcut: Shortcut,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let chain = [(3, 1, 1), (3, 2, 1), (3, 2, 1)];
        if !input_fits(spec, &chain) {
            return Err(super::too_small(
                spec,
                "CIFAR ResNet needs at least 3x3 (each stride-2 stage needs 2x2)",
            ));
        }
        let b = BlockKind::Basic;
        Ok(Self {
            conv1: conv(spec.in_channels, 16, 3, 1, device),
            bn1: bn(16, device),
            maxpool: None,
            layer1: stage(b, 16, 16, n, 1, shortcut, device),
            layer2: stage(b, 16, 32, n, 2, shortcut, device),
            layer3: stage(b, 32, 64, n, 2, shortcut, device),
            layer4: Vec::new(),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(64, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` (ImageNet) or `[N, C, 32, 32]` (CIFAR) → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base, before global pooling: `[N, C, 224, 224]` → `[N, 512·e, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv_bn_relu(&self.conv1, &self.bn1, x);
        let x = match &self.maxpool {
            Some(pool) => pool.run(x),
            None => x,
        };
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(flatten(self.avgpool.run(x)))
    }

    /// ResNet-18: basic blocks `[2, 2, 2, 2]`, option B.
    pub fn resnet18(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(spec, BlockKind::Basic, [2, 2, 2, 2], Shortcut::B, device)
    }

    /// ResNet-34: basic blocks `[3, 4, 6, 3]`, option B.
    pub fn resnet34(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(spec, BlockKind::Basic, [3, 4, 6, 3], Shortcut::B, device)
    }

    /// ResNet-34 with option-A (parameter-free, zero-padding) shortcuts (paper Table 3, "34 A").
    pub fn resnet34_a(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(spec, BlockKind::Basic, [3, 4, 6, 3], Shortcut::A, device)
    }

    /// ResNet-34 with projection shortcuts on every block (paper Table 3, "34 C").
    pub fn resnet34_c(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(spec, BlockKind::Basic, [3, 4, 6, 3], Shortcut::C, device)
    }

    /// ResNet-50: bottlenecks `[3, 4, 6, 3]`, option B.
    pub fn resnet50(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(
            spec,
            BlockKind::Bottleneck,
            [3, 4, 6, 3],
            Shortcut::B,
            device,
        )
    }

    /// ResNet-101: bottlenecks `[3, 4, 23, 3]`, option B.
    pub fn resnet101(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(
            spec,
            BlockKind::Bottleneck,
            [3, 4, 23, 3],
            Shortcut::B,
            device,
        )
    }

    /// ResNet-152: bottlenecks `[3, 8, 36, 3]`, option B.
    pub fn resnet152(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::imagenet(
            spec,
            BlockKind::Bottleneck,
            [3, 8, 36, 3],
            Shortcut::B,
            device,
        )
    }

    /// CIFAR ResNet-20 (`n = 3`), option A.
    pub fn resnet20(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::cifar(spec, 3, Shortcut::A, device)
    }

    /// CIFAR ResNet-32 (`n = 5`), option A.
    pub fn resnet32(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::cifar(spec, 5, Shortcut::A, device)
    }

    /// CIFAR ResNet-44 (`n = 7`), option A.
    pub fn resnet44(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::cifar(spec, 7, Shortcut::A, device)
    }

    /// CIFAR ResNet-56 (`n = 9`), option A.
    pub fn resnet56(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::cifar(spec, 9, Shortcut::A, device)
    }

    /// CIFAR ResNet-110 (`n = 18`), option A.
    pub fn resnet110(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::cifar(spec, 18, Shortcut::A, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::ModuleSnapshot;
    use burn::tensor::Distribution;

    type Build = fn(&ModelSpec, &Device) -> Result<ResNet, ModelError>;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("resnet", input, classes)
    }

    fn logits_shape(build: Build, input: [usize; 3], classes: usize) -> Vec<usize> {
        let d = Device::flex();
        let net = build(&spec(input, classes), &d).unwrap().valid();
        let [c, h, w] = input;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &d);
        net.forward(x).dims().to_vec()
    }

    /// `(learnable, num_params)`: what PyTorch's `parameters()` counts, and what Burn's
    /// `num_params` counts, which adds batch norm's running means and variances (buffers in
    /// PyTorch).
    fn counts(build: Build, input: [usize; 3], classes: usize) -> (usize, usize) {
        let net = build(&spec(input, classes), &Device::flex()).unwrap();
        (crate::learnable_params(&net), net.num_params())
    }

    #[test]
    fn imagenet_parameter_counts_match_torchvision() {
        // torchvision 0.29 at 1000 classes: sum(p.numel() for p in resnetNN().parameters()),
        // then plus the state_dict's running_mean/running_var elements (2 per BN channel).
        let n = |b: Build| counts(b, [3, 224, 224], 1000);
        assert_eq!(n(ResNet::resnet18), (11_689_512, 11_689_512 + 9_600));
        assert_eq!(n(ResNet::resnet34), (21_797_672, 21_797_672 + 17_024));
        assert_eq!(n(ResNet::resnet50), (25_557_032, 25_557_032 + 53_120));
        assert_eq!(n(ResNet::resnet101), (44_549_160, 44_549_160 + 105_344));
        assert_eq!(n(ResNet::resnet152), (60_192_808, 60_192_808 + 151_424));
    }

    #[test]
    fn resnet34_shortcut_options_change_only_the_projections() {
        let n = |b: Build| counts(b, [3, 224, 224], 1000);
        // A: torchvision's resnet34 less its three downsample projections (64→128, 128→256,
        // 256→512: 1x1 conv + BN) = 21,797,672 - 173,824; 896 fewer BN channels.
        assert_eq!(n(ResNet::resnet34_a), (21_623_848, 21_623_848 + 15_232));
        // C: plus a c→c 1x1 conv + BN on the other 13 blocks (3x64, 3x128, 5x256, 2x512)
        // = 21,797,672 + 919,168; 2,880 more BN channels.
        assert_eq!(n(ResNet::resnet34_c), (22_716_840, 22_716_840 + 22_784));
    }

    #[test]
    fn cifar_parameter_counts_follow_section_4_2() {
        // Option A, 10 classes; computed per layer (and checked against a PyTorch rebuild):
        // 432 + 32 stem, 2 x (9c² + 2c) per c→c block, 650 classifier. The paper rounds these
        // to 0.27M, 0.46M, 0.66M, 0.85M and 1.7M. BN channels: 16 + 224n.
        let n = |b: Build| counts(b, [3, 32, 32], 10);
        assert_eq!(n(ResNet::resnet20), (269_722, 269_722 + 1_376));
        assert_eq!(n(ResNet::resnet32), (464_154, 464_154 + 2_272));
        assert_eq!(n(ResNet::resnet44), (658_586, 658_586 + 3_168));
        assert_eq!(n(ResNet::resnet56), (853_018, 853_018 + 4_064));
        assert_eq!(n(ResNet::resnet110), (1_727_962, 1_727_962 + 8_096));
        // Option B adds the two 1x1 projections + BN (16→32: 576, 32→64: 2,176): 272,474,
        // the figure often quoted for "ResNet-20".
        let b = |s: &ModelSpec, d: &Device| ResNet::cifar(s, 3, Shortcut::B, d);
        assert_eq!(n(b), (272_474, 272_474 + 1_568));
    }

    #[test]
    fn weight_keys_follow_torchvision() {
        let d = Device::flex();
        let net = ResNet::resnet50(&spec([3, 224, 224], 1000), &d).unwrap();
        let keys: Vec<String> = net
            .collect(None, None, true)
            .into_iter()
            .map(|t| t.name.clone())
            .collect();
        for k in [
            "conv1.weight",
            "bn1.gamma",
            "layer1.0.conv3.weight",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.beta",
            "layer4.2.bn3.running_var",
            "fc.bias",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing");
        }
        assert!(!keys.iter().any(|x| x.starts_with("layer1.1.downsample")));
    }

    #[test]
    fn imagenet_presets_give_logits() {
        for b in [
            ResNet::resnet18 as Build,
            ResNet::resnet34,
            ResNet::resnet34_a,
            ResNet::resnet34_c,
            ResNet::resnet50,
            ResNet::resnet101,
            ResNet::resnet152,
        ] {
            assert_eq!(logits_shape(b, [3, 224, 224], 1000), [1, 1000]);
        }
    }

    #[test]
    fn cifar_presets_give_logits() {
        for b in [
            ResNet::resnet20 as Build,
            ResNet::resnet32,
            ResNet::resnet44,
            ResNet::resnet56,
            ResNet::resnet110,
        ] {
            assert_eq!(logits_shape(b, [3, 32, 32], 10), [1, 10]);
        }
    }

    #[test]
    fn small_grayscale_inputs_work() {
        assert_eq!(logits_shape(ResNet::resnet18, [1, 32, 32], 10), [1, 10]);
        assert_eq!(logits_shape(ResNet::resnet50, [1, 17, 17], 10), [1, 10]);
        assert_eq!(logits_shape(ResNet::resnet34_a, [1, 28, 28], 10), [1, 10]);
        assert_eq!(logits_shape(ResNet::resnet20, [1, 8, 8], 10), [1, 10]);
    }

    #[test]
    fn too_small_inputs_are_errors() {
        let d = Device::flex();
        for (b, input) in [
            (ResNet::resnet18 as Build, [3, 16, 16]),
            (ResNet::resnet50, [3, 224, 16]),
            (ResNet::resnet20, [3, 2, 2]),
            (ResNet::resnet20, [0, 32, 32]),
        ] {
            assert!(matches!(
                b(&spec(input, 10), &d),
                Err(ModelError::BadInput { .. })
            ));
        }
    }

    #[test]
    fn option_a_subsamples_and_zero_pads() {
        let d = Device::flex();
        let x = Tensor::<4>::random([2, 3, 5, 5], Distribution::Default, &d);
        let y = shortcut(&None, x.clone(), 2, 8);
        assert_eq!(y.dims(), [2, 8, 3, 3]);
        let kept = y.clone().slice(s![.., 0..3, .., ..]);
        kept.into_data()
            .assert_eq(&x.slice(s![.., .., ..;2, ..;2]).into_data(), true);
        let pad = y
            .slice(s![.., 3.., .., ..])
            .abs()
            .sum()
            .into_scalar::<f32>();
        assert_eq!(pad, 0.0);
    }
}
