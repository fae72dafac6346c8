//! AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
//! Neural Networks", NIPS 2012), in three presets of one [`AlexNet`] struct:
//!
//! - [`alexnet_paper`]: the network of the paper as seed 004 tabulates it (3x227x227, five
//!   convolutions 96-256-384-384-256, local response normalisation after the first two,
//!   overlapping 3x3/2 max pooling, fc 4096-4096-N with dropout 0.5): 62,378,344 parameters.
//! - [`alexnet_grouped`]: the same with the paper's two-GPU split kept as grouped convolutions
//!   (conv2, conv4 and conv5 see only their own GPU's half of the channels), as in Caffe's
//!   `bvlc_alexnet`: 60,965,224 parameters.
//! - [`alexnet`]: torchvision's single-tower variant (64-192-384-256-256 channels, no LRN,
//!   adaptive 6x6 average pooling, dropout before the fully connected layers), key for key
//!   identical to torchvision's `alexnet().state_dict()`: 61,100,840 parameters.
//!
//! The layers live in `Vec`s of the small enums [`FeatureLayer`] and [`ClassifierLayer`], so
//! that indices match torchvision's `nn.Sequential` (`features.3.weight`, `classifier.1.bias`,
//! …) even where the Sequential holds parameter-free layers; VGG reuses them.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig, LocalResponseNorm,
    LocalResponseNormConfig, PaddingConfig2d, Relu,
};
use burn::tensor::{Device, Tensor};

use crate::layers::conv_out;
use crate::spec::{ModelError, ModelSpec};
use crate::trace::{Layer, conv_bn_relu, conv_relu, flatten, relu};

/// One entry of a torchvision-style `features` Sequential (image → feature map).
#[derive(Module, Debug)]
pub enum FeatureLayer {
    /// A convolution.
    Conv(Conv2d),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// ReLU (no parameters; it keeps the Sequential's index).
    Relu(Relu),
    /// Local response normalisation (no parameters).
    Lrn(LocalResponseNorm),
    /// Max pooling (no parameters).
    MaxPool(MaxPool2d),
}

impl Layer<4> for FeatureLayer {
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C', H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            FeatureLayer::Conv(l) => l.run(x),
            FeatureLayer::BatchNorm(l) => l.run(x),
            FeatureLayer::Relu(_) => relu(x),
            FeatureLayer::Lrn(l) => l.run(x),
            FeatureLayer::MaxPool(l) => l.run(x),
        }
    }
}

/// One entry of a torchvision-style `classifier` Sequential (features → logits).
#[derive(Module, Debug)]
pub enum ClassifierLayer {
    /// A fully connected layer.
    Linear(Linear),
    /// ReLU (no parameters; it keeps the Sequential's index).
    Relu(Relu),
    /// Dropout (no parameters; identity in inference mode).
    Dropout(Dropout),
}

impl Layer<2> for ClassifierLayer {
    /// # Shapes
    /// `[N, D]` → `[N, D']`
    fn run(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            ClassifierLayer::Linear(l) => l.run(x),
            ClassifierLayer::Relu(_) => relu(x),
            ClassifierLayer::Dropout(l) => l.run(x),
        }
    }
}

/// Runs a `features` Sequential, a convolution with the batch norm and ReLU after it as one
/// step ([`conv_relu`], [`conv_bn_relu`]: one kernel call in inference on the CPU).
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C', H', W']`
pub fn run_features(layers: &[FeatureLayer], mut x: Tensor<4>) -> Tensor<4> {
    use FeatureLayer::{BatchNorm, Conv, Relu};
    let mut rest = layers;
    loop {
        (x, rest) = match rest {
            [Conv(c), BatchNorm(b), Relu(_), tail @ ..] => (conv_bn_relu(c, b, x), tail),
            [Conv(c), Relu(_), tail @ ..] => (conv_relu(c, x), tail),
            [layer, tail @ ..] => (layer.run(x), tail),
            [] => return x,
        };
    }
}

/// Runs a `classifier` Sequential.
///
/// # Shapes
/// `[N, D]` → `[N, classes]`
pub fn run_classifier(layers: &[ClassifierLayer], x: Tensor<2>) -> Tensor<2> {
    layers.iter().fold(x, |x, l| l.run(x))
}

/// The paper's response normalisation: `b = a / (k + α Σ a²)^β` over `n = 5` neighbouring
/// channels with `k = 2`, `α = 1e-4`, `β = 0.75`. Burn (like PyTorch and Caffe) divides `α` by
/// `n`, so the paper's `α` is passed as `n α = 5e-4` (VGG's Caffe models write it the same way).
pub fn paper_lrn() -> LocalResponseNorm {
    const N: usize = 5;
    LocalResponseNormConfig::new(N)
        .with_alpha(1e-4 * N as f64)
        .with_beta(0.75)
        .with_k(2.0)
        .init()
}

/// Which AlexNet to build; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlexNetVariant {
    /// The paper's network on one device (seed 004's table).
    Paper,
    /// The paper's network with conv2, conv4 and conv5 split in two groups (two GPUs).
    Grouped,
    /// torchvision's `alexnet` (the "one weird trick" single-tower layout).
    Torchvision,
}

/// AlexNet: convolutional `features`, an optional adaptive average pool and a fully connected
/// `classifier`, laid out as torchvision's `state_dict`.
#[derive(Module, Debug)]
pub struct AlexNet {
    /// Convolutions, ReLUs, LRNs and max pools.
    pub features: Vec<FeatureLayer>,
    /// torchvision's adaptive 6x6 average pool (absent in the paper's variants, whose first
    /// fully connected layer takes the pooled map at whatever size it has).
    pub avgpool: Option<AdaptiveAvgPool2d>,
    /// Dropout, fully connected layers and ReLUs.
    pub classifier: Vec<ClassifierLayer>,
}

/// A convolution as one Sequential entry.
fn conv(
    [c_in, c_out]: [usize; 2],
    k: usize,
    s: usize,
    p: usize,
    groups: usize,
    device: &Device,
) -> FeatureLayer {
    FeatureLayer::Conv(
        Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_groups(groups)
            .init(device),
    )
}

/// A fully connected layer as one Sequential entry.
fn linear(d_in: usize, d_out: usize, device: &Device) -> ClassifierLayer {
    ClassifierLayer::Linear(LinearConfig::new(d_in, d_out).init(device))
}

fn dropout() -> ClassifierLayer {
    ClassifierLayer::Dropout(DropoutConfig::new(0.5).init())
}

impl AlexNet {
    /// Builds `variant` for `spec`. The paper's variants need at least 67x67 input and
    /// torchvision's at least 63x63 (three 3x3/2 pools must fit).
    pub fn new(
        variant: AlexNetVariant,
        spec: &ModelSpec,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let torchvision = variant == AlexNetVariant::Torchvision;
        // (channels, conv1 padding) and the groups of conv2, conv4, conv5.
        let (c, p1) = if torchvision {
            ([64, 192, 384, 256, 256], 2)
        } else {
            ([96, 256, 384, 384, 256], 0)
        };
        let g = if variant == AlexNetVariant::Grouped {
            2
        } else {
            1
        };

        // Spatial size after the features: conv1 11/4, pool, conv2 (same), pool, conv3-5
        // (same), pool; every pool is 3x3 with stride 2.
        let side = |w: usize| {
            conv_out(w, 11, 4, p1)
                .and_then(|w| conv_out(w, 3, 2, 0))
                .and_then(|w| conv_out(w, 3, 2, 0))
                .and_then(|w| conv_out(w, 3, 2, 0))
        };
        let (h, w) = match (side(spec.input_size[0]), side(spec.input_size[1])) {
            (Some(h), Some(w)) => (h, w),
            _ => {
                let min = if torchvision { "63x63" } else { "67x67" };
                return Err(super::too_small(
                    spec,
                    &format!("AlexNet needs at least {min}"),
                ));
            }
        };

        let pool =
            || FeatureLayer::MaxPool(MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init());
        let relu = || FeatureLayer::Relu(Relu::new());
        let lrn = || FeatureLayer::Lrn(paper_lrn());
        let mut features = vec![conv([spec.in_channels, c[0]], 11, 4, p1, 1, device), relu()];
        if !torchvision {
            features.push(lrn());
        }
        features.extend([pool(), conv([c[0], c[1]], 5, 1, 2, g, device), relu()]);
        if !torchvision {
            features.push(lrn());
        }
        features.extend([
            pool(),
            conv([c[1], c[2]], 3, 1, 1, 1, device),
            relu(),
            conv([c[2], c[3]], 3, 1, 1, g, device),
            relu(),
            conv([c[3], c[4]], 3, 1, 1, g, device),
            relu(),
            pool(),
        ]);

        let fc_relu = || ClassifierLayer::Relu(Relu::new());
        let n = spec.num_classes;
        let (avgpool, classifier) = if torchvision {
            // torchvision: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear.
            let classifier = vec![
                dropout(),
                linear(c[4] * 6 * 6, 4096, device),
                fc_relu(),
                dropout(),
                linear(4096, 4096, device),
                fc_relu(),
                linear(4096, n, device),
            ];
            (
                Some(AdaptiveAvgPool2dConfig::new([6, 6]).init()),
                classifier,
            )
        } else {
            // The paper drops out the outputs of the first two fully connected layers
            // (fc6 → ReLU → dropout → fc7 → ReLU → dropout → fc8), as Caffe's reference does.
            let classifier = vec![
                linear(c[4] * h * w, 4096, device),
                fc_relu(),
                dropout(),
                linear(4096, 4096, device),
                fc_relu(),
                dropout(),
                linear(4096, n, device),
            ];
            (None, classifier)
        };
        Ok(Self {
            features,
            avgpool,
            classifier,
        })
    }

    /// The convolutional base (torchvision's `features`, before the adaptive pool).
    ///
    /// # Shapes
    /// `[N, C, 227, 227]` → `[N, 256, 6, 6]`
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        run_features(&self.features, x)
    }

    /// The classifier on top of [`Self::forward_features`].
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = match &self.avgpool {
            Some(pool) => pool.run(x),
            None => x,
        };
        run_classifier(&self.classifier, flatten(x))
    }

    /// Class logits.
    ///
    /// # Shapes
    /// `[N, C, 227, 227]` (torchvision's: `[N, C, 224, 224]`) → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_head(self.forward_features(x))
    }
}

/// The paper's AlexNet on one device (seed 004), native input 3x227x227.
pub fn alexnet_paper(spec: &ModelSpec, device: &Device) -> Result<AlexNet, ModelError> {
    AlexNet::new(AlexNetVariant::Paper, spec, device)
}

/// The paper's two-GPU AlexNet as grouped convolutions (Caffe's `bvlc_alexnet`), native input
/// 3x227x227.
pub fn alexnet_grouped(spec: &ModelSpec, device: &Device) -> Result<AlexNet, ModelError> {
    AlexNet::new(AlexNetVariant::Grouped, spec, device)
}

/// torchvision's `alexnet`, native input 3x224x224.
pub fn alexnet(spec: &ModelSpec, device: &Device) -> Result<AlexNet, ModelError> {
    AlexNet::new(AlexNetVariant::Torchvision, spec, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn spec(input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec::new("alexnet", input, classes)
    }

    fn logits_shape(net: &AlexNet, input: [usize; 3], device: &Device) -> [usize; 2] {
        let [c, h, w] = input;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, device);
        net.valid().forward(x).dims()
    }

    #[test]
    fn paper_alexnet_has_the_seed_count_and_shape() {
        let device = Device::flex();
        let net = alexnet_paper(&spec([3, 227, 227], 1000), &device).unwrap();
        // Seed 004's table: conv 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992,
        // fc 37,752,832 + 16,781,312 + 4,097,000.
        assert_eq!(net.num_params(), 62_378_344);
        assert_eq!(logits_shape(&net, [3, 227, 227], &device), [1, 1000]);
    }

    #[test]
    fn grouped_alexnet_matches_caffe() {
        let device = Device::flex();
        let net = alexnet_grouped(&spec([3, 227, 227], 1000), &device).unwrap();
        // Halving the input channels of conv2 (5*5*48*256), conv4 (3*3*192*384) and conv5
        // (3*3*192*256) saves 307,200 + 663,552 + 442,368 weights: 62,378,344 - 1,413,120 =
        // 60,965,224, the count of Caffe's bvlc_alexnet.
        assert_eq!(net.num_params(), 60_965_224);
        assert_eq!(logits_shape(&net, [3, 227, 227], &device), [1, 1000]);
    }

    #[test]
    fn torchvision_alexnet_count_and_shape() {
        let device = Device::flex();
        let net = alexnet(&spec([3, 224, 224], 1000), &device).unwrap();
        // torchvision: sum(p.numel() for p in alexnet().parameters()).
        assert_eq!(net.num_params(), 61_100_840);
        assert_eq!(logits_shape(&net, [3, 224, 224], &device), [1, 1000]);
    }

    #[test]
    fn sequential_indices_match_torchvision() {
        let device = Device::flex();
        let net = alexnet(&spec([3, 224, 224], 1000), &device).unwrap();
        let convs: Vec<usize> = net
            .features
            .iter()
            .enumerate()
            .filter_map(|(i, l)| matches!(l, FeatureLayer::Conv(_)).then_some(i))
            .collect();
        assert_eq!(convs, [0, 3, 6, 8, 10]);
        let fcs: Vec<usize> = net
            .classifier
            .iter()
            .enumerate()
            .filter_map(|(i, l)| matches!(l, ClassifierLayer::Linear(_)).then_some(i))
            .collect();
        assert_eq!(fcs, [1, 4, 6]);
    }

    #[test]
    fn small_grayscale_inputs() {
        let device = Device::flex();
        // 67x67 (63x63 for torchvision's) is the least that three 3x3/2 pools allow.
        let net = alexnet_paper(&spec([1, 67, 67], 10), &device).unwrap();
        assert_eq!(logits_shape(&net, [1, 67, 67], &device), [1, 10]);
        let net = alexnet_grouped(&spec([1, 67, 67], 10), &device).unwrap();
        assert_eq!(logits_shape(&net, [1, 67, 67], &device), [1, 10]);
        // The adaptive pool stretches torchvision's 1x1 map to 6x6, as PyTorch does.
        let net = alexnet(&spec([1, 63, 63], 10), &device).unwrap();
        assert_eq!(logits_shape(&net, [1, 63, 63], &device), [1, 10]);
    }

    #[test]
    fn too_small_inputs_are_errors() {
        let device = Device::flex();
        let bad = |r: Result<AlexNet, ModelError>| matches!(r, Err(ModelError::BadInput { .. }));
        assert!(bad(alexnet_paper(&spec([3, 66, 66], 10), &device)));
        assert!(bad(alexnet_grouped(&spec([3, 227, 40], 10), &device)));
        assert!(bad(alexnet(&spec([3, 62, 62], 10), &device)));
    }
}
