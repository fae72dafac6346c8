//! Layers and the model zoo of convnet.
//!
//! Every model is a Burn [`Module`](burn::module::Module) that maps an image batch
//! `[N, C, H, W]` to class logits `[N, classes]`. [`Network`] is the one type the training,
//! evaluation and prediction code handle; [`registry::MODELS`] lists what can be built by name.

pub mod fast;
pub mod layers;
pub mod models;
pub mod precision;
pub mod pretrained;
pub mod registry;
pub mod rf;
pub mod spec;
pub mod summary;
pub mod trace;
pub mod weights;

pub use models::Network;
pub use precision::Precision;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Learnable parameters of a module, counted as torchvision and the papers count them:
/// weights and biases, not batch norm's running statistics (which Burn's `num_params` and
/// Keras's "total params" include).
pub fn learnable_params<M: Module>(module: &M) -> usize {
    struct Count {
        path: Vec<String>,
        n: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let last = self.path.last().map(String::as_str).unwrap_or("");
            if last != "running_mean" && last != "running_var" {
                self.n += param.shape().num_elements();
            }
        }
    }
    let mut c = Count {
        path: Vec::new(),
        n: 0,
    };
    module.visit(&mut c);
    c.n
}
pub use registry::{MODELS, ModelEntry, build, find};
pub use spec::{ModelError, ModelSpec};
