//! One file per model family; [`Network`] is the sum of them all.

pub mod alexnet;
pub mod densenet;
pub mod inception;
pub mod inception_resnet;
pub mod lenet;
pub mod mobilenet;
pub mod resnet;
pub mod simple;
pub mod small;
pub mod squeezenet;
pub mod vgg;
pub mod wrn;
pub mod xception;

use burn::module::Module;
use burn::tensor::Tensor;

use crate::spec::{ModelError, ModelSpec};

/// Any model of the zoo. Adding a family adds a variant here and an arm to the `each!` macro.
// One `Network` exists per model in a process; variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// LeNet-5.
    LeNet5(lenet::LeNet5),
    /// Seed 003's MNIST CNN.
    MnistCnn(simple::MnistCnn),
    /// Seed 000's GTSRB net.
    GtsrbNet(simple::GtsrbNet),
    /// The default small CNN.
    SmallCnn(small::SmallCnn),
    /// The small VGG-style CNN.
    SmallVgg(small::SmallVgg),
    /// Xception.
    Xception(xception::Xception),
    /// InceptionResNet.
    InceptionResNet(inception_resnet::InceptionResNet),
    /// InceptionV4.
    InceptionV4(inception_resnet::InceptionV4),
    /// InceptionV3.
    InceptionV3(inception::InceptionV3),
    /// BnInception.
    BnInception(inception::BnInception),
    /// GoogLeNet.
    GoogLeNet(inception::GoogLeNet),
    /// MobileNetV2.
    MobileNetV2(mobilenet::MobileNetV2),
    /// MobileNetV1.
    MobileNetV1(mobilenet::MobileNetV1),
    /// SqueezeNet.
    SqueezeNet(squeezenet::SqueezeNet),
    /// DenseNet.
    DenseNet(densenet::DenseNet),
    /// ResNet.
    ResNet(resnet::ResNet),
    /// Vgg.
    Vgg(vgg::Vgg),
    /// AlexNet.
    AlexNet(alexnet::AlexNet),
    /// Wide ResNet (CIFAR layout).
    WideResNet(wrn::WideResNet),
}

/// Calls the same method on whichever model a [`Network`] holds.
macro_rules! each {
    ($self:expr, $m:ident => $call:expr) => {
        match $self {
            Network::LeNet5($m) => $call,
            Network::MnistCnn($m) => $call,
            Network::GtsrbNet($m) => $call,
            Network::SmallCnn($m) => $call,
            Network::SmallVgg($m) => $call,
            Network::Xception($m) => $call,
            Network::InceptionResNet($m) => $call,
            Network::InceptionV4($m) => $call,
            Network::InceptionV3($m) => $call,
            Network::BnInception($m) => $call,
            Network::GoogLeNet($m) => $call,
            Network::MobileNetV2($m) => $call,
            Network::MobileNetV1($m) => $call,
            Network::SqueezeNet($m) => $call,
            Network::DenseNet($m) => $call,
            Network::ResNet($m) => $call,
            Network::Vgg($m) => $call,
            Network::AlexNet($m) => $call,
            Network::WideResNet($m) => $call,
        }
    };
}

impl Network {
    /// Class logits for an image batch: [`Self::forward_head`] of [`Self::forward_features`].
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        each!(self, m => m.forward(x))
    }

    /// Training forward pass: the main logits and the auxiliary classifiers' logits of the
    /// models that have them (GoogLeNet: two, weighted 0.3 in the paper; Inception v3: one,
    /// weighted 0.4 by torchvision's recipe); no auxiliary logits for the others.
    pub fn forward_with_aux(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        match self {
            Network::GoogLeNet(m) => {
                let (y, a1, a2) = m.forward_with_aux(x);
                (y, a1.into_iter().chain(a2).collect())
            }
            Network::InceptionV3(m) => {
                let (y, a) = m.forward_with_aux(x);
                (y, a.into_iter().collect())
            }
            other => (other.forward(x), Vec::new()),
        }
    }

    /// The paper's weight of the auxiliary losses of [`Self::forward_with_aux`].
    pub fn aux_loss_weight(&self) -> f64 {
        match self {
            Network::InceptionV3(_) => 0.4,
            _ => 0.3,
        }
    }

    /// The convolutional base without the classifier (Keras' `include_top=False`): the last
    /// feature map before global pooling or flattening.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C', H', W']`
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        each!(self, m => m.forward_features(x))
    }

    /// The classifier (pooling, dropout, dense layers) on a [`Self::forward_features`] map.
    ///
    /// # Shapes
    /// `[N, C', H', W']` → `[N, classes]`
    pub fn forward_head(&self, x: Tensor<4>) -> Tensor<2> {
        each!(self, m => m.forward_head(x))
    }
}

/// The error for an input the architecture cannot take.
pub(crate) fn too_small(spec: &ModelSpec, why: &str) -> ModelError {
    ModelError::BadInput {
        name: spec.name.clone(),
        c: spec.in_channels,
        h: spec.input_size[0],
        w: spec.input_size[1],
        why: why.to_string(),
    }
}
