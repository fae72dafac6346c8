//! Building Burn optimizers with PyTorch's semantics (Burn's defaults differ: momentum
//! dampening 0.1, Adam epsilon 1e-5, RMSprop momentum 0.9).

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};

use crate::config::{OptimizerConfig, OptimizerKind};

/// The optimizer `cfg` describes.
pub fn build(cfg: &OptimizerConfig) -> ModuleOptimizer {
    // Decoupled decay is applied by the trainer (`early::DecoupledDecay`), not the optimizer.
    let decay = (cfg.weight_decay > 0.0 && !cfg.decoupled_decay())
        .then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.kind {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((cfg.momentum > 0.0).then_some(MomentumConfig {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: cfg.nesterov,
            }))
            .with_weight_decay(decay)
            .init(),
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
