//! Early stopping and decoupled weight decay: two small training-loop rules, each a pure
//! function of what the run already has (history, learning rate), so resuming changes nothing.

use burn::module::{ModuleMapper, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which validation figure early stopping watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Monitor {
    /// Validation accuracy (higher is better).
    #[default]
    ValAcc,
    /// Validation loss (lower is better).
    ValLoss,
}

/// `EarlyStopping(monitor, patience, min_delta)` as in Keras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without an improvement of more than `min_delta` before stopping.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
    /// The watched figure.
    #[serde(default)]
    pub monitor: Monitor,
}

impl EarlyStopping {
    /// Given the watched figure of every finished epoch, whether to stop now.
    pub fn should_stop(&self, values: &[f64]) -> bool {
        let sign = match self.monitor {
            Monitor::ValAcc => 1.0,
            Monitor::ValLoss => -1.0,
        };
        let mut best = f64::NEG_INFINITY;
        let mut waited = 0;
        for v in values.iter().map(|v| v * sign) {
            if v > best + self.min_delta {
                best = v;
                waited = 0;
            } else {
                waited += 1;
            }
        }
        waited >= self.patience.max(1)
    }
}

/// Decoupled weight decay (AdamW, SGDW): `w ← w · (1 - lr · wd)` before the optimizer's step,
/// on trainable weight matrices and kernels only: biases, norm scales and shifts and running
/// statistics (all one-dimensional) are left alone, as are frozen parameters.
pub struct DecoupledDecay {
    /// `1 - lr · wd`.
    pub factor: f64,
}

impl ModuleMapper for DecoupledDecay {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D < 2 {
            return param;
        }
        let factor = self.factor;
        param.map(|t| {
            if t.is_require_grad() {
                t.mul_scalar(factor).detach().require_grad()
            } else {
                t
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{BatchNormConfig, LinearConfig};
    use burn::tensor::Device;

    #[test]
    fn stops_after_patience_epochs_without_a_real_improvement() {
        let e = EarlyStopping {
            patience: 2,
            min_delta: 0.01,
            monitor: Monitor::ValAcc,
        };
        assert!(!e.should_stop(&[0.80, 0.85]));
        assert!(!e.should_stop(&[0.80, 0.85, 0.855]));
        // 0.855 and 0.859 are within min_delta of 0.85: two epochs without improvement.
        assert!(e.should_stop(&[0.80, 0.85, 0.855, 0.859]));
        assert!(!e.should_stop(&[0.80, 0.85, 0.855, 0.87]));
        let l = EarlyStopping {
            patience: 1,
            min_delta: 0.0,
            monitor: Monitor::ValLoss,
        };
        assert!(!l.should_stop(&[1.0, 0.9]));
        assert!(l.should_stop(&[1.0, 0.9, 0.95]));
    }

    #[test]
    fn decay_shrinks_weights_but_not_biases_norms_or_frozen_ones() {
        let d = Device::flex().autodiff();
        let fc = LinearConfig::new(3, 2).init(&d);
        let bn = BatchNormConfig::new(2).init(&d);
        let w = fc.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let b = fc
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let decayed = fc.clone().map(&mut DecoupledDecay { factor: 0.5 });
        let w2 = decayed
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b2 = decayed.bias.as_ref().unwrap().val();
        assert!(decayed.weight.val().is_require_grad());
        assert!(w.iter().zip(&w2).all(|(a, b)| (a * 0.5 - b).abs() < 1e-7));
        assert_eq!(b, b2.into_data().try_to_vec::<f32>().unwrap());
        let bn2 = bn.clone().map(&mut DecoupledDecay { factor: 0.5 });
        assert_eq!(
            bn.gamma.val().into_data().try_to_vec::<f32>().unwrap(),
            bn2.gamma.val().into_data().try_to_vec::<f32>().unwrap()
        );
        let frozen = fc.no_grad().map(&mut DecoupledDecay { factor: 0.5 });
        assert_eq!(
            frozen.weight.val().into_data().try_to_vec::<f32>().unwrap(),
            w
        );
    }
}
