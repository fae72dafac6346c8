//! Building Burn optimizers with PyTorch's semantics (Burn's defaults differ: momentum
//! dampening 0.1, Adam epsilon 1e-5, RMSprop momentum 0.9).

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    AdamConfig, LearningRate, ModuleOptimizer, Optimizer, RecordState, RmsPropConfig, SgdConfig,
    StateSink, StateSource,
};
use burn::tensor::{Device, Tensor};
use convnet_nn::fast::{self, SgdMomentum};

use crate::config::{OptimizerConfig, OptimizerKind};

/// The optimizer `cfg` describes.
pub fn build(cfg: &OptimizerConfig) -> ModuleOptimizer {
    // Decoupled decay is applied by the trainer (`early::DecoupledDecay`), not the optimizer.
    let decay = (cfg.weight_decay > 0.0 && !cfg.decoupled_decay())
        .then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.kind {
        OptimizerKind::Sgd if cfg.momentum > 0.0 => ModuleOptimizer::from(FusedSgd {
            lr_free: SgdMomentum {
                lr: 0.0,
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: cfg.nesterov,
                decay: decay.map_or(0.0, |d| d.penalty as f64),
            },
        }),
        OptimizerKind::Sgd => SgdConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Adam | OptimizerKind::Adamw => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_alpha(0.99)
            .with_epsilon(1e-8)
            .with_momentum(cfg.momentum as f32)
            .with_weight_decay(decay)
            .init(),
    }
}

/// SGD with momentum (`torch.optim.SGD`'s update) whose step is one fused pass over each
/// parameter on the `flex` CPU device ([`fast::sgd_momentum`]). Burn's `Sgd`
/// makes five passes, each into a new tensor (scale the gradient, scale the velocity, add,
/// scale by the rate, subtract): 14-16 ms per step on ResNet-18's 11.2 M parameters against
/// PyTorch's 6.6 ms. Elsewhere the same arithmetic as tensor ops. Its state has the names of
/// Burn's `SgdState` (`momentum.velocity`), so checkpoints from either load into the other.
#[derive(Clone)]
pub struct FusedSgd {
    /// The hyperparameters; the rate comes with each step.
    lr_free: SgdMomentum,
}

/// [`FusedSgd`]'s state for one parameter: the momentum buffer.
#[derive(Clone)]
pub struct FusedSgdState<const D: usize> {
    velocity: Tensor<D>,
}

impl<const D: usize> RecordState for FusedSgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        let path = burn::optim::join_path(prefix, "momentum");
        out.push_tensor(&path, "velocity", self.velocity.clone().into_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = burn::optim::join_path(prefix, "momentum");
        let data = src.take_tensor(&path, "velocity")?;
        Some(Self {
            velocity: Tensor::from_data(data, device),
        })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = FusedSgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        param: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let h = SgdMomentum { lr, ..self.lr_free };
        let velocity = state.map(|s| s.velocity);
        let (param, velocity) = match fast::sgd_momentum_applies(&param) {
            true => fast::sgd_momentum(param, grad, velocity, h),
            false => sgd_momentum_ops(param, grad, velocity, h),
        };
        (param, Some(FusedSgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        FusedSgdState {
            velocity: state.velocity.to_device(device),
        }
    }
}

/// [`fast::sgd_momentum`]'s arithmetic as tensor ops, for devices other than `flex`.
fn sgd_momentum_ops<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    h: SgdMomentum,
) -> (Tensor<D>, Tensor<D>) {
    let g = match h.decay {
        0.0 => grad,
        decay => grad + param.clone().mul_scalar(decay),
    };
    let v = match velocity {
        Some(v) => v.mul_scalar(h.momentum) + g.clone().mul_scalar(1.0 - h.dampening),
        None => g.clone(),
    };
    let step = match h.nesterov {
        true => g + v.clone().mul_scalar(h.momentum),
        false => v.clone(),
    };
    (param - step.mul_scalar(h.lr), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OptimizerConfig, OptimizerKind};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::optim::momentum::MomentumConfig;

    /// `steps` SGD steps on `model` against a fixed quadratic loss.
    fn train(optim: &mut ModuleOptimizer, mut model: Linear, steps: usize) -> Linear {
        let device = model.weight.device();
        let x = Tensor::<2>::from_data([[1.0, -2.0, 0.5, 3.0], [0.25, 1.0, -1.5, 2.0]], &device);
        for _ in 0..steps {
            let loss = (model.forward(x.clone()) - 0.5).powf_scalar(2.0).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.05, model, grads);
        }
        model
    }

    /// The layer's weight then bias, flat.
    fn values(model: &Linear) -> Vec<f32> {
        let bias = model.bias.as_ref().expect("a bias").val();
        let flat = Tensor::cat(vec![model.weight.val().flatten::<1>(0, 1), bias], 0);
        flat.into_data().try_to_vec::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    /// The tensor-op fallback (other devices) and the fused kernel give the same step: first
    /// and later steps, with and without Nesterov, decay and dampening. The inputs are drawn
    /// once and cloned: the device's generator is shared with the tests running beside this
    /// one, so drawing "the same" seeded tensor twice could give two different ones.
    #[test]
    fn fallback_ops_match_the_fused_kernel() {
        let device = burn::tensor::Device::flex();
        let drawn: Vec<Tensor<2>> = (1..=3)
            .map(|seed| {
                device.seed(seed);
                Tensor::<2>::random([7, 5], burn::tensor::Distribution::Default, &device)
            })
            .collect();
        let t = |seed: usize| drawn[seed - 1].clone();
        for (first, nesterov, decay, dampening) in [
            (true, false, 0.0, 0.0),
            (false, false, 0.0, 0.0),
            (false, true, 0.01, 0.0),
            (true, true, 0.01, 0.1),
            (false, false, 0.01, 0.1),
        ] {
            let h = SgdMomentum {
                lr: 0.1,
                momentum: 0.9,
                dampening,
                nesterov,
                decay,
            };
            let velocity = (!first).then(|| t(3));
            let (p1, v1) = fast::sgd_momentum(t(1), t(2), velocity.clone(), h);
            let (p2, v2) = sgd_momentum_ops(t(1), t(2), velocity, h);
            let diff = |a: Tensor<2>, b: Tensor<2>| -> f32 { (a - b).abs().max().into_scalar() };
            let (dp, dv) = (diff(p1.clone(), p2), diff(v1, v2));
            assert!(
                dp < 1e-6 && dv < 1e-6,
                "{first} {nesterov} {decay}: {dp} {dv}"
            );
            assert!(diff(p1, t(1)) > 1e-3, "the step moved nothing");
        }
    }

    /// The fused step follows Burn's SGD with dampening 0 (PyTorch's update) over several
    /// steps, with and without Nesterov and weight decay; and a state saved by either
    /// optimizer resumes in the other with the same next step.
    #[test]
    fn fused_sgd_matches_burn_sgd_and_shares_its_state() {
        let device = burn::tensor::Device::flex().autodiff();
        for (nesterov, decay) in [(false, 0.0), (true, 0.0), (false, 0.01), (true, 0.01)] {
            let cfg = OptimizerConfig {
                kind: OptimizerKind::Sgd,
                lr: 0.05,
                momentum: 0.9,
                weight_decay: decay,
                nesterov,
                decoupled: false,
            };
            let burn_sgd = || {
                SgdConfig::new()
                    .with_momentum(Some(MomentumConfig {
                        momentum: 0.9,
                        dampening: 0.0,
                        nesterov,
                    }))
                    .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay as f32)))
                    .init()
            };
            let model = LinearConfig::new(4, 3).init(&device);
            let (mut ours, mut theirs) = (build(&cfg), burn_sgd());
            let a = train(&mut ours, model.clone(), 4);
            let b = train(&mut theirs, model.clone(), 4);
            let moved = max_diff(&values(&a), &values(&model));
            assert!(moved > 1e-2, "the steps moved the weights by {moved} only");
            let diff = max_diff(&values(&a), &values(&b));
            assert!(diff < 1e-5, "nesterov {nesterov} decay {decay}: {diff}");

            // A state saved by either optimizer resumes in the other: the next step is the
            // one the saving optimizer takes, and differs from a step without the state.
            for (saved, start, fused_saved) in [(&mut theirs, &b, false), (&mut ours, &a, true)] {
                let bytes = saved.into_bytes().unwrap();
                let mut resumed = match fused_saved {
                    true => burn_sgd(),
                    false => build(&cfg),
                }
                .from_bytes(bytes)
                .unwrap();
                let next = train(saved, start.clone(), 1);
                let resumed = train(&mut resumed, start.clone(), 1);
                let restarted = train(&mut burn_sgd(), start.clone(), 1);
                let (same, fresh) = (values(&next), values(&resumed));
                assert!(max_diff(&same, &fresh) < 1e-5, "resumed step differs");
                assert!(
                    max_diff(&fresh, &values(&restarted)) > 1e-4,
                    "state not loaded"
                );
            }
        }
    }
}
