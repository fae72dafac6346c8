//! Model EMA: an exponential moving average of the weights (and batch-norm statistics), kept
//! beside the trained model and evaluated and checkpointed alongside it, as timm's `ModelEmaV2`.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use convnet_nn::Network;

/// The averaged model, on a device without autodiff.
pub struct Ema {
    /// The averaged weights.
    pub model: Network,
    /// Target decay, e.g. 0.999.
    pub decay: f64,
    /// Updates so far (the effective decay warms up as `(1 + n) / (10 + n)`, as in timm).
    pub updates: u64,
}

/// Every float tensor of a module by id, flattened to one dimension.
#[derive(Default)]
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.insert(param.id, param.val().flatten::<1>(0, D - 1));
    }
}

/// `ema ← d · ema + (1 - d) · live`, tensor by tensor, matched by parameter id.
struct Blend {
    live: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.live.remove(&param.id) {
            Some(live) => {
                let decay = self.decay;
                param.map(|t| {
                    let shape = t.shape();
                    t.mul_scalar(decay) + live.reshape(shape).mul_scalar(1.0 - decay)
                })
            }
            None => param,
        }
    }
}

impl Ema {
    /// Starts the average at `model`'s current weights.
    pub fn new(model: &Network, decay: f64) -> Self {
        Self {
            model: model.valid(),
            decay,
            updates: 0,
        }
    }

    /// The decay used by the next update.
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Folds `live` (the model being trained; the same architecture) into the average.
    pub fn update(&mut self, live: &Network) {
        let live = live.valid();
        let mut collect = Collect::default();
        live.visit(&mut collect);
        let mut blend = Blend {
            live: collect.0,
            decay: self.current_decay(),
        };
        // `live` (already a detached copy) stands in while the average is blended.
        let model = std::mem::replace(&mut self.model, live);
        self.model = model.map(&mut blend);
        self.updates += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use convnet_nn::ModelSpec;

    fn weights(m: &Network) -> Vec<f32> {
        let mut c = Collect::default();
        m.visit(&mut c);
        let mut ids: Vec<_> = c.0.keys().copied().collect();
        ids.sort_by_key(|id| id.to_string());
        ids.iter()
            .flat_map(|id| c.0[id].clone().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn ema_moves_by_one_minus_decay_towards_the_live_weights() {
        let d = Device::flex();
        let spec = ModelSpec::new("mnist-cnn", [1, 28, 28], 10);
        let a = convnet_nn::build(&spec, &d).unwrap();
        let mut ema = Ema::new(&a, 0.9);
        // The first decay is (1 + 0) / (10 + 0) = 0.1.
        assert!((ema.current_decay() - 0.1).abs() < 1e-12);
        // A "trained" model: the same ids, every weight doubled.
        struct Double;
        impl ModuleMapper for Double {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                p.map(|t| t.mul_scalar(2.0))
            }
        }
        let b = a.clone().map(&mut Double);
        let before = weights(&ema.model);
        ema.update(&b);
        let after = weights(&ema.model);
        // 0.1 · w + 0.9 · 2w = 1.9 w.
        for (x, y) in before.iter().zip(&after) {
            assert!((1.9 * x - y).abs() < 1e-5 * x.abs().max(1.0), "{x} -> {y}");
        }
        assert_eq!(ema.updates, 1);
        for _ in 0..10_000 {
            ema.updates += 1;
        }
        assert!((ema.current_decay() - 0.9).abs() < 1e-12);
    }
}
