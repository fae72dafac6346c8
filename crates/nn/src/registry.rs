//! The static table of buildable models: name, native input, family and paper.

use burn::tensor::Device;

use crate::models::{
    Network, alexnet, densenet, inception, inception_resnet, lenet, mobilenet, resnet, simple,
    small, squeezenet, vgg, wrn, xception,
};
use crate::spec::{ModelError, ModelSpec};

/// One registered architecture.
pub struct ModelEntry {
    /// Name used on the command line.
    pub name: &'static str,
    /// Native input `[C, H, W]` (the data is resized to `[H, W]`; `C` may be overridden).
    pub input: [usize; 3],
    /// Native number of classes (1000 for ImageNet models).
    pub classes: usize,
    /// Learnable parameters at the native input and classes ([`crate::learnable_params`];
    /// checked by the registry test).
    pub params: usize,
    /// Multiply-accumulates of one forward pass at the native input (checked by the test).
    pub macs: u64,
    /// Family, e.g. `LeNet`.
    pub family: &'static str,
    /// Where the architecture comes from.
    pub paper: &'static str,
    /// Builds the network.
    pub build: fn(&ModelSpec, &Device) -> Result<Network, ModelError>,
}

/// Every model convnet can build.
pub const MODELS: &[ModelEntry] = &[
    ModelEntry {
        name: "small-cnn",
        classes: 10,
        params: 421_738,
        macs: 4_278_784,
        input: [1, 28, 28],
        family: "VGG-style",
        paper: "convnet default (conv-BN-ReLU x2, Ioffe & Szegedy 2015)",
        build: |s, d| Ok(Network::SmallCnn(small::SmallCnn::new(s, d)?)),
    },
    ModelEntry {
        name: "small-vgg",
        classes: 10,
        params: 468_010,
        macs: 18_767_104,
        input: [1, 28, 28],
        family: "VGG-style",
        paper: "convnet's fashion-small model (two conv-BN-ReLU per stage, Simonyan & Zisserman 2014)",
        build: |s, d| Ok(Network::SmallVgg(small::SmallVgg::new(s, d)?)),
    },
    ModelEntry {
        name: "lenet5",
        classes: 10,
        params: 61_706,
        macs: 416_520,
        input: [1, 32, 32],
        family: "LeNet",
        paper: "LeCun et al. 1998",
        build: |s, d| Ok(Network::LeNet5(lenet::LeNet5::new(s, d)?)),
    },
    ModelEntry {
        name: "mnist-cnn",
        classes: 10,
        params: 28_938,
        macs: 2_838_080,
        input: [1, 28, 28],
        family: "simple",
        paper: "seed 003 (PyTorch MNIST tutorial CNN)",
        build: |s, d| Ok(Network::MnistCnn(simple::MnistCnn::new(s, d)?)),
    },
    ModelEntry {
        name: "gtsrb-net",
        classes: 43,
        params: 84_107,
        macs: 374_628,
        input: [3, 32, 32],
        family: "simple",
        paper: "seed 000 (GTSRB traffic-sign net)",
        build: |s, d| Ok(Network::GtsrbNet(simple::GtsrbNet::new(s, d)?)),
    },
    ModelEntry {
        name: "alexnet",
        classes: 1000,
        params: 61_100_840,
        macs: 714_188_480,
        input: [3, 224, 224],
        family: "AlexNet",
        paper: "Krizhevsky et al. 2012 (torchvision layout)",
        build: |s, d| Ok(Network::AlexNet(alexnet::alexnet(s, d)?)),
    },
    ModelEntry {
        name: "alexnet_paper",
        classes: 1000,
        params: 62_378_344,
        macs: 1_135_733_120,
        input: [3, 227, 227],
        family: "AlexNet",
        paper: "Krizhevsky et al. 2012 (seed 004: LRN, 96-256-384-384-256)",
        build: |s, d| Ok(Network::AlexNet(alexnet::alexnet_paper(s, d)?)),
    },
    ModelEntry {
        name: "alexnet_grouped",
        classes: 1000,
        params: 60_965_224,
        macs: 724_883_840,
        input: [3, 227, 227],
        family: "AlexNet",
        paper: "Krizhevsky et al. 2012 (two-GPU groups)",
        build: |s, d| Ok(Network::AlexNet(alexnet::alexnet_grouped(s, d)?)),
    },
    ModelEntry {
        name: "vgg11",
        classes: 1000,
        params: 132_863_336,
        macs: 7_609_090_048,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config A",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg11(s, d)?)),
    },
    ModelEntry {
        name: "vgg11_bn",
        classes: 1000,
        params: 132_868_840,
        macs: 7_616_516_096,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config A + BN",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg11_bn(s, d)?)),
    },
    ModelEntry {
        name: "vgg11_lrn",
        classes: 1000,
        params: 132_863_336,
        macs: 7_612_301_312,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config A-LRN",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg11_lrn(s, d)?)),
    },
    ModelEntry {
        name: "vgg13",
        classes: 1000,
        params: 133_047_848,
        macs: 11_308_466_176,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config B",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg13(s, d)?)),
    },
    ModelEntry {
        name: "vgg13_bn",
        classes: 1000,
        params: 133_053_736,
        macs: 11_320_709_120,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config B + BN",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg13_bn(s, d)?)),
    },
    ModelEntry {
        name: "vgg16_c",
        classes: 1000,
        params: 133_638_952,
        macs: 11_770_888_192,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config C (1x1 convs)",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg16_c(s, d)?)),
    },
    ModelEntry {
        name: "vgg16",
        classes: 1000,
        params: 138_357_544,
        macs: 15_470_264_320,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config D",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg16(s, d)?)),
    },
    ModelEntry {
        name: "vgg16_bn",
        classes: 1000,
        params: 138_365_992,
        macs: 15_483_811_840,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config D + BN",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg16_bn(s, d)?)),
    },
    ModelEntry {
        name: "vgg19",
        classes: 1000,
        params: 143_667_240,
        macs: 19_632_062_464,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config E",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg19(s, d)?)),
    },
    ModelEntry {
        name: "vgg19_bn",
        classes: 1000,
        params: 143_678_248,
        macs: 19_646_914_560,
        input: [3, 224, 224],
        family: "VGG",
        paper: "Simonyan & Zisserman 2015, config E + BN",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg19_bn(s, d)?)),
    },
    ModelEntry {
        name: "vgg16_seed001",
        classes: 1,
        params: 16_812_353,
        macs: 6_617_588_736,
        input: [3, 150, 150],
        family: "VGG",
        paper: "seed 001: VGG-16 base + Dense 256 + Dense 1 (Keras)",
        build: |s, d| Ok(Network::Vgg(vgg::Vgg::vgg16_seed001(s, d)?)),
    },
    ModelEntry {
        name: "resnet18",
        classes: 1000,
        params: 11_689_512,
        macs: 1_816_557_056,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet18(s, d)?)),
    },
    ModelEntry {
        name: "resnet34",
        classes: 1000,
        params: 21_797_672,
        macs: 3_667_499_520,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet34(s, d)?)),
    },
    ModelEntry {
        name: "resnet34_a",
        classes: 1000,
        params: 21_623_848,
        macs: 3_648_056_320,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016, shortcut option A (zero-pad)",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet34_a(s, d)?)),
    },
    ModelEntry {
        name: "resnet34_c",
        classes: 1000,
        params: 22_716_840,
        macs: 3_835_689_472,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016, shortcut option C (all projections)",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet34_c(s, d)?)),
    },
    ModelEntry {
        name: "resnet50",
        classes: 1000,
        params: 25_557_032,
        macs: 4_100_298_240,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet50(s, d)?)),
    },
    ModelEntry {
        name: "resnet101",
        classes: 1000,
        params: 44_549_160,
        macs: 7_817_637_376,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet101(s, d)?)),
    },
    ModelEntry {
        name: "resnet152",
        classes: 1000,
        params: 60_192_808,
        macs: 11_536_180_736,
        input: [3, 224, 224],
        family: "ResNet",
        paper: "He et al. 2016",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet152(s, d)?)),
    },
    ModelEntry {
        name: "resnet20",
        classes: 10,
        params: 269_722,
        macs: 40_739_456,
        input: [3, 32, 32],
        family: "ResNet (CIFAR)",
        paper: "He et al. 2016, sec. 4.2, option A",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet20(s, d)?)),
    },
    ModelEntry {
        name: "resnet32",
        classes: 10,
        params: 464_154,
        macs: 69_165_696,
        input: [3, 32, 32],
        family: "ResNet (CIFAR)",
        paper: "He et al. 2016, sec. 4.2, option A",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet32(s, d)?)),
    },
    ModelEntry {
        name: "resnet44",
        classes: 10,
        params: 658_586,
        macs: 97_591_936,
        input: [3, 32, 32],
        family: "ResNet (CIFAR)",
        paper: "He et al. 2016, sec. 4.2, option A",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet44(s, d)?)),
    },
    ModelEntry {
        name: "resnet56",
        classes: 10,
        params: 853_018,
        macs: 126_018_176,
        input: [3, 32, 32],
        family: "ResNet (CIFAR)",
        paper: "He et al. 2016, sec. 4.2, option A",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet56(s, d)?)),
    },
    ModelEntry {
        name: "resnet110",
        classes: 10,
        params: 1_727_962,
        macs: 253_936_256,
        input: [3, 32, 32],
        family: "ResNet (CIFAR)",
        paper: "He et al. 2016, sec. 4.2, option A",
        build: |s, d| Ok(Network::ResNet(resnet::ResNet::resnet110(s, d)?)),
    },
    ModelEntry {
        name: "wrn16_4",
        classes: 10,
        params: 2_748_890,
        macs: 393_087_488,
        input: [3, 32, 32],
        family: "Wide ResNet",
        paper: "Zagoruyko & Komodakis 2016 (WRN-16-4)",
        build: |s, d| Ok(Network::WideResNet(wrn::WideResNet::wrn16_4(s, d)?)),
    },
    ModelEntry {
        name: "wrn16_8",
        classes: 10,
        params: 10_961_370,
        macs: 1_549_079_552,
        input: [3, 32, 32],
        family: "Wide ResNet",
        paper: "Zagoruyko & Komodakis 2016 (WRN-16-8)",
        build: |s, d| Ok(Network::WideResNet(wrn::WideResNet::wrn16_8(s, d)?)),
    },
    ModelEntry {
        name: "wrn28_10",
        classes: 10,
        params: 36_479_194,
        macs: 5_245_638_912,
        input: [3, 32, 32],
        family: "Wide ResNet",
        paper: "Zagoruyko & Komodakis 2016 (WRN-28-10)",
        build: |s, d| Ok(Network::WideResNet(wrn::WideResNet::wrn28_10(s, d)?)),
    },
    ModelEntry {
        name: "wrn40_4",
        classes: 10,
        params: 8_949_210,
        macs: 1_299_974_656,
        input: [3, 32, 32],
        family: "Wide ResNet",
        paper: "Zagoruyko & Komodakis 2016 (WRN-40-4)",
        build: |s, d| Ok(Network::WideResNet(wrn::WideResNet::wrn40_4(s, d)?)),
    },
    ModelEntry {
        name: "densenet121",
        classes: 1000,
        params: 7_978_856,
        macs: 2_849_829_120,
        input: [3, 224, 224],
        family: "DenseNet",
        paper: "Huang et al. 2017",
        build: |s, d| Ok(Network::DenseNet(densenet::DenseNet::densenet121(s, d)?)),
    },
    ModelEntry {
        name: "squeezenet1_0",
        classes: 1000,
        params: 1_248_424,
        macs: 818_924_576,
        input: [3, 224, 224],
        family: "SqueezeNet",
        paper: "Iandola et al. 2016",
        build: |s, d| {
            Ok(Network::SqueezeNet(squeezenet::SqueezeNet::squeezenet1_0(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "squeezenet1_1",
        classes: 1000,
        params: 1_235_496,
        macs: 349_151_936,
        input: [3, 224, 224],
        family: "SqueezeNet",
        paper: "Iandola et al. 2016 (v1.1)",
        build: |s, d| {
            Ok(Network::SqueezeNet(squeezenet::SqueezeNet::squeezenet1_1(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "mobilenet_v1",
        classes: 1000,
        params: 4_231_976,
        macs: 573_783_040,
        input: [3, 224, 224],
        family: "MobileNet",
        paper: "Howard et al. 2017",
        build: |s, d| {
            Ok(Network::MobileNetV1(mobilenet::MobileNetV1::mobilenet_v1(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "mobilenet_v2",
        classes: 1000,
        params: 3_504_872,
        macs: 307_452_384,
        input: [3, 224, 224],
        family: "MobileNet",
        paper: "Sandler et al. 2018",
        build: |s, d| {
            Ok(Network::MobileNetV2(mobilenet::MobileNetV2::mobilenet_v2(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "googlenet",
        classes: 1000,
        params: 13_004_888,
        macs: 1_501_602_352,
        input: [3, 224, 224],
        family: "Inception",
        paper: "Szegedy et al. 2015 (with aux classifiers)",
        build: |s, d| Ok(Network::GoogLeNet(inception::GoogLeNet::googlenet(s, d)?)),
    },
    ModelEntry {
        name: "inception_v2",
        classes: 1000,
        params: 11_285_224,
        macs: 2_036_336_608,
        input: [3, 224, 224],
        family: "Inception",
        paper: "Ioffe & Szegedy 2015 (BN-Inception)",
        build: |s, d| {
            Ok(Network::BnInception(inception::BnInception::inception_v2(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "inception_v3",
        classes: 1000,
        params: 27_161_264,
        macs: 5_722_183_584,
        input: [3, 299, 299],
        family: "Inception",
        paper: "Szegedy et al. 2016 (with aux head)",
        build: |s, d| {
            Ok(Network::InceptionV3(inception::InceptionV3::inception_v3(
                s, d,
            )?))
        },
    },
    ModelEntry {
        name: "inception_v4",
        classes: 1000,
        params: 42_679_816,
        macs: 12_269_063_808,
        input: [3, 299, 299],
        family: "Inception",
        paper: "Szegedy et al. 2017",
        build: |s, d| {
            Ok(Network::InceptionV4(
                inception_resnet::InceptionV4::inception_v4(s, d)?,
            ))
        },
    },
    ModelEntry {
        name: "inception_resnet_v1",
        classes: 1000,
        params: 22_756_328,
        macs: 6_214_764_464,
        input: [3, 299, 299],
        family: "Inception-ResNet",
        paper: "Szegedy et al. 2017",
        build: |s, d| {
            Ok(Network::InceptionResNet(
                inception_resnet::InceptionResNet::inception_resnet_v1(s, d)?,
            ))
        },
    },
    ModelEntry {
        name: "inception_resnet_v2",
        classes: 1000,
        params: 55_843_464,
        macs: 13_169_313_152,
        input: [3, 299, 299],
        family: "Inception-ResNet",
        paper: "Szegedy et al. 2017",
        build: |s, d| {
            Ok(Network::InceptionResNet(
                inception_resnet::InceptionResNet::inception_resnet_v2(s, d)?,
            ))
        },
    },
    ModelEntry {
        name: "xception",
        classes: 1000,
        params: 22_855_952,
        macs: 8_378_540_648,
        input: [3, 299, 299],
        family: "Xception",
        paper: "Chollet 2017",
        build: |s, d| Ok(Network::Xception(xception::Xception::xception(s, d)?)),
    },
];

/// The entry registered under `name`.
pub fn find(name: &str) -> Result<&'static ModelEntry, ModelError> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        })
}

/// Builds the model `spec` describes, with fresh weights on `device`.
pub fn build(spec: &ModelSpec, device: &Device) -> Result<Network, ModelError> {
    if spec.num_classes == 0 {
        return Err(ModelError::NoClasses(spec.name.clone()));
    }
    (find(&spec.name)?.build)(spec, device)
}

/// The spec of `entry` at its native input and class count.
pub fn native_spec(entry: &ModelEntry) -> ModelSpec {
    ModelSpec::new(entry.name, entry.input, entry.classes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::trace;
    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Distribution, Int, Tensor, TensorData};

    /// The table cannot lie: every entry's parameter count, output shape and multiply-
    /// accumulates are recomputed from the built model.
    #[test]
    fn every_model_matches_its_metadata() {
        let device = Device::flex();
        for entry in MODELS {
            let s = native_spec(entry);
            let net = build(&s, &device).unwrap();
            assert_eq!(
                crate::learnable_params(&net),
                entry.params,
                "{} parameters",
                entry.name
            );
            let [c, h, w] = entry.input;
            let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &device);
            let (y, layers) = trace(|| net.valid().forward(x));
            assert_eq!(y.dims(), [1, entry.classes], "{}", entry.name);
            let v = y.into_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{}", entry.name);
            let macs: u64 = layers.iter().map(|l| l.macs).sum();
            assert_eq!(macs, entry.macs, "{} multiply-accumulates", entry.name);
        }
    }

    /// `entry` at a small input with 1 channel and 5 classes (its native size when it refuses
    /// the small one, e.g. Inception v3's aux head), built after seeding `device` with 1.
    pub(crate) fn small(entry: &ModelEntry, device: &Device) -> (Network, ModelSpec) {
        let side = |n: usize| (n / 3).max(n.min(32));
        let mut s = ModelSpec::new(
            entry.name,
            [1, side(entry.input[1]), side(entry.input[2])],
            5,
        );
        device.seed(1);
        let net = match build(&s, device) {
            Err(ModelError::BadInput { .. }) => {
                s.input_size = [entry.input[1], entry.input[2]];
                build(&s, device).unwrap()
            }
            other => other.unwrap(),
        };
        (net, s)
    }

    /// Every model, at a small input ([`small`]), fits a fixed batch: the loss falls within a
    /// few Adam steps, so every layer passes gradients.
    #[test]
    fn every_model_learns_a_fixed_batch() {
        let device = Device::flex().autodiff();
        for entry in MODELS {
            let (mut net, s) = small(entry, &device);
            let mut optim = AdamConfig::new().init();
            let x = Tensor::<4>::random(
                [4, 1, s.input_size[0], s.input_size[1]],
                Distribution::Default,
                &device,
            );
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3], [4]), &device);
            let loss_fn = CrossEntropyLossConfig::new().init(&device);
            let mut losses = Vec::new();
            for _ in 0..4 {
                let loss = loss_fn.forward(net.forward(x.clone()), y.clone());
                losses.push(loss.clone().into_scalar::<f32>());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(1e-4, net, grads);
            }
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "{}: {losses:?}",
                entry.name
            );
            // Dropout makes single steps noisy: ask for the best later loss to beat the first.
            let best = losses[1..].iter().cloned().fold(f32::INFINITY, f32::min);
            assert!(
                best < losses[0],
                "{}: loss did not fall: {losses:?}",
                entry.name
            );
        }
    }

    #[test]
    fn parameter_counts_follow_the_architecture() {
        let device = Device::flex();
        // Seed 003: (25*1+1)*16 + (25*16+1)*32 + (1568+1)*10.
        let n = build(&ModelSpec::new("mnist-cnn", [1, 28, 28], 10), &device).unwrap();
        assert_eq!(n.num_params(), 416 + 12_832 + 15_690);
        // LeNet-5 with a convolutional C5: 156 + 2416 + 48120 + 10164 + 850 = 61,706.
        let n = build(&ModelSpec::new("lenet5", [1, 32, 32], 10), &device).unwrap();
        assert_eq!(n.num_params(), 61_706);
        // Seed 000 at 3x32x32 and 43 classes: 168 + 880 + (576+1)*120 + 121*84 + 85*43.
        let n = build(&ModelSpec::new("gtsrb-net", [3, 32, 32], 43), &device).unwrap();
        assert_eq!(n.num_params(), 168 + 880 + 69_240 + 10_164 + 3_655);
    }

    #[test]
    fn too_small_inputs_and_unknown_names_are_errors() {
        let device = Device::flex();
        assert!(matches!(
            build(&ModelSpec::new("lenet5", [1, 16, 16], 10), &device),
            Err(ModelError::BadInput { .. })
        ));
        assert!(matches!(
            build(&ModelSpec::new("nope", [1, 28, 28], 10), &device),
            Err(ModelError::Unknown { .. })
        ));
        assert!(matches!(
            build(&ModelSpec::new("mnist-cnn", [1, 28, 28], 0), &device),
            Err(ModelError::NoClasses(_))
        ));
    }

    /// Prints the metadata of every entry (run with `--ignored --nocapture` when adding one).
    #[test]
    #[ignore]
    fn print_metadata() {
        let device = Device::flex();
        for entry in MODELS {
            let net = build(&native_spec(entry), &device).unwrap();
            let [c, h, w] = entry.input;
            let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &device);
            let (_, layers) = trace(|| net.valid().forward(x));
            let macs: u64 = layers.iter().map(|l| l.macs).sum();
            println!(
                "{}: params {}, macs {}",
                entry.name,
                crate::learnable_params(&net),
                macs
            );
        }
    }
}
