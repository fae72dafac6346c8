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
}
