//! One file per model family; [`Network`] is the sum of them all.

pub mod lenet;
pub mod simple;
pub mod small;

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
