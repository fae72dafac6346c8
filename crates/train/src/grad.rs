//! Gradient clipping by global norm (PyTorch's `clip_grad_norm_`; Burn's own clipping works
//! per tensor) and gradient accumulation over several batches, on Burn's `GradientsParams`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Visits the trainable parameters of a module and applies `f` to each one's gradient.
struct EachGrad<'a, F> {
    grads: &'a mut GradientsParams,
    f: F,
}

/// What to do with one gradient: return its replacement (or `None` to drop it).
trait GradFn {
    fn apply<const D: usize>(&mut self, g: Tensor<D>) -> Option<Tensor<D>>;
}

impl<F: GradFn> ModuleVisitor for EachGrad<'_, F> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id)
            && let Some(out) = self.f.apply(g)
        {
            self.grads.register(param.id, out);
        }
    }
}

struct SumSquares(Option<Tensor<1>>);

impl GradFn for SumSquares {
    fn apply<const D: usize>(&mut self, g: Tensor<D>) -> Option<Tensor<D>> {
        let s = g.clone().powi_scalar(2).sum();
        self.0 = Some(match self.0.take() {
            Some(acc) => acc + s,
            None => s,
        });
        Some(g)
    }
}

struct Scale(f64);

impl GradFn for Scale {
    fn apply<const D: usize>(&mut self, g: Tensor<D>) -> Option<Tensor<D>> {
        Some(g.mul_scalar(self.0))
    }
}

fn each<M: Module, F: GradFn>(model: &M, grads: &mut GradientsParams, f: F) -> F {
    let mut v = EachGrad { grads, f };
    model.visit(&mut v);
    v.f
}

/// The global L2 norm of all gradients of `model`.
pub fn global_norm<M: Module>(model: &M, grads: &mut GradientsParams) -> f64 {
    each(model, grads, SumSquares(None))
        .0
        .map(|t| t.into_scalar::<f32>() as f64)
        .unwrap_or(0.0)
        .sqrt()
}

/// Scales every gradient so that their global norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping.
pub fn clip_global_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_norm(model, grads);
    if norm.is_finite() && norm > max_norm {
        each(model, grads, Scale(max_norm / (norm + 1e-6)));
    }
    norm
}

/// Multiplies every gradient by `factor` (averaging accumulated gradients).
pub fn scale<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    each(model, grads, Scale(factor));
}

/// Adds `new` into `acc`, parameter by parameter.
pub fn accumulate<M: Module>(model: &M, acc: &mut GradientsParams, mut new: GradientsParams) {
    struct Merge<'a> {
        acc: &'a mut GradientsParams,
        new: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Merge<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.new.remove::<D>(param.id) {
                let sum = match self.acc.remove::<D>(param.id) {
                    Some(a) => a + g,
                    None => g,
                };
                self.acc.register(param.id, sum);
            }
        }
    }
    model.visit(&mut Merge { acc, new: &mut new });
}

/// Dynamic loss scaling for float16 training, as PyTorch's `GradScaler` with its defaults:
/// the loss is multiplied by `scale` before the backward pass so that small gradients do not
/// underflow float16; a step whose gradients overflowed is skipped and the scale halved, and
/// after 2,000 steps in a row without overflow it doubles.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScale {
    /// What the loss is multiplied by.
    pub scale: f64,
    /// Steps since the scale last changed without an overflow.
    good: usize,
}

impl Default for LossScale {
    fn default() -> Self {
        Self {
            scale: 65536.0,
            good: 0,
        }
    }
}

impl LossScale {
    /// Steps without overflow after which the scale doubles.
    pub const GROWTH_INTERVAL: usize = 2000;

    /// Divides `grads` (of a loss multiplied by [`Self::scale`]) by the scale; returns whether
    /// they are finite, so that the step may be taken, and adjusts the scale.
    pub fn unscale<M: Module>(&mut self, model: &M, grads: &mut GradientsParams) -> bool {
        scale(model, grads, 1.0 / self.scale);
        let finite = global_norm(model, grads).is_finite();
        self.update(finite);
        finite
    }

    /// Halves the scale after an overflow; doubles it after [`Self::GROWTH_INTERVAL`] steps
    /// in a row without one.
    pub fn update(&mut self, finite: bool) {
        if !finite {
            self.scale = (self.scale / 2.0).max(f64::MIN_POSITIVE);
            self.good = 0;
        } else {
            self.good += 1;
            if self.good == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    fn grads_of(scale: f32) -> (burn::nn::Linear, GradientsParams) {
        let d = Device::flex().autodiff();
        let fc = LinearConfig::new(2, 1).init(&d);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32 * scale, 4.0 * scale], [1, 2]),
            &d,
        );
        // d(sum(fc(x)))/dW = x, d/db = 1: global norm sqrt(9s² + 16s² + 1).
        let loss = fc.forward(x).sum();
        let g = GradientsParams::from_grads(loss.backward(), &fc);
        (fc, g)
    }

    #[test]
    fn clipping_scales_to_the_global_norm_and_leaves_small_gradients() {
        let (fc, mut g) = grads_of(1.0);
        let norm = clip_global_norm(&fc, &mut g, 1.0);
        assert!((norm - 26f64.sqrt()).abs() < 1e-5);
        assert!((global_norm(&fc, &mut g) - 1.0).abs() < 1e-4);
        let before = global_norm(&fc, &mut g);
        clip_global_norm(&fc, &mut g, 10.0);
        assert!((global_norm(&fc, &mut g) - before).abs() < 1e-6);
    }

    #[test]
    fn accumulating_two_batches_adds_their_gradients() {
        let (fc, mut a) = grads_of(1.0);
        // A second batch through the same layer.
        let d = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &d);
        let again = GradientsParams::from_grads(fc.forward(x).sum().backward(), &fc);
        accumulate(&fc, &mut a, again);
        // Twice the single-batch gradient: norm sqrt(4 · 26).
        assert!((global_norm(&fc, &mut a) - (4.0f64 * 26.0).sqrt()).abs() < 1e-4);
        scale(&fc, &mut a, 0.5);
        assert!((global_norm(&fc, &mut a) - 26f64.sqrt()).abs() < 1e-4);
    }

    #[test]
    fn loss_scaling_unscales_skips_overflows_and_grows_back() {
        // Gradients of a loss scaled by 1024 come back unscaled.
        let (fc, mut g) = grads_of(1.0);
        scale(&fc, &mut g, 1024.0);
        let mut s = LossScale {
            scale: 1024.0,
            good: 0,
        };
        assert!(s.unscale(&fc, &mut g));
        assert!((global_norm(&fc, &mut g) - 26f64.sqrt()).abs() < 1e-4);
        assert_eq!(s.scale, 1024.0);
        // An overflow: the step is refused and the scale halves.
        let (fc, mut g) = grads_of(f32::INFINITY);
        assert!(!s.unscale(&fc, &mut g));
        assert_eq!(s.scale, 512.0);
        // 2,000 good steps in a row double it.
        for _ in 0..LossScale::GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale, 512.0);
        s.update(true);
        assert_eq!(s.scale, 1024.0);
        assert_eq!(LossScale::default().scale, 65536.0);
    }
}
