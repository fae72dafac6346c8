//! Inception v4, Inception-ResNet v1 and Inception-ResNet v2 (Szegedy, Ioffe, Vanhoucke &
//! Alemi, "Inception-v4, Inception-ResNet and the impact of residual connections on
//! learning", AAAI 2017), all on 3x299x299.
//!
//! Inception v4 and Inception-ResNet v2 follow timm's `inception_v4` and
//! `inception_resnet_v2` (themselves ports of the TensorFlow-slim models whose ImageNet
//! weights they carry): same modules, channel widths, field names and `Sequential` indices
//! (`features.6.branch1.0.conv`, `mixed_5b.branch3.1.conv`, `repeat_1.19.conv2d`,
//! `last_linear`, `classif`), batch norm eps 0.001, and timm's parameter counts. Two places
//! where TensorFlow-slim departs from the paper are kept, since the weights depend on them:
//! Inception-ResNet v2's stem ends in slim's `Mixed_5b` module instead of the paper's
//! Figure 3 stem, and its blocks are repeated 10/20/10 times (the paper's Figure 15 shows
//! 5/10/5) with a final 1x1 convolution to 1536 channels.
//!
//! Inception-ResNet v1 has no timm model. It is built from the paper's figures with the same
//! block code and naming as v2: the Figure 14 stem (ending in a 3x3/2 convolution to 256
//! channels, `conv2d_4b`), 5 Inception-ResNet-A (Figure 10), Reduction-A with (k, l, m, n) =
//! (192, 192, 256, 384) (Table 1), 10 Inception-ResNet-B (Figure 11), Reduction-B
//! (Figure 12), 5 Inception-ResNet-C (Figure 13), average pooling over 1792 channels.
//!
//! Residual branches end in a linear 1x1 convolution (with bias, no batch norm) and are scaled
//! before the addition, as Section 3.3 of the paper recommends: by 0.17, 0.10 and 0.20 in the
//! A, B and C blocks (TensorFlow-slim's and timm's factors; the paper gives 0.1 to 0.3). As in
//! slim, the last C block is linear: scale 1 and no ReLU after the addition. Dropout 0.2
//! (keep probability 0.8, as in the paper) precedes the classifier of all three; timm
//! defaults to none, which changes no weight. Initialisation is Burn's default, which is
//! PyTorch's, as in timm.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, MaxPool2d};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::inception::{BasicConv2d, chain, check_sides, global_pool, line_conv, max_pool};
use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, add, concat, flatten, record, relu};

/// A square convolution + BN + ReLU.
fn conv(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> BasicConv2d {
    BasicConv2d::new(c_in, c_out, k, s, p, device)
}

/// A 1x`n` (`wide`) or `n`x1 convolution + BN + ReLU that keeps the grid.
fn line(c_in: usize, c_out: usize, n: usize, wide: bool, device: &Device) -> BasicConv2d {
    line_conv(c_in, c_out, n, wide, None, device)
}

/// The 3x3 stride-1 average pooling of the Inception branches; padding is not counted, as in
/// TensorFlow and timm.
fn avg_pool_3x3() -> AvgPool2d {
    AvgPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_count_include_pad(false)
        .init()
}

/// 3x3/2 max pooling without padding, the grid reduction of every network here.
fn reduce_pool() -> MaxPool2d {
    max_pool(3, 2, 0, false)
}

/// Multiplies a residual branch by its scale, recorded as a `Scale` layer.
fn scale(x: Tensor<4>, s: f64) -> Tensor<4> {
    record("Scale", 0, 0, x.mul_scalar(s))
}

/// The spatial side after the stem and both grid reductions of every network here (the same
/// chain of valid 3x3 windows: /2, -2, /2, -2, /2, /2, /2), or `None` below 75.
fn side(n: usize) -> Option<usize> {
    conv_out(n, 3, 2, 0)
        .and_then(|n| conv_out(n, 3, 1, 0))
        .and_then(|n| conv_out(n, 3, 2, 0))
        .and_then(|n| conv_out(n, 3, 1, 0))
        .and_then(|n| conv_out(n, 3, 2, 0))
        .and_then(|n| conv_out(n, 3, 2, 0))
        .and_then(|n| conv_out(n, 3, 2, 0))
}

// ---------------------------------------------------------------------------------------------
// Inception v4 modules (timm's names)
// ---------------------------------------------------------------------------------------------

/// Stem part: 3x3/2 max pooling ‖ 3x3/2 conv 96 (Figure 3).
#[derive(Module, Debug)]
pub struct Mixed3a {
    /// 3x3/2 max pooling.
    pub maxpool: MaxPool2d,
    /// 3x3/2, 96.
    pub conv: BasicConv2d,
}

impl Layer<4> for Mixed3a {
    /// # Shapes
    /// `[N, 64, H, W]` → `[N, 160, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        concat(vec![self.maxpool.run(x.clone()), self.conv.run(x)])
    }
}

/// Stem part: two towers ending in valid 3x3 convs of 96 channels each (Figure 3).
#[derive(Module, Debug)]
pub struct Mixed4a {
    /// 1x1 64 → 3x3 96.
    pub branch0: Vec<BasicConv2d>,
    /// 1x1 64 → 1x7 64 → 7x1 64 → 3x3 96.
    pub branch1: Vec<BasicConv2d>,
}

impl Layer<4> for Mixed4a {
    /// # Shapes
    /// `[N, 160, H, W]` → `[N, 192, H - 2, W - 2]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        concat(vec![
            chain(&self.branch0, x.clone()),
            chain(&self.branch1, x),
        ])
    }
}

/// Stem part: 3x3/2 conv 192 ‖ 3x3/2 max pooling (Figure 3).
#[derive(Module, Debug)]
pub struct Mixed5a {
    /// 3x3/2, 192.
    pub conv: BasicConv2d,
    /// 3x3/2 max pooling.
    pub maxpool: MaxPool2d,
}

impl Layer<4> for Mixed5a {
    /// # Shapes
    /// `[N, 192, H, W]` → `[N, 384, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        concat(vec![self.conv.run(x.clone()), self.maxpool.run(x)])
    }
}

/// Inception-A, the 35x35 module of Inception v4 (Figure 4).
#[derive(Module, Debug)]
pub struct InceptionA {
    /// 1x1, 96.
    pub branch0: BasicConv2d,
    /// 1x1 64 → 3x3 96.
    pub branch1: Vec<BasicConv2d>,
    /// 1x1 64 → 3x3 96 → 3x3 96.
    pub branch2: Vec<BasicConv2d>,
    /// 3x3 average pooling → 1x1 96.
    pub branch3: (AvgPool2d, BasicConv2d),
}

impl InceptionA {
    fn new(device: &Device) -> Self {
        Self {
            branch0: conv(384, 96, 1, 1, 0, device),
            branch1: vec![
                conv(384, 64, 1, 1, 0, device),
                conv(64, 96, 3, 1, 1, device),
            ],
            branch2: vec![
                conv(384, 64, 1, 1, 0, device),
                conv(64, 96, 3, 1, 1, device),
                conv(96, 96, 3, 1, 1, device),
            ],
            branch3: (avg_pool_3x3(), conv(384, 96, 1, 1, 0, device)),
        }
    }
}

impl Layer<4> for InceptionA {
    /// # Shapes
    /// `[N, 384, H, W]` → `[N, 384, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        let b2 = chain(&self.branch2, x.clone());
        let b3 = self.branch3.1.run(self.branch3.0.run(x));
        concat(vec![b0, b1, b2, b3])
    }
}

/// Reduction-A (Figure 7), 35→17, with the (k, l, m, n) filter counts of Table 1: shared by
/// Inception v4 (192, 224, 256, 384) and both Inception-ResNets (`mixed_6a`).
#[derive(Module, Debug)]
pub struct ReductionA {
    /// 3x3/2, n.
    pub branch0: BasicConv2d,
    /// 1x1 k → 3x3 l → 3x3/2 m.
    pub branch1: Vec<BasicConv2d>,
    /// 3x3/2 max pooling.
    pub branch2: MaxPool2d,
}

impl ReductionA {
    /// On `c_in` channels; outputs `c_in + m + n`.
    fn new(c_in: usize, [k, l, m, n]: [usize; 4], device: &Device) -> Self {
        Self {
            branch0: conv(c_in, n, 3, 2, 0, device),
            branch1: vec![
                conv(c_in, k, 1, 1, 0, device),
                conv(k, l, 3, 1, 1, device),
                conv(l, m, 3, 2, 0, device),
            ],
            branch2: reduce_pool(),
        }
    }
}

impl Layer<4> for ReductionA {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_in + m + n, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        concat(vec![b0, b1, self.branch2.run(x)])
    }
}

/// Inception-B, the 17x17 module of Inception v4 (Figure 5).
#[derive(Module, Debug)]
pub struct InceptionB {
    /// 1x1, 384.
    pub branch0: BasicConv2d,
    /// 1x1 192 → 1x7 224 → 7x1 256.
    pub branch1: Vec<BasicConv2d>,
    /// 1x1 192 → 7x1 192 → 1x7 224 → 7x1 224 → 1x7 256.
    pub branch2: Vec<BasicConv2d>,
    /// 3x3 average pooling → 1x1 128.
    pub branch3: (AvgPool2d, BasicConv2d),
}

impl InceptionB {
    fn new(device: &Device) -> Self {
        Self {
            branch0: conv(1024, 384, 1, 1, 0, device),
            branch1: vec![
                conv(1024, 192, 1, 1, 0, device),
                line(192, 224, 7, true, device),
                line(224, 256, 7, false, device),
            ],
            branch2: vec![
                conv(1024, 192, 1, 1, 0, device),
                line(192, 192, 7, false, device),
                line(192, 224, 7, true, device),
                line(224, 224, 7, false, device),
                line(224, 256, 7, true, device),
            ],
            branch3: (avg_pool_3x3(), conv(1024, 128, 1, 1, 0, device)),
        }
    }
}

impl Layer<4> for InceptionB {
    /// # Shapes
    /// `[N, 1024, H, W]` → `[N, 1024, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        let b2 = chain(&self.branch2, x.clone());
        let b3 = self.branch3.1.run(self.branch3.0.run(x));
        concat(vec![b0, b1, b2, b3])
    }
}

/// Reduction-B of Inception v4 (Figure 8), 17→8.
#[derive(Module, Debug)]
pub struct ReductionB {
    /// 1x1 192 → 3x3/2 192.
    pub branch0: Vec<BasicConv2d>,
    /// 1x1 256 → 1x7 256 → 7x1 320 → 3x3/2 320.
    pub branch1: Vec<BasicConv2d>,
    /// 3x3/2 max pooling.
    pub branch2: MaxPool2d,
}

impl ReductionB {
    fn new(device: &Device) -> Self {
        Self {
            branch0: vec![
                conv(1024, 192, 1, 1, 0, device),
                conv(192, 192, 3, 2, 0, device),
            ],
            branch1: vec![
                conv(1024, 256, 1, 1, 0, device),
                line(256, 256, 7, true, device),
                line(256, 320, 7, false, device),
                conv(320, 320, 3, 2, 0, device),
            ],
            branch2: reduce_pool(),
        }
    }
}

impl Layer<4> for ReductionB {
    /// # Shapes
    /// `[N, 1024, H, W]` → `[N, 1536, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = chain(&self.branch0, x.clone());
        let b1 = chain(&self.branch1, x.clone());
        concat(vec![b0, b1, self.branch2.run(x)])
    }
}

/// Inception-C, the 8x8 module of Inception v4 (Figure 6), with its split 1x3 / 3x1 outputs.
#[derive(Module, Debug)]
pub struct InceptionC {
    /// 1x1, 256.
    pub branch0: BasicConv2d,
    /// 1x1, 384.
    pub branch1_0: BasicConv2d,
    /// 1x3, 256 (on `branch1_0`).
    pub branch1_1a: BasicConv2d,
    /// 3x1, 256 (on `branch1_0`).
    pub branch1_1b: BasicConv2d,
    /// 1x1, 384.
    pub branch2_0: BasicConv2d,
    /// 3x1, 448.
    pub branch2_1: BasicConv2d,
    /// 1x3, 512.
    pub branch2_2: BasicConv2d,
    /// 1x3, 256 (on `branch2_2`).
    pub branch2_3a: BasicConv2d,
    /// 3x1, 256 (on `branch2_2`).
    pub branch2_3b: BasicConv2d,
    /// 3x3 average pooling → 1x1 256.
    pub branch3: (AvgPool2d, BasicConv2d),
}

impl InceptionC {
    fn new(device: &Device) -> Self {
        Self {
            branch0: conv(1536, 256, 1, 1, 0, device),
            branch1_0: conv(1536, 384, 1, 1, 0, device),
            branch1_1a: line(384, 256, 3, true, device),
            branch1_1b: line(384, 256, 3, false, device),
            branch2_0: conv(1536, 384, 1, 1, 0, device),
            branch2_1: line(384, 448, 3, false, device),
            branch2_2: line(448, 512, 3, true, device),
            branch2_3a: line(512, 256, 3, true, device),
            branch2_3b: line(512, 256, 3, false, device),
            branch3: (avg_pool_3x3(), conv(1536, 256, 1, 1, 0, device)),
        }
    }
}

impl Layer<4> for InceptionC {
    /// # Shapes
    /// `[N, 1536, H, W]` → `[N, 1536, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = self.branch1_0.run(x.clone());
        let b1 = concat(vec![
            self.branch1_1a.run(b1.clone()),
            self.branch1_1b.run(b1),
        ]);
        let b2 = self.branch2_0.run(x.clone());
        let b2 = self.branch2_2.run(self.branch2_1.run(b2));
        let b2 = concat(vec![
            self.branch2_3a.run(b2.clone()),
            self.branch2_3b.run(b2),
        ]);
        let b3 = self.branch3.1.run(self.branch3.0.run(x));
        concat(vec![b0, b1, b2, b3])
    }
}

/// One entry of Inception v4's `features` sequence (timm's `nn.Sequential`); the variant name
/// is not part of the weight keys.
// A few per model, built once: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum V4Layer {
    /// A stem convolution.
    Conv(BasicConv2d),
    /// Stem: pooling ‖ conv.
    Mixed3a(Mixed3a),
    /// Stem: two conv towers.
    Mixed4a(Mixed4a),
    /// Stem: conv ‖ pooling.
    Mixed5a(Mixed5a),
    /// 35x35 module.
    InceptionA(InceptionA),
    /// 35→17 reduction.
    ReductionA(ReductionA),
    /// 17x17 module.
    InceptionB(InceptionB),
    /// 17→8 reduction.
    ReductionB(ReductionB),
    /// 8x8 module.
    InceptionC(InceptionC),
}

impl Layer<4> for V4Layer {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C', H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            V4Layer::Conv(m) => m.run(x),
            V4Layer::Mixed3a(m) => m.run(x),
            V4Layer::Mixed4a(m) => m.run(x),
            V4Layer::Mixed5a(m) => m.run(x),
            V4Layer::InceptionA(m) => m.run(x),
            V4Layer::ReductionA(m) => m.run(x),
            V4Layer::InceptionB(m) => m.run(x),
            V4Layer::ReductionB(m) => m.run(x),
            V4Layer::InceptionC(m) => m.run(x),
        }
    }
}

/// Inception v4 (Figure 9) with timm's layout: `features` (stem, 4 x Inception-A,
/// Reduction-A, 7 x Inception-B, Reduction-B, 3 x Inception-C), global average pooling,
/// dropout, `last_linear`.
#[derive(Module, Debug)]
pub struct InceptionV4 {
    /// The 22 feature stages, indexed as in timm.
    pub features: Vec<V4Layer>,
    /// Global average pooling.
    pub global_pool: AdaptiveAvgPool2d,
    /// Dropout 0.2 (keep 0.8).
    pub head_drop: Dropout,
    /// 1536 → classes.
    pub last_linear: Linear,
}

impl InceptionV4 {
    /// Inception v4 for `spec`; needs at least 75x75 input.
    // Named like timm's constructor, as the registry's presets are.
    #[allow(clippy::self_named_constructors)]
    pub fn inception_v4(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        check_sides(spec, side, "Inception v4 needs at least 75x75")?;
        let mut features = vec![
            V4Layer::Conv(conv(spec.in_channels, 32, 3, 2, 0, device)),
            V4Layer::Conv(conv(32, 32, 3, 1, 0, device)),
            V4Layer::Conv(conv(32, 64, 3, 1, 1, device)),
            V4Layer::Mixed3a(Mixed3a {
                maxpool: reduce_pool(),
                conv: conv(64, 96, 3, 2, 0, device),
            }),
            V4Layer::Mixed4a(Mixed4a {
                branch0: vec![
                    conv(160, 64, 1, 1, 0, device),
                    conv(64, 96, 3, 1, 0, device),
                ],
                branch1: vec![
                    conv(160, 64, 1, 1, 0, device),
                    line(64, 64, 7, true, device),
                    line(64, 64, 7, false, device),
                    conv(64, 96, 3, 1, 0, device),
                ],
            }),
            V4Layer::Mixed5a(Mixed5a {
                conv: conv(192, 192, 3, 2, 0, device),
                maxpool: reduce_pool(),
            }),
        ];
        features.extend((0..4).map(|_| V4Layer::InceptionA(InceptionA::new(device))));
        let reduction_a = ReductionA::new(384, [192, 224, 256, 384], device);
        features.push(V4Layer::ReductionA(reduction_a));
        features.extend((0..7).map(|_| V4Layer::InceptionB(InceptionB::new(device))));
        features.push(V4Layer::ReductionB(ReductionB::new(device)));
        features.extend((0..3).map(|_| V4Layer::InceptionC(InceptionC::new(device))));
        Ok(Self {
            features,
            global_pool: global_pool(),
            head_drop: DropoutConfig::new(0.2).init(),
            last_linear: LinearConfig::new(1536, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 299, 299]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base (timm's `features`): `[N, C, 299, 299]` → `[N, 1536, 8, 8]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features.iter().fold(x, |x, layer| layer.run(x))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.head_drop.run(flatten(self.global_pool.run(x)));
        self.last_linear.run(x)
    }
}

// ---------------------------------------------------------------------------------------------
// Inception-ResNet modules (timm's names)
// ---------------------------------------------------------------------------------------------

/// The residual branches' final linear 1x1 convolution (with bias, no batch norm).
fn up(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [1, 1]).init(device)
}

/// `relu?(x + scale · up(branches))`, the residual merge of every Inception-ResNet block.
fn residual(x: Tensor<4>, branches: Tensor<4>, up: &Conv2d, s: f64, act: bool) -> Tensor<4> {
    let y = add(x, scale(up.run(branches), s));
    if act { relu(y) } else { y }
}

/// Inception-ResNet v2's last stem module (TensorFlow-slim's `Mixed_5b`, timm's `Mixed_5b`):
/// an Inception-A-like module from 192 to 320 channels.
#[derive(Module, Debug)]
pub struct Mixed5b {
    /// 1x1, 96.
    pub branch0: BasicConv2d,
    /// 1x1 48 → 5x5 64.
    pub branch1: Vec<BasicConv2d>,
    /// 1x1 64 → 3x3 96 → 3x3 96.
    pub branch2: Vec<BasicConv2d>,
    /// 3x3 average pooling → 1x1 64.
    pub branch3: (AvgPool2d, BasicConv2d),
}

impl Mixed5b {
    fn new(device: &Device) -> Self {
        Self {
            branch0: conv(192, 96, 1, 1, 0, device),
            branch1: vec![
                conv(192, 48, 1, 1, 0, device),
                conv(48, 64, 5, 1, 2, device),
            ],
            branch2: vec![
                conv(192, 64, 1, 1, 0, device),
                conv(64, 96, 3, 1, 1, device),
                conv(96, 96, 3, 1, 1, device),
            ],
            branch3: (avg_pool_3x3(), conv(192, 64, 1, 1, 0, device)),
        }
    }
}

impl Layer<4> for Mixed5b {
    /// # Shapes
    /// `[N, 192, H, W]` → `[N, 320, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        let b2 = chain(&self.branch2, x.clone());
        let b3 = self.branch3.1.run(self.branch3.0.run(x));
        concat(vec![b0, b1, b2, b3])
    }
}

/// Inception-ResNet-A, the 35x35 residual block (Figure 10 for v1, 16 for v2; timm's
/// `Block35`).
#[derive(Module, Debug)]
pub struct Block35 {
    /// 1x1.
    pub branch0: BasicConv2d,
    /// 1x1 → 3x3.
    pub branch1: Vec<BasicConv2d>,
    /// 1x1 → 3x3 → 3x3.
    pub branch2: Vec<BasicConv2d>,
    /// Linear 1x1 back to the block's width.
    pub conv2d: Conv2d,
    /// Residual scale.
    pub scale: f64,
}

impl Block35 {
    /// On `c` channels; `w` = `[branch0, branch1 (1x1, 3x3), branch2 (1x1, 3x3, 3x3)]`.
    fn new(c: usize, w: [usize; 6], scale: f64, device: &Device) -> Self {
        Self {
            branch0: conv(c, w[0], 1, 1, 0, device),
            branch1: vec![
                conv(c, w[1], 1, 1, 0, device),
                conv(w[1], w[2], 3, 1, 1, device),
            ],
            branch2: vec![
                conv(c, w[3], 1, 1, 0, device),
                conv(w[3], w[4], 3, 1, 1, device),
                conv(w[4], w[5], 3, 1, 1, device),
            ],
            conv2d: up(w[0] + w[2] + w[5], c, device),
            scale,
        }
    }
}

impl Layer<4> for Block35 {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        let b2 = chain(&self.branch2, x.clone());
        residual(x, concat(vec![b0, b1, b2]), &self.conv2d, self.scale, true)
    }
}

/// Inception-ResNet-B, the 17x17 residual block (Figure 11 / 17; timm's `Block17`).
#[derive(Module, Debug)]
pub struct Block17 {
    /// 1x1.
    pub branch0: BasicConv2d,
    /// 1x1 → 1x7 → 7x1.
    pub branch1: Vec<BasicConv2d>,
    /// Linear 1x1 back to the block's width.
    pub conv2d: Conv2d,
    /// Residual scale.
    pub scale: f64,
}

impl Block17 {
    /// On `c` channels; `w` = `[branch0, branch1 (1x1, 1x7, 7x1)]`.
    fn new(c: usize, w: [usize; 4], scale: f64, device: &Device) -> Self {
        Self {
            branch0: conv(c, w[0], 1, 1, 0, device),
            branch1: vec![
                conv(c, w[1], 1, 1, 0, device),
                line(w[1], w[2], 7, true, device),
                line(w[2], w[3], 7, false, device),
            ],
            conv2d: up(w[0] + w[3], c, device),
            scale,
        }
    }
}

impl Layer<4> for Block17 {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        residual(x, concat(vec![b0, b1]), &self.conv2d, self.scale, true)
    }
}

/// Inception-ResNet-C, the 8x8 residual block (Figure 13 / 19; timm's `Block8`).
#[derive(Module, Debug)]
pub struct Block8 {
    /// 1x1.
    pub branch0: BasicConv2d,
    /// 1x1 → 1x3 → 3x1.
    pub branch1: Vec<BasicConv2d>,
    /// Linear 1x1 back to the block's width.
    pub conv2d: Conv2d,
    /// Residual scale.
    pub scale: f64,
    /// Whether a ReLU follows the addition (not in the network's last block).
    pub relu: bool,
}

impl Block8 {
    /// On `c` channels; `w` = `[branch0, branch1 (1x1, 1x3, 3x1)]`.
    fn new(c: usize, w: [usize; 4], scale: f64, relu: bool, device: &Device) -> Self {
        Self {
            branch0: conv(c, w[0], 1, 1, 0, device),
            branch1: vec![
                conv(c, w[1], 1, 1, 0, device),
                line(w[1], w[2], 3, true, device),
                line(w[2], w[3], 3, false, device),
            ],
            conv2d: up(w[0] + w[3], c, device),
            scale,
            relu,
        }
    }
}

impl Layer<4> for Block8 {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = self.branch0.run(x.clone());
        let b1 = chain(&self.branch1, x.clone());
        residual(x, concat(vec![b0, b1]), &self.conv2d, self.scale, self.relu)
    }
}

/// Reduction-B of the Inception-ResNets (Figure 12 / 18; timm's `Mixed_7a`), 17→8.
#[derive(Module, Debug)]
pub struct Mixed7a {
    /// 1x1 256 → 3x3/2.
    pub branch0: Vec<BasicConv2d>,
    /// 1x1 256 → 3x3/2.
    pub branch1: Vec<BasicConv2d>,
    /// 1x1 256 → 3x3 → 3x3/2.
    pub branch2: Vec<BasicConv2d>,
    /// 3x3/2 max pooling.
    pub branch3: MaxPool2d,
}

impl Mixed7a {
    /// On `c_in` channels; `w` = `[branch0 3x3, branch1 3x3, branch2 3x3, branch2 3x3/2]`,
    /// every tower starting with a 1x1 to 256.
    fn new(c_in: usize, w: [usize; 4], device: &Device) -> Self {
        Self {
            branch0: vec![
                conv(c_in, 256, 1, 1, 0, device),
                conv(256, w[0], 3, 2, 0, device),
            ],
            branch1: vec![
                conv(c_in, 256, 1, 1, 0, device),
                conv(256, w[1], 3, 2, 0, device),
            ],
            branch2: vec![
                conv(c_in, 256, 1, 1, 0, device),
                conv(256, w[2], 3, 1, 1, device),
                conv(w[2], w[3], 3, 2, 0, device),
            ],
            branch3: reduce_pool(),
        }
    }
}

impl Layer<4> for Mixed7a {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_in + w0 + w1 + w3, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b0 = chain(&self.branch0, x.clone());
        let b1 = chain(&self.branch1, x.clone());
        let b2 = chain(&self.branch2, x.clone());
        concat(vec![b0, b1, b2, self.branch3.run(x)])
    }
}

/// Inception-ResNet v1 and v2 (Figure 15): stem, Inception-ResNet-A blocks (`repeat`),
/// Reduction-A (`mixed_6a`), Inception-ResNet-B blocks (`repeat_1`), Reduction-B
/// (`mixed_7a`), Inception-ResNet-C blocks (`repeat_2` and the linear last one, `block8`),
/// global average pooling, dropout, classifier (`classif`). Names as in timm's v2.
#[derive(Module, Debug)]
pub struct InceptionResNet {
    /// 3x3/2, 32.
    pub conv2d_1a: BasicConv2d,
    /// 3x3, 32.
    pub conv2d_2a: BasicConv2d,
    /// 3x3 padded, 64.
    pub conv2d_2b: BasicConv2d,
    /// 3x3/2 max pooling.
    pub maxpool_3a: MaxPool2d,
    /// 1x1, 80.
    pub conv2d_3b: BasicConv2d,
    /// 3x3, 192.
    pub conv2d_4a: BasicConv2d,
    /// v1: 3x3/2, 256 (the end of the Figure 14 stem).
    pub conv2d_4b: Option<BasicConv2d>,
    /// v2: 3x3/2 max pooling.
    pub maxpool_5a: Option<MaxPool2d>,
    /// v2: the slim stem's last module, to 320 channels.
    pub mixed_5b: Option<Mixed5b>,
    /// Inception-ResNet-A blocks, 35x35.
    pub repeat: Vec<Block35>,
    /// Reduction-A, 35→17.
    pub mixed_6a: ReductionA,
    /// Inception-ResNet-B blocks, 17x17.
    pub repeat_1: Vec<Block17>,
    /// Reduction-B, 17→8.
    pub mixed_7a: Mixed7a,
    /// Inception-ResNet-C blocks but the last, 8x8.
    pub repeat_2: Vec<Block8>,
    /// The last Inception-ResNet-C block: scale 1, no ReLU.
    pub block8: Block8,
    /// v2: 1x1 to 1536 channels.
    pub conv2d_7b: Option<BasicConv2d>,
    /// Global average pooling.
    pub global_pool: AdaptiveAvgPool2d,
    /// Dropout 0.2 (keep 0.8).
    pub head_drop: Dropout,
    /// Features → classes.
    pub classif: Linear,
}

/// Where Inception-ResNet v1 and v2 differ: widths, block counts, stem end and head.
struct Variant {
    /// For error messages.
    name: &'static str,
    /// Channels at 35x35, 17x17 and 8x8.
    widths: [usize; 3],
    /// Numbers of A, B and C blocks (the last C block included).
    blocks: [usize; 3],
    /// Block35 branch widths.
    block35: [usize; 6],
    /// Reduction-A (k, l, m, n).
    reduction_a: [usize; 4],
    /// Block17 branch widths.
    block17: [usize; 4],
    /// Reduction-B (`Mixed7a`) widths.
    reduction_b: [usize; 4],
    /// Block8 branch widths.
    block8: [usize; 4],
    /// TensorFlow-slim's v2 stem end (`maxpool_5a`, `mixed_5b`) and 1x1 head conv to 1536
    /// (`conv2d_7b`), instead of the paper's v1 stem end (`conv2d_4b`).
    slim_v2: bool,
}

/// Inception-ResNet v1 from the paper: Figures 10-14 and Table 1.
const V1: Variant = Variant {
    name: "Inception-ResNet v1",
    widths: [256, 896, 1792],
    blocks: [5, 10, 5],
    block35: [32, 32, 32, 32, 32, 32],
    reduction_a: [192, 192, 256, 384],
    block17: [128, 128, 128, 128],
    reduction_b: [384, 256, 256, 256],
    block8: [192, 192, 192, 192],
    slim_v2: false,
};

/// Inception-ResNet v2 as in TensorFlow-slim and timm.
const V2: Variant = Variant {
    name: "Inception-ResNet v2",
    widths: [320, 1088, 2080],
    blocks: [10, 20, 10],
    block35: [32, 32, 32, 32, 48, 64],
    reduction_a: [256, 256, 384, 384],
    block17: [192, 128, 160, 192],
    reduction_b: [384, 288, 288, 320],
    block8: [192, 192, 224, 256],
    slim_v2: true,
};

impl InceptionResNet {
    /// Inception-ResNet v1 from the paper's figures (5 A, 10 B, 5 C blocks; 1792 features);
    /// needs at least 75x75 input.
    pub fn inception_resnet_v1(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, &V1, device)
    }

    /// Inception-ResNet v2 as in timm (10 A, 20 B, 10 C blocks; 1536 features); needs at
    /// least 75x75 input.
    pub fn inception_resnet_v2(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, &V2, device)
    }

    fn new(spec: &ModelSpec, v: &Variant, device: &Device) -> Result<Self, ModelError> {
        check_sides(spec, side, &format!("{} needs at least 75x75", v.name))?;
        let [a, b, c] = v.widths;
        let [n_a, n_b, n_c] = v.blocks;
        let features = if v.slim_v2 { 1536 } else { c };
        Ok(Self {
            conv2d_1a: conv(spec.in_channels, 32, 3, 2, 0, device),
            conv2d_2a: conv(32, 32, 3, 1, 0, device),
            conv2d_2b: conv(32, 64, 3, 1, 1, device),
            maxpool_3a: reduce_pool(),
            conv2d_3b: conv(64, 80, 1, 1, 0, device),
            conv2d_4a: conv(80, 192, 3, 1, 0, device),
            conv2d_4b: (!v.slim_v2).then(|| conv(192, a, 3, 2, 0, device)),
            maxpool_5a: v.slim_v2.then(reduce_pool),
            mixed_5b: v.slim_v2.then(|| Mixed5b::new(device)),
            repeat: (0..n_a)
                .map(|_| Block35::new(a, v.block35, 0.17, device))
                .collect(),
            mixed_6a: ReductionA::new(a, v.reduction_a, device),
            repeat_1: (0..n_b)
                .map(|_| Block17::new(b, v.block17, 0.10, device))
                .collect(),
            mixed_7a: Mixed7a::new(b, v.reduction_b, device),
            repeat_2: (1..n_c)
                .map(|_| Block8::new(c, v.block8, 0.20, true, device))
                .collect(),
            block8: Block8::new(c, v.block8, 1.0, false, device),
            conv2d_7b: v.slim_v2.then(|| conv(c, 1536, 1, 1, 0, device)),
            global_pool: global_pool(),
            head_drop: DropoutConfig::new(0.2).init(),
            classif: LinearConfig::new(features, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 299, 299]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.head_drop.run(flatten(self.global_pool.run(x)));
        self.classif.run(x)
    }

    /// The convolutional base: `[N, C, 299, 299]` → `[N, 1536 (v2: 1792), 8, 8]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self
            .conv2d_2b
            .run(self.conv2d_2a.run(self.conv2d_1a.run(x)));
        let x = self.conv2d_3b.run(self.maxpool_3a.run(x));
        let mut x = self.conv2d_4a.run(x);
        if let Some(conv) = &self.conv2d_4b {
            x = conv.run(x);
        }
        if let Some(pool) = &self.maxpool_5a {
            x = pool.run(x);
        }
        if let Some(mixed) = &self.mixed_5b {
            x = mixed.run(x);
        }
        let x = self.repeat.iter().fold(x, |x, b| b.run(x));
        let x = self.mixed_6a.run(x);
        let x = self.repeat_1.iter().fold(x, |x, b| b.run(x));
        let x = self.mixed_7a.run(x);
        let x = self.repeat_2.iter().fold(x, |x, b| b.run(x));
        let mut x = self.block8.run(x);
        if let Some(conv) = &self.conv2d_7b {
            x = conv.run(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::inception::tests::{assert_keys, logits_dims, spec, torch_count};

    #[test]
    fn inception_v4_matches_timm() {
        let d = Device::flex();
        // timm 1.0 `inception_v4` at 1000 classes: 42,679,816 parameters in 449 tensors. Burn's
        // `num_params()` also counts batch norm's running mean and variance (2 x 31,584).
        let m = InceptionV4::inception_v4(&spec("inception-v4", 3, 299, 1000), &d).unwrap();
        assert_eq!(torch_count(&m), (42_679_816, 449));
        assert_eq!(m.num_params(), 42_679_816 + 2 * 31_584);
        assert_keys(
            &m,
            &[
                "features.0.conv.weight",
                "features.3.conv.conv.weight",
                "features.4.branch1.3.bn.beta",
                "features.6.branch3.1.conv.weight",
                "features.10.branch1.2.conv.weight",
                "features.17.branch2.4.conv.weight",
                "features.18.branch1.3.conv.weight",
                "features.21.branch2_3b.bn.gamma",
                "last_linear.weight",
            ],
        );
        let m = m.valid();
        assert_eq!(logits_dims(|x| m.forward(x), 3, 299), [1, 1000]);
    }

    #[test]
    fn inception_resnet_v2_matches_timm() {
        let d = Device::flex();
        // timm 1.0 `inception_resnet_v2` at 1000 classes: 55,843,464 parameters in 694
        // tensors; `num_params()` adds 2 x 30,272 running statistics.
        let s = spec("inception-resnet-v2", 3, 299, 1000);
        let m = InceptionResNet::inception_resnet_v2(&s, &d).unwrap();
        assert_eq!(torch_count(&m), (55_843_464, 694));
        assert_eq!(m.num_params(), 55_843_464 + 2 * 30_272);
        assert_keys(
            &m,
            &[
                "conv2d_1a.conv.weight",
                "mixed_5b.branch3.1.conv.weight",
                "repeat.9.branch2.2.bn.beta",
                "repeat.0.conv2d.bias",
                "mixed_6a.branch1.2.conv.weight",
                "repeat_1.19.conv2d.weight",
                "mixed_7a.branch2.2.conv.weight",
                "repeat_2.8.branch1.2.conv.weight",
                "block8.conv2d.weight",
                "conv2d_7b.bn.gamma",
                "classif.bias",
            ],
        );
        let m = m.valid();
        assert_eq!(logits_dims(|x| m.forward(x), 3, 299), [1, 1000]);
    }

    #[test]
    fn inception_resnet_v1_follows_the_paper() {
        let d = Device::flex();
        // No reference implementation: counted by hand from the paper's Figures 10-14 and
        // Table 1, every conv bias-free with BN (weight + bias) except the residual 1x1s, which
        // have a bias and no BN: stem 615,552; Inception-ResNet-A 77,440 (x5); Reduction-A
        // 1,710,080; Inception-ResNet-B 690,048 (x10); Reduction-B 3,346,176;
        // Inception-ResNet-C 1,600,768 (x5); FC 1792 → 1000: 1,793,000. Total 22,756,328 in
        // 363 tensors; `num_params()` adds 2 x 13,520 running statistics.
        let s = spec("inception-resnet-v1", 3, 299, 1000);
        let m = InceptionResNet::inception_resnet_v1(&s, &d).unwrap();
        assert_eq!(torch_count(&m), (22_756_328, 363));
        assert_eq!(m.num_params(), 22_756_328 + 2 * 13_520);
        assert_keys(
            &m,
            &[
                "conv2d_4b.conv.weight",
                "repeat.4.conv2d.weight",
                "classif.weight",
            ],
        );
        let m = m.valid();
        assert_eq!(logits_dims(|x| m.forward(x), 3, 299), [1, 1000]);
    }

    #[test]
    fn small_grey_input_and_too_small_input() {
        let d = Device::flex();
        // 75x75 is the smallest input the valid 3x3 windows fit: 37, 35, 17, 15, 7, 3, 1.
        let s = spec("inception-resnet-v1", 1, 75, 10);
        let m = InceptionResNet::inception_resnet_v1(&s, &d)
            .unwrap()
            .valid();
        assert_eq!(logits_dims(|x| m.forward(x), 1, 75), [1, 10]);
        let s = spec("x", 1, 74, 10);
        assert!(matches!(
            InceptionV4::inception_v4(&s, &d),
            Err(ModelError::BadInput { .. })
        ));
        assert!(matches!(
            InceptionResNet::inception_resnet_v1(&s, &d),
            Err(ModelError::BadInput { .. })
        ));
        assert!(matches!(
            InceptionResNet::inception_resnet_v2(&s, &d),
            Err(ModelError::BadInput { .. })
        ));
    }
}
