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
pub mod xception;

use burn::module::Module;
use burn::tensor::Tensor;

use crate::spec::{ModelError, ModelSpec};

/// Any model of the zoo. Adding a family adds a variant here and an arm to [`Network::forward`].
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
}

impl Network {
    /// Class logits for an image batch.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::LeNet5(m) => m.forward(x),
            Network::MnistCnn(m) => m.forward(x),
            Network::GtsrbNet(m) => m.forward(x),
            Network::SmallCnn(m) => m.forward(x),
            Network::Xception(m) => m.forward(x),
            Network::InceptionResNet(m) => m.forward(x),
            Network::InceptionV4(m) => m.forward(x),
            Network::InceptionV3(m) => m.forward(x),
            Network::BnInception(m) => m.forward(x),
            Network::GoogLeNet(m) => m.forward(x),
            Network::MobileNetV2(m) => m.forward(x),
            Network::MobileNetV1(m) => m.forward(x),
            Network::SqueezeNet(m) => m.forward(x),
            Network::DenseNet(m) => m.forward(x),
            Network::ResNet(m) => m.forward(x),
            Network::Vgg(m) => m.forward(x),
            Network::AlexNet(m) => m.forward(x),
        }
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
