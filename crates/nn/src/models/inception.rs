//! The Inception networks without residual connections:
//!
//! - GoogLeNet / Inception v1: Szegedy et al., "Going deeper with convolutions", CVPR 2015;
//! - BN-Inception / Inception v2: Ioffe & Szegedy, "Batch normalization: accelerating deep
//!   network training by reducing internal covariate shift", ICML 2015 (appendix, Figure 5);
//! - Inception v3: Szegedy et al., "Rethinking the Inception architecture for computer
//!   vision", CVPR 2016.
//!
//! GoogLeNet and Inception v3 mirror torchvision's modules: field names, nesting and
//! `Vec`/tuple indices follow their `state_dict` keys (`inception3a.branch4.1.conv`,
//! `aux1.fc1`, `Mixed_5b.branch1x1.conv`, `AuxLogits.conv0.conv`), so PyTorch weights load by
//! name. Pools that torchvision calls functionally are parameter-free fields here, which adds
//! no key.
//!
//! Weight init: torchvision draws these two networks' conv and linear weights from a normal
//! truncated to `[-2, 2]` (absolute bounds) with std 0.01 (GoogLeNet) or 0.1 (Inception v3;
//! 0.01 and 0.001 for the auxiliary head's 5x5 conv and linear). Those bounds lie 20 or more
//! standard deviations out, so the plain normal used here draws the same distribution for all
//! practical purposes. Linear biases keep PyTorch's default uniform init, as in torchvision;
//! batch norm starts at weight 1, bias 0. BN-Inception, which torchvision does not have, uses
//! Burn's defaults, which are PyTorch's.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};

use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, concat, conv_bn_relu, flatten, relu};

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// torchvision's `BasicConv2d`: convolution without bias → batch norm (eps 0.001) → ReLU.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution, without bias.
    pub conv: Conv2d,
    /// Batch normalisation, eps 0.001 as in TensorFlow's Inception models.
    pub bn: BatchNorm,
}

impl BasicConv2d {
    /// A square `k`x`k` convolution with stride `s` and padding `p`, PyTorch's default init.
    pub fn new(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> Self {
        Self::rect(c_in, c_out, [k, k], s, [p, p], None, device)
    }

    /// A `[kh, kw]` convolution with stride `s` and padding `[ph, pw]`; weights drawn from
    /// `N(0, std²)` when `std` is given, else PyTorch's default init.
    pub fn rect(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 2],
        s: usize,
        padding: [usize; 2],
        std: Option<f64>,
        device: &Device,
    ) -> Self {
        let [ph, pw] = padding;
        let mut config = Conv2dConfig::new([c_in, c_out], kernel)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
            .with_bias(false);
        if let Some(std) = std {
            config = config.with_initializer(Initializer::Normal { mean: 0.0, std });
        }
        Self {
            conv: config.init(device),
            bn: BatchNormConfig::new(c_out).with_epsilon(1e-3).init(device),
        }
    }
}

impl Layer<4> for BasicConv2d {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn_relu(&self.conv, &self.bn, x)
    }
}

/// Runs `x` through a chain of [`BasicConv2d`]s (an `nn.Sequential` branch).
pub(crate) fn chain(convs: &[BasicConv2d], x: Tensor<4>) -> Tensor<4> {
    convs.iter().fold(x, |x, c| c.run(x))
}

/// A [`BasicConv2d`] with a 1x`n` (`wide`) or `n`x1 kernel, padded to keep the grid (`n` odd);
/// `std` as in [`BasicConv2d::rect`].
pub(crate) fn line_conv(
    c_in: usize,
    c_out: usize,
    n: usize,
    wide: bool,
    std: Option<f64>,
    device: &Device,
) -> BasicConv2d {
    let (kernel, padding) = if wide {
        ([1, n], [0, n / 2])
    } else {
        ([n, 1], [n / 2, 0])
    };
    BasicConv2d::rect(c_in, c_out, kernel, 1, padding, std, device)
}

/// A linear layer with weights from `N(0, std²)` and PyTorch's default uniform bias.
pub(crate) fn linear_normal(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    let mut fc = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    let bound = 1.0 / (d_in as f64).sqrt();
    fc.bias = Some(
        Initializer::Uniform {
            min: -bound,
            max: bound,
        }
        .init([d_out], device),
    );
    fc
}

/// Output length of a ceil-mode pooling window of size `k`, stride `s`, padding `p` on `n`
/// (PyTorch's and Burn's rule: the last window must start inside the input or its left
/// padding), or `None` when no window fits.
pub(crate) fn pool_out_ceil(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = n + 2 * p;
    if s == 0 || padded + s - 1 < k {
        return None;
    }
    let out = (padded + s - 1 - k) / s + 1;
    Some(if (out - 1) * s >= n + p { out - 1 } else { out })
}

/// `Err(BadInput)` unless `side` maps both input sides to `Some`; `what` says the minimum.
pub(crate) fn check_sides(
    spec: &ModelSpec,
    side: impl Fn(usize) -> Option<usize>,
    what: &str,
) -> Result<(), ModelError> {
    let ok = |n: usize| n > 0 && side(n).is_some_and(|m| m > 0);
    if ok(spec.input_size[0]) && ok(spec.input_size[1]) {
        Ok(())
    } else {
        Err(super::too_small(spec, what))
    }
}

/// A `k`x`k` max pooling with stride `s`, padding `p`, optionally in ceil mode.
pub(crate) fn max_pool(k: usize, s: usize, p: usize, ceil: bool) -> MaxPool2d {
    MaxPool2dConfig::new([k, k])
        .with_strides([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_ceil_mode(ceil)
        .init()
}

fn avg_pool(k: usize, s: usize, p: usize) -> AvgPool2d {
    AvgPool2dConfig::new([k, k])
        .with_strides([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init()
}

/// Global average pooling to 1x1.
pub(crate) fn global_pool() -> AdaptiveAvgPool2d {
    AdaptiveAvgPool2dConfig::new([1, 1]).init()
}

// ---------------------------------------------------------------------------------------------
// GoogLeNet
// ---------------------------------------------------------------------------------------------

/// torchvision draws GoogLeNet's conv and linear weights with std 0.01.
const GOOGLENET_STD: f64 = 0.01;

fn g_conv(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> BasicConv2d {
    BasicConv2d::rect(c_in, c_out, [k, k], s, [p, p], Some(GOOGLENET_STD), device)
}

/// GoogLeNet's Inception module (torchvision's `Inception`): four branches concatenated.
///
/// torchvision's second reduced branch uses a 3x3 convolution where the paper has 5x5 (a
/// known torchvision quirk, pytorch/vision#906, kept for its weights and its 6,624,904
/// parameters).
#[derive(Module, Debug)]
pub struct Inception {
    /// 1x1 convolution.
    pub branch1: BasicConv2d,
    /// 1x1 reduction → 3x3.
    pub branch2: Vec<BasicConv2d>,
    /// 1x1 reduction → 3x3 (the paper's 5x5 tower).
    pub branch3: Vec<BasicConv2d>,
    /// 3x3 max pooling (stride 1) → 1x1 projection; indices `0` and `1` as in torchvision.
    pub branch4: (MaxPool2d, BasicConv2d),
}

impl Inception {
    /// `widths` = `[ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj]` (the paper's table).
    pub fn new(c_in: usize, widths: [usize; 6], device: &Device) -> Self {
        let [c1, r3, c3, r5, c5, proj] = widths;
        Self {
            branch1: g_conv(c_in, c1, 1, 1, 0, device),
            branch2: vec![
                g_conv(c_in, r3, 1, 1, 0, device),
                g_conv(r3, c3, 3, 1, 1, device),
            ],
            branch3: vec![
                g_conv(c_in, r5, 1, 1, 0, device),
                g_conv(r5, c5, 3, 1, 1, device),
            ],
            branch4: (max_pool(3, 1, 1, true), g_conv(c_in, proj, 1, 1, 0, device)),
        }
    }
}

impl Layer<4> for Inception {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1.run(x.clone());
        let b2 = chain(&self.branch2, x.clone());
        let b3 = chain(&self.branch3, x.clone());
        let b4 = self.branch4.1.run(self.branch4.0.run(x));
        concat(vec![b1, b2, b3, b4])
    }
}

/// GoogLeNet's auxiliary classifier (torchvision's `InceptionAux`): average pooling to 4x4 →
/// 1x1 conv 128 → FC 1024 → ReLU → dropout 0.7 → FC classes.
#[derive(Module, Debug)]
pub struct GoogLeNetAux {
    /// Adaptive average pooling to 4x4 (the paper's 5x5/3 pooling on a 14x14 map).
    pub pool: AdaptiveAvgPool2d,
    /// 1x1 convolution to 128 channels.
    pub conv: BasicConv2d,
    /// 2048 → 1024.
    pub fc1: Linear,
    /// 1024 → classes.
    pub fc2: Linear,
    /// Dropout 0.7 before `fc2`.
    pub dropout: Dropout,
}

impl GoogLeNetAux {
    /// A head on `c_in` channels.
    pub fn new(c_in: usize, classes: usize, device: &Device) -> Self {
        Self {
            pool: AdaptiveAvgPool2dConfig::new([4, 4]).init(),
            conv: g_conv(c_in, 128, 1, 1, 0, device),
            fc1: linear_normal(2048, 1024, GOOGLENET_STD, device),
            fc2: linear_normal(1024, classes, GOOGLENET_STD, device),
            dropout: DropoutConfig::new(0.7).init(),
        }
    }

    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = flatten(self.conv.run(self.pool.run(x)));
        let x = self.dropout.run(relu(self.fc1.run(x)));
        self.fc2.run(x)
    }
}

/// GoogLeNet with torchvision's layout: stem, nine Inception modules, optional auxiliary
/// classifiers after `inception4a` and `inception4d`, global average pooling, dropout 0.2, FC.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// 7x7/2, 64 channels.
    pub conv1: BasicConv2d,
    /// 3x3/2 max pooling (ceil mode).
    pub maxpool1: MaxPool2d,
    /// 1x1, 64 channels.
    pub conv2: BasicConv2d,
    /// 3x3, 192 channels.
    pub conv3: BasicConv2d,
    /// 3x3/2 max pooling (ceil mode).
    pub maxpool2: MaxPool2d,
    /// Inception (3a), 256 channels out.
    pub inception3a: Inception,
    /// Inception (3b), 480.
    pub inception3b: Inception,
    /// 3x3/2 max pooling (ceil mode).
    pub maxpool3: MaxPool2d,
    /// Inception (4a), 512.
    pub inception4a: Inception,
    /// Inception (4b), 512.
    pub inception4b: Inception,
    /// Inception (4c), 512.
    pub inception4c: Inception,
    /// Inception (4d), 528.
    pub inception4d: Inception,
    /// Inception (4e), 832.
    pub inception4e: Inception,
    /// 2x2/2 max pooling (ceil mode).
    pub maxpool4: MaxPool2d,
    /// Inception (5a), 832.
    pub inception5a: Inception,
    /// Inception (5b), 1024.
    pub inception5b: Inception,
    /// Auxiliary classifier on `inception4a`'s output.
    pub aux1: Option<GoogLeNetAux>,
    /// Auxiliary classifier on `inception4d`'s output.
    pub aux2: Option<GoogLeNetAux>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout 0.2.
    pub dropout: Dropout,
    /// 1024 → classes.
    pub fc: Linear,
}

impl GoogLeNet {
    /// torchvision's `googlenet()`: with both auxiliary classifiers.
    // Named like torchvision's constructor, as the registry's presets are.
    #[allow(clippy::self_named_constructors)]
    pub fn googlenet(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, true, device)
    }

    /// GoogLeNet with (`aux_logits`) or without the auxiliary classifiers; needs at least
    /// 15x15 input, like torchvision's.
    pub fn new(spec: &ModelSpec, aux_logits: bool, device: &Device) -> Result<Self, ModelError> {
        let side = |n| {
            conv_out(n, 7, 2, 3)
                .and_then(|n| pool_out_ceil(n, 3, 2, 0))
                .and_then(|n| pool_out_ceil(n, 3, 2, 0))
                .and_then(|n| pool_out_ceil(n, 3, 2, 0))
                .and_then(|n| pool_out_ceil(n, 2, 2, 0))
        };
        check_sides(spec, side, "GoogLeNet needs at least 15x15")?;
        let classes = spec.num_classes;
        let inception = |c_in, widths| Inception::new(c_in, widths, device);
        let aux = |c_in| aux_logits.then(|| GoogLeNetAux::new(c_in, classes, device));
        Ok(Self {
            conv1: g_conv(spec.in_channels, 64, 7, 2, 3, device),
            maxpool1: max_pool(3, 2, 0, true),
            conv2: g_conv(64, 64, 1, 1, 0, device),
            conv3: g_conv(64, 192, 3, 1, 1, device),
            maxpool2: max_pool(3, 2, 0, true),
            inception3a: inception(192, [64, 96, 128, 16, 32, 32]),
            inception3b: inception(256, [128, 128, 192, 32, 96, 64]),
            maxpool3: max_pool(3, 2, 0, true),
            inception4a: inception(480, [192, 96, 208, 16, 48, 64]),
            inception4b: inception(512, [160, 112, 224, 24, 64, 64]),
            inception4c: inception(512, [128, 128, 256, 24, 64, 64]),
            inception4d: inception(512, [112, 144, 288, 32, 64, 64]),
            inception4e: inception(528, [256, 160, 320, 32, 128, 128]),
            maxpool4: max_pool(2, 2, 0, true),
            inception5a: inception(832, [256, 160, 320, 32, 128, 128]),
            inception5b: inception(832, [384, 192, 384, 48, 128, 128]),
            aux1: aux(512),
            aux2: aux(528),
            avgpool: global_pool(),
            dropout: DropoutConfig::new(0.2).init(),
            fc: linear_normal(1024, classes, GOOGLENET_STD, device),
        })
    }

    /// Main logits; the auxiliary classifiers are not run.
    ///
    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, 224, 224]` → `[N, 1024, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.trunk(x, false).0
    }

    /// Global average pooling, dropout and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(self.dropout.run(flatten(self.avgpool.run(x))))
    }

    /// Main logits and, when the model has them, the two auxiliary classifiers' logits (in
    /// that order: `aux1` after `inception4a`, `aux2` after `inception4d`). The paper weights
    /// their losses by 0.3 during training and drops them at inference.
    ///
    /// # Shapes
    /// `[N, C, 224, 224]` → (`[N, classes]`, `[N, classes]`, `[N, classes]`)
    pub fn forward_with_aux(
        &self,
        x: Tensor<4>,
    ) -> (Tensor<2>, Option<Tensor<2>>, Option<Tensor<2>>) {
        let (x, aux1, aux2) = self.trunk(x, true);
        (self.forward_head(x), aux1, aux2)
    }

    /// The base's output and, when asked for and present, the auxiliary logits.
    fn trunk(
        &self,
        x: Tensor<4>,
        with_aux: bool,
    ) -> (Tensor<4>, Option<Tensor<2>>, Option<Tensor<2>>) {
        let aux = |head: &Option<GoogLeNetAux>, x: &Tensor<4>| {
            head.as_ref()
                .filter(|_| with_aux)
                .map(|h| h.forward(x.clone()))
        };
        let x = self.maxpool1.run(self.conv1.run(x));
        let x = self.maxpool2.run(self.conv3.run(self.conv2.run(x)));
        let x = self.inception3b.run(self.inception3a.run(x));
        let x = self.inception4a.run(self.maxpool3.run(x));
        let aux1 = aux(&self.aux1, &x);
        let x = self
            .inception4d
            .run(self.inception4c.run(self.inception4b.run(x)));
        let aux2 = aux(&self.aux2, &x);
        let x = self.maxpool4.run(self.inception4e.run(x));
        (self.inception5b.run(self.inception5a.run(x)), aux1, aux2)
    }
}

// ---------------------------------------------------------------------------------------------
// BN-Inception (Inception v2)
// ---------------------------------------------------------------------------------------------

/// The pooling branch of a BN-Inception module (the table's "Pool +proj" column).
#[derive(Module, Debug)]
pub enum PoolBranch {
    /// 3x3 max pooling.
    Max(MaxPool2d),
    /// 3x3 average pooling (padding counted, as in Caffe and PyTorch).
    Avg(AvgPool2d),
}

impl Layer<4> for PoolBranch {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            PoolBranch::Max(p) => p.run(x),
            PoolBranch::Avg(p) => p.run(x),
        }
    }
}

/// What a row of the BN-Inception table puts in the pooling column.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// Average pooling and a 1x1 projection to this many channels.
    Avg(usize),
    /// Max pooling and a 1x1 projection to this many channels.
    Max(usize),
    /// Stride-2 max pooling passed through: the module halves the grid.
    Reduce,
}

/// A BN-Inception module: the GoogLeNet module with the 5x5 tower replaced by two stacked
/// 3x3s ("double 3x3"), batch norm after every convolution, and in the two grid-reducing
/// modules (3c, 4e) stride 2 in the last conv of each tower, no 1x1 branch, and a max-pool
/// pass-through.
#[derive(Module, Debug)]
pub struct BnInceptionBlock {
    /// 1x1 convolution; absent in the grid-reducing modules.
    pub branch1: Option<BasicConv2d>,
    /// 1x1 reduction → 3x3.
    pub branch2: Vec<BasicConv2d>,
    /// 1x1 reduction → 3x3 → 3x3.
    pub branch3: Vec<BasicConv2d>,
    /// 3x3 pooling, stride 1 (padding 1) or 2 (TensorFlow "same" padding, which gives the
    /// convolutions' `ceil(H / 2)` and equals Caffe's ceil-mode pooling on even sizes).
    pub pool: PoolBranch,
    /// 1x1 projection after the pooling; absent for the pass-through.
    pub branch4: Option<BasicConv2d>,
}

impl BnInceptionBlock {
    /// `widths` = `[#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3]` (`#1x1` is
    /// ignored when `pool` is [`Pool::Reduce`]).
    fn new(c_in: usize, widths: [usize; 5], pool: Pool, device: &Device) -> Self {
        let [c1, r3, c3, rd, d3] = widths;
        let s = if matches!(pool, Pool::Reduce) { 2 } else { 1 };
        let conv = |i, o, k, s, p| BasicConv2d::new(i, o, k, s, p, device);
        let (pool, proj) = match pool {
            Pool::Avg(p) => (PoolBranch::Avg(avg_pool(3, 1, 1)), Some(p)),
            Pool::Max(p) => (PoolBranch::Max(max_pool(3, 1, 1, false)), Some(p)),
            Pool::Reduce => {
                let same = MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Same)
                    .init();
                (PoolBranch::Max(same), None)
            }
        };
        Self {
            branch1: (s == 1).then(|| conv(c_in, c1, 1, 1, 0)),
            branch2: vec![conv(c_in, r3, 1, 1, 0), conv(r3, c3, 3, s, 1)],
            branch3: vec![
                conv(c_in, rd, 1, 1, 0),
                conv(rd, d3, 3, 1, 1),
                conv(d3, d3, 3, s, 1),
            ],
            pool,
            branch4: proj.map(|p| conv(c_in, p, 1, 1, 0)),
        }
    }
}

impl Layer<4> for BnInceptionBlock {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H, W]`, or `[N, c_out, ⌈H/2⌉, ⌈W/2⌉]` for 3c and 4e
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = Vec::with_capacity(4);
        if let Some(b1) = &self.branch1 {
            out.push(b1.run(x.clone()));
        }
        out.push(chain(&self.branch2, x.clone()));
        out.push(chain(&self.branch3, x.clone()));
        let pooled = self.pool.run(x);
        out.push(match &self.branch4 {
            Some(proj) => proj.run(pooled),
            None => pooled,
        });
        concat(out)
    }
}

/// BN-Inception, the network of the batch-normalisation paper's Figure 5 (3x224x224): a
/// 7x7/2 conv, 1x1 + 3x3 convs, ten Inception modules with double-3x3 towers, global average
/// pooling and the classifier. Batch norm follows every convolution; as in the paper there is
/// no LRN and no dropout. Blocks are named like GoogLeNet's.
///
/// Channel widths are the table's. The table's 4c and 4d rows give "avg + 128" projections
/// but list 576 output channels, which their columns do not add up to (160 + 160 + 160 + 128
/// = 608); this follows the columns, so 4c and 4d output 608 channels and 4e 1056, as does
/// the widely used Caffe BN-Inception model (TensorFlow-slim's `inception_v2` instead uses 96
/// projections, keeping 576). The first layer is an ordinary 7x7 convolution (slim's
/// depthwise-separable first layer is an implementation choice the paper does not describe).
#[derive(Module, Debug)]
pub struct BnInception {
    /// 7x7/2, 64 channels.
    pub conv1: BasicConv2d,
    /// 3x3/2 max pooling (ceil mode).
    pub maxpool1: MaxPool2d,
    /// 1x1, 64 channels (the "#3x3 reduce" of the second row).
    pub conv2: BasicConv2d,
    /// 3x3, 192 channels.
    pub conv3: BasicConv2d,
    /// 3x3/2 max pooling (ceil mode).
    pub maxpool2: MaxPool2d,
    /// Inception (3a), 256 channels out.
    pub inception3a: BnInceptionBlock,
    /// Inception (3b), 320.
    pub inception3b: BnInceptionBlock,
    /// Inception (3c), stride 2, 576.
    pub inception3c: BnInceptionBlock,
    /// Inception (4a), 576.
    pub inception4a: BnInceptionBlock,
    /// Inception (4b), 576.
    pub inception4b: BnInceptionBlock,
    /// Inception (4c), 608.
    pub inception4c: BnInceptionBlock,
    /// Inception (4d), 608.
    pub inception4d: BnInceptionBlock,
    /// Inception (4e), stride 2, 1056.
    pub inception4e: BnInceptionBlock,
    /// Inception (5a), 1024.
    pub inception5a: BnInceptionBlock,
    /// Inception (5b), 1024.
    pub inception5b: BnInceptionBlock,
    /// Global average pooling (the table's 7x7 average pooling at 224x224).
    pub avgpool: AdaptiveAvgPool2d,
    /// 1024 → classes.
    pub fc: Linear,
}

impl BnInception {
    /// BN-Inception (Inception v2) for `spec`; needs at least 7x7 input.
    pub fn inception_v2(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let side = |n| {
            conv_out(n, 7, 2, 3)
                .and_then(|n| pool_out_ceil(n, 3, 2, 0))
                .and_then(|n| pool_out_ceil(n, 3, 2, 0))
                .and_then(|n| conv_out(n, 3, 2, 1))
                .and_then(|n| conv_out(n, 3, 2, 1))
        };
        check_sides(spec, side, "BN-Inception needs at least 7x7")?;
        let block = |c_in, widths, pool| BnInceptionBlock::new(c_in, widths, pool, device);
        Ok(Self {
            conv1: BasicConv2d::new(spec.in_channels, 64, 7, 2, 3, device),
            maxpool1: max_pool(3, 2, 0, true),
            conv2: BasicConv2d::new(64, 64, 1, 1, 0, device),
            conv3: BasicConv2d::new(64, 192, 3, 1, 1, device),
            maxpool2: max_pool(3, 2, 0, true),
            inception3a: block(192, [64, 64, 64, 64, 96], Pool::Avg(32)),
            inception3b: block(256, [64, 64, 96, 64, 96], Pool::Avg(64)),
            inception3c: block(320, [0, 128, 160, 64, 96], Pool::Reduce),
            inception4a: block(576, [224, 64, 96, 96, 128], Pool::Avg(128)),
            inception4b: block(576, [192, 96, 128, 96, 128], Pool::Avg(128)),
            inception4c: block(576, [160, 128, 160, 128, 160], Pool::Avg(128)),
            inception4d: block(608, [96, 128, 192, 160, 192], Pool::Avg(128)),
            inception4e: block(608, [0, 128, 192, 192, 256], Pool::Reduce),
            inception5a: block(1056, [352, 192, 320, 160, 224], Pool::Avg(128)),
            inception5b: block(1024, [352, 192, 320, 192, 224], Pool::Max(128)),
            avgpool: global_pool(),
            fc: LinearConfig::new(1024, spec.num_classes).init(device),
        })
    }

    /// # Shapes
    /// `[N, C, 224, 224]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }

    /// The convolutional base: `[N, C, 224, 224]` → `[N, 1024, 7, 7]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.maxpool1.run(self.conv1.run(x));
        let x = self.maxpool2.run(self.conv3.run(self.conv2.run(x)));
        let x = self.inception3a.run(x);
        let x = self.inception3b.run(x);
        let x = self.inception3c.run(x);
        let x = self.inception4a.run(x);
        let x = self.inception4b.run(x);
        let x = self.inception4c.run(x);
        let x = self.inception4d.run(x);
        let x = self.inception4e.run(x);
        let x = self.inception5a.run(x);
        self.inception5b.run(x)
    }

    /// Global average pooling and the classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.run(flatten(self.avgpool.run(x)))
    }
}

// ---------------------------------------------------------------------------------------------
// Inception v3
// ---------------------------------------------------------------------------------------------

/// torchvision draws Inception v3's conv and linear weights with std 0.1.
const V3_STD: f64 = 0.1;

fn v3_conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    s: usize,
    p: usize,
    device: &Device,
) -> BasicConv2d {
    BasicConv2d::rect(c_in, c_out, [k, k], s, [p, p], Some(V3_STD), device)
}

/// A 1x`n` (`wide`) or `n`x1 Inception v3 convolution.
fn v3_line(c_in: usize, c_out: usize, n: usize, wide: bool, device: &Device) -> BasicConv2d {
    line_conv(c_in, c_out, n, wide, Some(V3_STD), device)
}

/// Inception v3's 35x35 module (torchvision's `InceptionA`, Mixed_5b-5d).
#[derive(Module, Debug)]
pub struct InceptionA {
    /// 1x1, 64.
    pub branch1x1: BasicConv2d,
    /// 1x1, 48.
    pub branch5x5_1: BasicConv2d,
    /// 5x5, 64.
    pub branch5x5_2: BasicConv2d,
    /// 1x1, 64.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3x3, 96.
    pub branch3x3dbl_2: BasicConv2d,
    /// 3x3, 96.
    pub branch3x3dbl_3: BasicConv2d,
    /// 1x1 projection after the average pooling.
    pub branch_pool: BasicConv2d,
    /// 3x3/1 average pooling, padding 1.
    pub pool: AvgPool2d,
}

impl InceptionA {
    /// A module on `c_in` channels with `pool_features` pooling-branch channels.
    pub fn new(c_in: usize, pool_features: usize, device: &Device) -> Self {
        Self {
            branch1x1: v3_conv(c_in, 64, 1, 1, 0, device),
            branch5x5_1: v3_conv(c_in, 48, 1, 1, 0, device),
            branch5x5_2: v3_conv(48, 64, 5, 1, 2, device),
            branch3x3dbl_1: v3_conv(c_in, 64, 1, 1, 0, device),
            branch3x3dbl_2: v3_conv(64, 96, 3, 1, 1, device),
            branch3x3dbl_3: v3_conv(96, 96, 3, 1, 1, device),
            branch_pool: v3_conv(c_in, pool_features, 1, 1, 0, device),
            pool: avg_pool(3, 1, 1),
        }
    }
}

impl Layer<4> for InceptionA {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 224 + pool_features, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.run(x.clone());
        let b5 = self.branch5x5_2.run(self.branch5x5_1.run(x.clone()));
        let b3 = self.branch3x3dbl_1.run(x.clone());
        let b3 = self.branch3x3dbl_3.run(self.branch3x3dbl_2.run(b3));
        let bp = self.branch_pool.run(self.pool.run(x));
        concat(vec![b1, b5, b3, bp])
    }
}

/// Inception v3's 35→17 grid reduction (torchvision's `InceptionB`, Mixed_6a).
#[derive(Module, Debug)]
pub struct InceptionB {
    /// 3x3/2, 384.
    pub branch3x3: BasicConv2d,
    /// 1x1, 64.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3x3, 96.
    pub branch3x3dbl_2: BasicConv2d,
    /// 3x3/2, 96.
    pub branch3x3dbl_3: BasicConv2d,
    /// 3x3/2 max pooling.
    pub pool: MaxPool2d,
}

impl InceptionB {
    /// The reduction on `c_in` channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        Self {
            branch3x3: v3_conv(c_in, 384, 3, 2, 0, device),
            branch3x3dbl_1: v3_conv(c_in, 64, 1, 1, 0, device),
            branch3x3dbl_2: v3_conv(64, 96, 3, 1, 1, device),
            branch3x3dbl_3: v3_conv(96, 96, 3, 2, 0, device),
            pool: max_pool(3, 2, 0, false),
        }
    }
}

impl Layer<4> for InceptionB {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 480 + c_in, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.run(x.clone());
        let bd = self.branch3x3dbl_1.run(x.clone());
        let bd = self.branch3x3dbl_3.run(self.branch3x3dbl_2.run(bd));
        concat(vec![b3, bd, self.pool.run(x)])
    }
}

/// Inception v3's 17x17 module with factorised 7x7s (torchvision's `InceptionC`,
/// Mixed_6b-6e).
#[derive(Module, Debug)]
pub struct InceptionC {
    /// 1x1, 192.
    pub branch1x1: BasicConv2d,
    /// 1x1, c7.
    pub branch7x7_1: BasicConv2d,
    /// 1x7, c7.
    pub branch7x7_2: BasicConv2d,
    /// 7x1, 192.
    pub branch7x7_3: BasicConv2d,
    /// 1x1, c7.
    pub branch7x7dbl_1: BasicConv2d,
    /// 7x1, c7.
    pub branch7x7dbl_2: BasicConv2d,
    /// 1x7, c7.
    pub branch7x7dbl_3: BasicConv2d,
    /// 7x1, c7.
    pub branch7x7dbl_4: BasicConv2d,
    /// 1x7, 192.
    pub branch7x7dbl_5: BasicConv2d,
    /// 1x1 projection after the average pooling, 192.
    pub branch_pool: BasicConv2d,
    /// 3x3/1 average pooling, padding 1.
    pub pool: AvgPool2d,
}

impl InceptionC {
    /// A module on `c_in` channels with `c7` channels inside the 7x7 towers.
    pub fn new(c_in: usize, c7: usize, device: &Device) -> Self {
        Self {
            branch1x1: v3_conv(c_in, 192, 1, 1, 0, device),
            branch7x7_1: v3_conv(c_in, c7, 1, 1, 0, device),
            branch7x7_2: v3_line(c7, c7, 7, true, device),
            branch7x7_3: v3_line(c7, 192, 7, false, device),
            branch7x7dbl_1: v3_conv(c_in, c7, 1, 1, 0, device),
            branch7x7dbl_2: v3_line(c7, c7, 7, false, device),
            branch7x7dbl_3: v3_line(c7, c7, 7, true, device),
            branch7x7dbl_4: v3_line(c7, c7, 7, false, device),
            branch7x7dbl_5: v3_line(c7, 192, 7, true, device),
            branch_pool: v3_conv(c_in, 192, 1, 1, 0, device),
            pool: avg_pool(3, 1, 1),
        }
    }
}

impl Layer<4> for InceptionC {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 768, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.run(x.clone());
        let b7 = self.branch7x7_1.run(x.clone());
        let b7 = self.branch7x7_3.run(self.branch7x7_2.run(b7));
        let bd = self.branch7x7dbl_1.run(x.clone());
        let bd = self.branch7x7dbl_3.run(self.branch7x7dbl_2.run(bd));
        let bd = self.branch7x7dbl_5.run(self.branch7x7dbl_4.run(bd));
        let bp = self.branch_pool.run(self.pool.run(x));
        concat(vec![b1, b7, bd, bp])
    }
}

/// Inception v3's 17→8 grid reduction (torchvision's `InceptionD`, Mixed_7a).
#[derive(Module, Debug)]
pub struct InceptionD {
    /// 1x1, 192.
    pub branch3x3_1: BasicConv2d,
    /// 3x3/2, 320.
    pub branch3x3_2: BasicConv2d,
    /// 1x1, 192.
    pub branch7x7x3_1: BasicConv2d,
    /// 1x7, 192.
    pub branch7x7x3_2: BasicConv2d,
    /// 7x1, 192.
    pub branch7x7x3_3: BasicConv2d,
    /// 3x3/2, 192.
    pub branch7x7x3_4: BasicConv2d,
    /// 3x3/2 max pooling.
    pub pool: MaxPool2d,
}

impl InceptionD {
    /// The reduction on `c_in` channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        Self {
            branch3x3_1: v3_conv(c_in, 192, 1, 1, 0, device),
            branch3x3_2: v3_conv(192, 320, 3, 2, 0, device),
            branch7x7x3_1: v3_conv(c_in, 192, 1, 1, 0, device),
            branch7x7x3_2: v3_line(192, 192, 7, true, device),
            branch7x7x3_3: v3_line(192, 192, 7, false, device),
            branch7x7x3_4: v3_conv(192, 192, 3, 2, 0, device),
            pool: max_pool(3, 2, 0, false),
        }
    }
}

impl Layer<4> for InceptionD {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 512 + c_in, (H - 3) / 2 + 1, (W - 3) / 2 + 1]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3_2.run(self.branch3x3_1.run(x.clone()));
        let b7 = self.branch7x7x3_1.run(x.clone());
        let b7 = self.branch7x7x3_3.run(self.branch7x7x3_2.run(b7));
        let b7 = self.branch7x7x3_4.run(b7);
        concat(vec![b3, b7, self.pool.run(x)])
    }
}

/// Inception v3's 8x8 module with expanded 1x3/3x1 outputs (torchvision's `InceptionE`,
/// Mixed_7b-7c).
#[derive(Module, Debug)]
pub struct InceptionE {
    /// 1x1, 320.
    pub branch1x1: BasicConv2d,
    /// 1x1, 384.
    pub branch3x3_1: BasicConv2d,
    /// 1x3, 384.
    pub branch3x3_2a: BasicConv2d,
    /// 3x1, 384.
    pub branch3x3_2b: BasicConv2d,
    /// 1x1, 448.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3x3, 384.
    pub branch3x3dbl_2: BasicConv2d,
    /// 1x3, 384.
    pub branch3x3dbl_3a: BasicConv2d,
    /// 3x1, 384.
    pub branch3x3dbl_3b: BasicConv2d,
    /// 1x1 projection after the average pooling, 192.
    pub branch_pool: BasicConv2d,
    /// 3x3/1 average pooling, padding 1.
    pub pool: AvgPool2d,
}

impl InceptionE {
    /// A module on `c_in` channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        Self {
            branch1x1: v3_conv(c_in, 320, 1, 1, 0, device),
            branch3x3_1: v3_conv(c_in, 384, 1, 1, 0, device),
            branch3x3_2a: v3_line(384, 384, 3, true, device),
            branch3x3_2b: v3_line(384, 384, 3, false, device),
            branch3x3dbl_1: v3_conv(c_in, 448, 1, 1, 0, device),
            branch3x3dbl_2: v3_conv(448, 384, 3, 1, 1, device),
            branch3x3dbl_3a: v3_line(384, 384, 3, true, device),
            branch3x3dbl_3b: v3_line(384, 384, 3, false, device),
            branch_pool: v3_conv(c_in, 192, 1, 1, 0, device),
            pool: avg_pool(3, 1, 1),
        }
    }
}

impl Layer<4> for InceptionE {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, 2048, H, W]`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.run(x.clone());
        let b3 = self.branch3x3_1.run(x.clone());
        let b3 = concat(vec![
            self.branch3x3_2a.run(b3.clone()),
            self.branch3x3_2b.run(b3),
        ]);
        let bd = self.branch3x3dbl_2.run(self.branch3x3dbl_1.run(x.clone()));
        let bd = concat(vec![
            self.branch3x3dbl_3a.run(bd.clone()),
            self.branch3x3dbl_3b.run(bd),
        ]);
        let bp = self.branch_pool.run(self.pool.run(x));
        concat(vec![b1, b3, bd, bp])
    }
}

/// Inception v3's auxiliary classifier (torchvision's `InceptionAux`): 5x5/3 average pooling
/// → 1x1 conv 128 → 5x5 conv 768 → global average pooling → FC classes.
#[derive(Module, Debug)]
pub struct InceptionAux {
    /// 5x5/3 average pooling (17x17 → 5x5).
    pub pool: AvgPool2d,
    /// 1x1, 128.
    pub conv0: BasicConv2d,
    /// 5x5, 768 (weights std 0.01).
    pub conv1: BasicConv2d,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// 768 → classes (weights std 0.001).
    pub fc: Linear,
}

impl InceptionAux {
    /// A head on `c_in` channels.
    pub fn new(c_in: usize, classes: usize, device: &Device) -> Self {
        Self {
            pool: avg_pool(5, 3, 0),
            conv0: v3_conv(c_in, 128, 1, 1, 0, device),
            conv1: BasicConv2d::rect(128, 768, [5, 5], 1, [0, 0], Some(0.01), device),
            avgpool: global_pool(),
            fc: linear_normal(768, classes, 0.001, device),
        }
    }

    /// # Shapes
    /// `[N, c_in, 17, 17]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv1.run(self.conv0.run(self.pool.run(x)));
        self.fc.run(flatten(self.avgpool.run(x)))
    }
}

pub use v3::InceptionV3;

/// The top-level Inception v3 struct keeps torchvision's TensorFlow-style field names, which
/// Rust's naming lint (and the code `derive(Module)` generates from them) would flag.
#[allow(non_snake_case)]
mod v3 {
    use super::*;

    /// Inception v3 with torchvision's layout and its TensorFlow-derived names
    /// (`Conv2d_1a_3x3`, `Mixed_5b`, `AuxLogits`), 3x299x299. The auxiliary classifier on
    /// `Mixed_6e` is optional.
    #[derive(Module, Debug)]
    pub struct InceptionV3 {
        /// 3x3/2, 32.
        pub Conv2d_1a_3x3: BasicConv2d,
        /// 3x3, 32.
        pub Conv2d_2a_3x3: BasicConv2d,
        /// 3x3 padded, 64.
        pub Conv2d_2b_3x3: BasicConv2d,
        /// 3x3/2 max pooling.
        pub maxpool1: MaxPool2d,
        /// 1x1, 80.
        pub Conv2d_3b_1x1: BasicConv2d,
        /// 3x3, 192.
        pub Conv2d_4a_3x3: BasicConv2d,
        /// 3x3/2 max pooling.
        pub maxpool2: MaxPool2d,
        /// 35x35 module, 256 out.
        pub Mixed_5b: InceptionA,
        /// 35x35 module, 288 out.
        pub Mixed_5c: InceptionA,
        /// 35x35 module, 288 out.
        pub Mixed_5d: InceptionA,
        /// Reduction to 17x17, 768 out.
        pub Mixed_6a: InceptionB,
        /// 17x17 module, c7 = 128.
        pub Mixed_6b: InceptionC,
        /// 17x17 module, c7 = 160.
        pub Mixed_6c: InceptionC,
        /// 17x17 module, c7 = 160.
        pub Mixed_6d: InceptionC,
        /// 17x17 module, c7 = 192.
        pub Mixed_6e: InceptionC,
        /// Auxiliary classifier on `Mixed_6e`'s output.
        pub AuxLogits: Option<InceptionAux>,
        /// Reduction to 8x8, 1280 out.
        pub Mixed_7a: InceptionD,
        /// 8x8 module, 2048 out.
        pub Mixed_7b: InceptionE,
        /// 8x8 module, 2048 out.
        pub Mixed_7c: InceptionE,
        /// Global average pooling.
        pub avgpool: AdaptiveAvgPool2d,
        /// Dropout 0.5.
        pub dropout: Dropout,
        /// 2048 → classes.
        pub fc: Linear,
    }

    impl InceptionV3 {
        /// torchvision's `inception_v3()`: with the auxiliary classifier, which needs the native
        /// 299x299 input (use [`InceptionV3::new`] without it for smaller inputs).
        // Named like torchvision's constructor, as the registry's presets are.
        #[allow(clippy::self_named_constructors)]
        pub fn inception_v3(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
            Self::new(spec, true, device)
        }

        /// Inception v3 with (`aux_logits`) or without the auxiliary classifier. The main
        /// network needs at least 75x75 input (as torchvision's); the auxiliary head needs
        /// 299x299, since its 5x5/3 pooling and 5x5 convolution need the full 17x17 map after
        /// `Mixed_6e` (in torchvision too, where a smaller input fails later, in training).
        pub fn new(
            spec: &ModelSpec,
            aux_logits: bool,
            device: &Device,
        ) -> Result<Self, ModelError> {
            let to_6e = |n| {
                conv_out(n, 3, 2, 0)
                    .and_then(|n| conv_out(n, 3, 1, 0))
                    .and_then(|n| conv_out(n, 3, 2, 0))
                    .and_then(|n| conv_out(n, 3, 1, 0))
                    .and_then(|n| conv_out(n, 3, 2, 0))
                    .and_then(|n| conv_out(n, 3, 2, 0))
            };
            check_sides(
                spec,
                |n| to_6e(n).and_then(|n| conv_out(n, 3, 2, 0)),
                "Inception v3 needs at least 75x75",
            )?;
            if aux_logits {
                let aux = |n| {
                    to_6e(n)
                        .and_then(|n| conv_out(n, 5, 3, 0))
                        .and_then(|n| conv_out(n, 5, 1, 0))
                };
                check_sides(
                    spec,
                    aux,
                    "Inception v3's auxiliary classifier needs at least 299x299 (build without it)",
                )?;
            }
            let classes = spec.num_classes;
            Ok(Self {
                Conv2d_1a_3x3: v3_conv(spec.in_channels, 32, 3, 2, 0, device),
                Conv2d_2a_3x3: v3_conv(32, 32, 3, 1, 0, device),
                Conv2d_2b_3x3: v3_conv(32, 64, 3, 1, 1, device),
                maxpool1: max_pool(3, 2, 0, false),
                Conv2d_3b_1x1: v3_conv(64, 80, 1, 1, 0, device),
                Conv2d_4a_3x3: v3_conv(80, 192, 3, 1, 0, device),
                maxpool2: max_pool(3, 2, 0, false),
                Mixed_5b: InceptionA::new(192, 32, device),
                Mixed_5c: InceptionA::new(256, 64, device),
                Mixed_5d: InceptionA::new(288, 64, device),
                Mixed_6a: InceptionB::new(288, device),
                Mixed_6b: InceptionC::new(768, 128, device),
                Mixed_6c: InceptionC::new(768, 160, device),
                Mixed_6d: InceptionC::new(768, 160, device),
                Mixed_6e: InceptionC::new(768, 192, device),
                AuxLogits: aux_logits.then(|| InceptionAux::new(768, classes, device)),
                Mixed_7a: InceptionD::new(768, device),
                Mixed_7b: InceptionE::new(1280, device),
                Mixed_7c: InceptionE::new(2048, device),
                avgpool: global_pool(),
                dropout: DropoutConfig::new(0.5).init(),
                fc: linear_normal(2048, classes, V3_STD, device),
            })
        }

        /// Main logits; the auxiliary classifier is not run.
        ///
        /// # Shapes
        /// `[N, C, 299, 299]` → `[N, classes]`
        pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
            self.forward_head(self.forward_features(x))
        }

        /// The convolutional base: `[N, C, 299, 299]` → `[N, 2048, 8, 8]`.
        pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
            self.trunk(x, false).0
        }

        /// Global average pooling, dropout and the classifier on top of
        /// [`Self::forward_features`].
        pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
            self.fc.run(flatten(self.dropout.run(self.avgpool.run(x))))
        }

        /// Main logits and, when the model has it, the auxiliary classifier's logits (weighted
        /// 0.4 in torchvision's training recipe; the trainer decides).
        ///
        /// # Shapes
        /// `[N, C, 299, 299]` → (`[N, classes]`, `[N, classes]`)
        pub fn forward_with_aux(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
            let (x, aux) = self.trunk(x, true);
            (self.forward_head(x), aux)
        }

        /// The base's output and, when asked for and present, the auxiliary logits.
        fn trunk(&self, x: Tensor<4>, with_aux: bool) -> (Tensor<4>, Option<Tensor<2>>) {
            let x = self.Conv2d_1a_3x3.run(x);
            let x = self.Conv2d_2b_3x3.run(self.Conv2d_2a_3x3.run(x));
            let x = self.maxpool1.run(x);
            let x = self.Conv2d_4a_3x3.run(self.Conv2d_3b_1x1.run(x));
            let x = self.maxpool2.run(x);
            let x = self.Mixed_5d.run(self.Mixed_5c.run(self.Mixed_5b.run(x)));
            let x = self.Mixed_6a.run(x);
            let x = self.Mixed_6c.run(self.Mixed_6b.run(x));
            let x = self.Mixed_6e.run(self.Mixed_6d.run(x));
            let aux = self
                .AuxLogits
                .as_ref()
                .filter(|_| with_aux)
                .map(|head| head.forward(x.clone()));
            (
                self.Mixed_7c.run(self.Mixed_7b.run(self.Mixed_7a.run(x))),
                aux,
            )
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::store::ModuleSnapshot;
    use burn::tensor::Distribution;

    /// `(name, elements)` of every tensor PyTorch's `parameters()` would list, named as
    /// burn-store names them for PyTorch (enum variants skipped): batch norm's running mean
    /// and variance, which Burn's `num_params()` counts, are left out.
    pub(crate) fn torch_params<M: ModuleSnapshot>(m: &M) -> Vec<(String, usize)> {
        m.collect(None, None, true)
            .into_iter()
            .filter(|t| !t.name.ends_with(".running_mean") && !t.name.ends_with(".running_var"))
            .map(|t| (t.name.clone(), t.shape.num_elements()))
            .collect()
    }

    /// PyTorch's parameter count and tensor count.
    pub(crate) fn torch_count<M: ModuleSnapshot>(m: &M) -> (usize, usize) {
        let p = torch_params(m);
        (p.iter().map(|(_, n)| n).sum(), p.len())
    }

    /// Asserts that every key is among `m`'s parameter names.
    pub(crate) fn assert_keys<M: ModuleSnapshot>(m: &M, keys: &[&str]) {
        let names: Vec<String> = torch_params(m).into_iter().map(|(n, _)| n).collect();
        for key in keys {
            assert!(names.iter().any(|n| n == key), "{key} missing");
        }
    }

    pub(crate) fn spec(name: &str, c: usize, size: usize, classes: usize) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            in_channels: c,
            input_size: [size, size],
            num_classes: classes,
        }
    }

    /// One forward pass in inference mode on a `[1, c, size, size]` input.
    pub(crate) fn logits_dims(
        forward: impl FnOnce(Tensor<4>) -> Tensor<2>,
        c: usize,
        size: usize,
    ) -> [usize; 2] {
        let d = Device::flex();
        let x = Tensor::<4>::random([1, c, size, size], Distribution::Default, &d);
        let y = forward(x);
        let v = y.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        y.dims()
    }

    #[test]
    fn pool_out_ceil_matches_pytorch() {
        // GoogLeNet at 224: 112 → 56 → 28 → 14 → 7 (the 2x2 pool).
        assert_eq!(pool_out_ceil(112, 3, 2, 0), Some(56));
        assert_eq!(pool_out_ceil(14, 2, 2, 0), Some(7));
        // PyTorch allows a kernel one larger than the input at stride 2 in ceil mode.
        assert_eq!(pool_out_ceil(2, 3, 2, 0), Some(1));
        assert_eq!(pool_out_ceil(1, 3, 2, 0), None);
        // The stride-1 branch pooling keeps the size.
        assert_eq!(pool_out_ceil(7, 3, 1, 1), Some(7));
    }

    #[test]
    fn googlenet_counts_match_torchvision() {
        let d = Device::flex();
        let s = spec("googlenet", 3, 224, 1000);
        // torchvision `googlenet(aux_logits=True, init_weights=True)`: 13,004,888 parameters
        // in 187 tensors; with `aux_logits=False` 6,624,904 in 173 (the figure in its weights'
        // metadata). Burn's `num_params()` also counts batch norm's running mean and variance:
        // 2 x 7,536 more with the aux heads, 2 x 7,280 without.
        let m = GoogLeNet::googlenet(&s, &d).unwrap();
        assert_eq!(torch_count(&m), (13_004_888, 187));
        assert_eq!(m.num_params(), 13_004_888 + 2 * 7_536);
        assert_keys(
            &m,
            &[
                "conv1.conv.weight",
                "conv1.bn.gamma",
                "inception3a.branch2.1.conv.weight",
                "inception3a.branch4.1.conv.weight",
                "inception5b.branch4.1.bn.beta",
                "aux1.conv.conv.weight",
                "aux1.fc1.weight",
                "aux2.fc2.bias",
                "fc.weight",
            ],
        );
        let m = GoogLeNet::new(&s, false, &d).unwrap();
        assert_eq!(torch_count(&m), (6_624_904, 173));
        assert_eq!(m.num_params(), 6_624_904 + 2 * 7_280);
    }

    #[test]
    fn googlenet_gives_main_and_aux_logits() {
        let m = GoogLeNet::googlenet(&spec("googlenet", 3, 224, 1000), &Device::flex())
            .unwrap()
            .valid();
        let d = Device::flex();
        let x = Tensor::<4>::random([1, 3, 224, 224], Distribution::Default, &d);
        let (y, a1, a2) = m.forward_with_aux(x);
        assert_eq!(y.dims(), [1, 1000]);
        assert_eq!(a1.unwrap().dims(), [1, 1000]);
        assert_eq!(a2.unwrap().dims(), [1, 1000]);
    }

    #[test]
    fn googlenet_takes_small_grey_input() {
        // 32x32: the aux heads' adaptive pooling upsamples the 2x2 map of 4a to 4x4.
        let s = spec("googlenet", 1, 32, 10);
        let m = GoogLeNet::googlenet(&s, &Device::flex()).unwrap().valid();
        assert_eq!(logits_dims(|x| m.forward(x), 1, 32), [1, 10]);
        let m2 = GoogLeNet::googlenet(&spec("googlenet", 1, 15, 10), &Device::flex()).unwrap();
        let (_, a1, _) = m2.valid().forward_with_aux(Tensor::<4>::random(
            [1, 1, 15, 15],
            Distribution::Default,
            &Device::flex(),
        ));
        assert_eq!(a1.unwrap().dims(), [1, 10]);
        assert!(matches!(
            GoogLeNet::googlenet(&spec("googlenet", 1, 14, 10), &Device::flex()),
            Err(ModelError::BadInput { .. })
        ));
    }

    #[test]
    fn bn_inception_count_and_shapes() {
        let d = Device::flex();
        // Counted from the paper's Figure 5 table (widths as in `BnInception`'s doc) with a
        // bias-free conv + BN (weight, bias) for every convolution and a 1024 → 1000
        // classifier: conv weights 10,240,192 + BN 2 x 10,016 + FC 1,025,000 = 11,285,224.
        //
        // The seed quotes 11,264,111. That figure is odd, so it cannot be this architecture
        // at 1000 classes: all of its terms are even. None of the variants tried reproduces
        // it either (conv biases on/off, BN affine on/off or scale-free as in TF-slim, 4c/4d
        // projections 128 (the table) or 96 (TF-slim), plain or depthwise-separable first
        // layer, 1000 or 1001 classes, FC bias on/off); the nearest, 11,264,192, has no BN
        // parameters at all and no FC bias. We assert the architecture's own count.
        let m = BnInception::inception_v2(&spec("inception-v2", 3, 224, 1000), &d).unwrap();
        assert_eq!(torch_count(&m).0, 11_285_224);
        // Burn's `num_params()` adds the running mean and variance.
        assert_eq!(m.num_params(), 11_285_224 + 2 * 10_016);
        let m = m.valid();
        assert_eq!(logits_dims(|x| m.forward(x), 3, 224), [1, 1000]);
        // 7x7 is the smallest input every pooling window fits; 27x27 has odd grids at 3c and 4e,
        // where the stride-2 convolutions and the "same" pooling must still agree.
        for size in [7, 27] {
            let small = spec("inception-v2", 1, size, 10);
            let m = BnInception::inception_v2(&small, &d).unwrap().valid();
            assert_eq!(logits_dims(|x| m.forward(x), 1, size), [1, 10]);
        }
        assert!(matches!(
            BnInception::inception_v2(&spec("inception-v2", 1, 6, 10), &d),
            Err(ModelError::BadInput { .. })
        ));
    }

    #[test]
    fn inception_v3_counts_match_torchvision() {
        let d = Device::flex();
        let s = spec("inception-v3", 3, 299, 1000);
        // torchvision `inception_v3(init_weights=False)`: 27,161,264 in 292 tensors with
        // `AuxLogits`, 23,834,568 in 284 without (the figure in its weights' metadata).
        //
        // The Xception paper's Table 3 gives Inception V3 23,626,728 parameters "on ImageNet
        // (1000 classes, no fully-connected layers)". That is the network without the
        // auxiliary head (which alone has 3,326,696) and with the 2048 → 1000 classifier
        // (without it the count would be 21,785,568): 207,840 (0.9 %) below torchvision's
        // 23,834,568 and 190,624 below Keras' `InceptionV3()` trainable count, 23,817,352
        // (Keras batch norm has no scale: -17,216). "No fully-connected layers" means none of
        // the optional hidden FC layers the paper tried on JFT, not no classifier. The last
        // 0.2 M (< 1 %) matches no whole layer of the published architecture; it presumably
        // reflects Google's internal implementation and is not reproduced.
        let m = InceptionV3::inception_v3(&s, &d).unwrap();
        assert_eq!(torch_count(&m), (27_161_264, 292));
        assert_eq!(m.num_params(), 27_161_264 + 2 * 18_112);
        assert_keys(
            &m,
            &[
                "Conv2d_1a_3x3.conv.weight",
                "Mixed_5b.branch1x1.conv.weight",
                "Mixed_6e.branch7x7dbl_5.bn.gamma",
                "Mixed_7c.branch3x3dbl_3b.conv.weight",
                "AuxLogits.conv0.conv.weight",
                "AuxLogits.fc.bias",
                "fc.weight",
            ],
        );
        let m = InceptionV3::new(&s, false, &d).unwrap();
        assert_eq!(torch_count(&m), (23_834_568, 284));
        assert_eq!(m.num_params(), 23_834_568 + 2 * 17_216);
    }

    #[test]
    fn inception_v3_gives_logits_and_refuses_small_input() {
        let d = Device::flex();
        let m = InceptionV3::inception_v3(&spec("inception-v3", 3, 299, 1000), &d)
            .unwrap()
            .valid();
        let x = Tensor::<4>::random([1, 3, 299, 299], Distribution::Default, &d);
        let (y, aux) = m.forward_with_aux(x);
        assert_eq!(y.dims(), [1, 1000]);
        assert_eq!(aux.unwrap().dims(), [1, 1000]);
        // 75x75 is torchvision's minimum; the aux head needs 299x299.
        let small = spec("inception-v3", 1, 75, 10);
        let m = InceptionV3::new(&small, false, &d).unwrap().valid();
        assert_eq!(logits_dims(|x| m.forward(x), 1, 75), [1, 10]);
        for (s, aux) in [(74, false), (298, true)] {
            assert!(matches!(
                InceptionV3::new(&spec("inception-v3", 1, s, 10), aux, &d),
                Err(ModelError::BadInput { .. })
            ));
        }
        assert!(InceptionV3::inception_v3(&spec("inception-v3", 1, 299, 10), &d).is_ok());
    }
}
