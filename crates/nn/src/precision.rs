//! Mixed precision, as PyTorch's `torch.autocast`: the weights stay float32 (the optimizer's
//! master copy) and the layers compute in their input's float type, so a batch cast to
//! float16 or bfloat16 runs the convolutions and products in it.
//!
//! [`crate::trace::Layer::run`] is the one place the zoo's layers go through: a convolution or
//! linear layer whose weights differ in type from its input runs on a copy of its weights cast
//! to the input's type ([`cast_to_input`], a tracked cast, so their gradients come back to the
//! float32 weights in float32), and batch norm normalises in float32 (its statistics and
//! running averages stay float32) and casts its output back.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The float type a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    F32,
    /// Float16 activations and products, float32 weights and batch norm; the loss is scaled
    /// to keep small gradients from underflowing.
    F16,
    /// Bfloat16 activations and products (float32's range, so no loss scaling), float32
    /// weights and batch norm.
    Bf16,
}

impl Precision {
    /// The activations' float type, `None` for float32 (nothing to cast).
    pub fn half(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(FloatDType::F16),
            Precision::Bf16 => Some(FloatDType::BF16),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision '{s}'; use f32, f16 or bf16")),
        }
    }
}

/// Casts every float tensor of a module to one float type (tracked: gradients flow back).
struct CastTo(FloatDType);

impl ModuleMapper for CastTo {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// `module` with its weights cast to `x`'s float type when `weight` (one of them) has another
/// type; `None` when they already match. For layers without running state (convolution,
/// linear): a mapped copy of a module with running state would share it with the original.
pub(crate) fn cast_to_input<M: Module, const D: usize, const E: usize>(
    module: &M,
    weight: &Param<Tensor<E>>,
    x: &Tensor<D>,
) -> Option<M> {
    let dtype = x.dtype();
    (is_half(dtype) && dtype != weight.val().dtype())
        .then(|| module.clone().map(&mut CastTo(dtype.into())))
}

/// Whether `dtype` is a half type. Only those inputs are cast for: convnet's weights are
/// float32, so a float32 input (the default path, every layer of every pass) skips reading
/// the weight's type.
fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// `f(x)` computed in `weight`'s float type when `x` has another one, cast back to `x`'s:
/// batch norm's statistics in float32 under mixed precision.
pub(crate) fn in_weight_type<const D: usize, const E: usize>(
    weight: &Param<Tensor<E>>,
    x: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let dtype = x.dtype();
    if !is_half(dtype) {
        return f(x);
    }
    let wtype = weight.val().dtype();
    if dtype == wtype {
        return f(x);
    }
    f(x.cast(FloatDType::from(wtype))).cast(FloatDType::from(dtype))
}

/// `x` in float32 (a no-op when it already is): logits for the loss and the metrics.
pub fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}

/// `t` in `like`'s float type (a no-op when it already is): tensors a model makes inside its
/// forward pass (zeros to pad with) follow its activations under mixed precision.
pub fn same_type<const D: usize, const E: usize>(t: Tensor<D>, like: &Tensor<E>) -> Tensor<D> {
    let dtype = like.dtype();
    if t.dtype() == dtype {
        t
    } else {
        t.cast(FloatDType::from(dtype))
    }
}

/// `x` cast to the activations' float type of `precision` (a no-op for float32).
pub fn to_precision<const D: usize>(x: Tensor<D>, precision: Precision) -> Tensor<D> {
    match precision.half() {
        Some(dtype) => x.cast(dtype),
        None => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::small;
    use crate::registry::{MODELS, build};
    use crate::spec::ModelSpec;
    use burn::module::{ModuleVisitor, ParamId};
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Int, TensorData};

    /// Every parameter's gradient, flattened, in visiting order; with its dtype.
    fn gradients<M: Module>(model: &M, grads: &GradientsParams) -> Vec<(ParamId, DType, Vec<f32>)> {
        struct Collect<'a>(&'a GradientsParams, Vec<(ParamId, DType, Vec<f32>)>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    let dtype = g.dtype();
                    let v = to_f32(g).into_data().try_to_vec::<f32>().unwrap();
                    self.1.push((param.id, dtype, v));
                }
            }
        }
        let mut c = Collect(grads, Vec::new());
        model.visit(&mut c);
        c.1
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb).max(f64::MIN_POSITIVE)
    }

    /// Under f16 and bf16 a ResNet-20's logits and gradients follow float32's: the layers
    /// compute in the half type, the gradients reach the float32 weights in float32, and
    /// batch norm's running statistics stay float32. (Measured at batch 4, the gradients'
    /// cosine to float32's is at least 0.975 in f16 and 0.89 in bf16, whose mantissa is 3 bits
    /// shorter; batch norm over few values amplifies the rounding going back.)
    #[test]
    fn half_precision_follows_float32() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let net = build(&ModelSpec::new("resnet20", [3, 32, 32], 10), &device).unwrap();
        let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3], [4]), &device);
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let run = |precision: Precision| {
            // The same dropout masks in each run.
            device.seed(8);
            let logits = net.forward(to_precision(x.clone(), precision));
            let dtype = logits.dtype();
            let logits = to_f32(logits);
            // Float16 needs its loss scaled (as the trainer does) or small gradients vanish.
            let scale = if precision == Precision::F16 {
                1024.0
            } else {
                1.0
            };
            let loss = loss_fn.forward(logits.clone(), y.clone()).mul_scalar(scale);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let l = logits.into_data().try_to_vec::<f32>().unwrap();
            (dtype, l, gradients(&net, &grads))
        };
        let (_, l32, g32) = run(Precision::F32);
        for (precision, dtype, tol) in [
            (Precision::F16, DType::F16, 0.95),
            (Precision::Bf16, DType::BF16, 0.85),
        ] {
            let (got, l, g) = run(precision);
            assert_eq!(got, dtype, "{precision}: logits' type");
            assert!(
                cosine(&l, &l32) > tol,
                "{precision}: logits {:?} vs {:?}",
                &l[..4],
                &l32[..4]
            );
            assert_eq!(g.len(), g32.len(), "{precision}: gradients");
            for ((id, dt, v), (id32, _, v32)) in g.iter().zip(&g32) {
                assert_eq!(id, id32);
                assert_eq!(*dt, DType::F32, "{precision}: gradient type");
                let c = cosine(v, v32);
                assert!(
                    c > tol,
                    "{precision}: gradient cosine {c} ({} values)",
                    v.len()
                );
            }
        }
        struct Types(Vec<DType>);
        impl ModuleVisitor for Types {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.val().dtype());
            }
        }
        let mut types = Types(Vec::new());
        net.visit(&mut types);
        assert!(types.0.iter().all(|t| *t == DType::F32), "{:?}", types.0);
    }

    /// Every model of the zoo runs in f16 (no float32 tensor made inside a forward pass meets
    /// a float16 one): its logits come out in f16, finite, and every parameter that gets a
    /// gradient in float32 gets one in f16 too, in float32.
    #[test]
    fn every_model_runs_in_half_precision() {
        let device = Device::flex().autodiff();
        for entry in MODELS {
            let (net, s) = small(entry, &device);
            let x = Tensor::<4>::random(
                [2, 1, s.input_size[0], s.input_size[1]],
                Distribution::Default,
                &device,
            );
            let grads = |precision| {
                let logits = net.forward(to_precision(x.clone(), precision));
                let dtype = logits.dtype();
                let logits = to_f32(logits);
                let v = logits.clone().into_data().try_to_vec::<f32>().unwrap();
                let g = GradientsParams::from_grads(logits.sum().backward(), &net);
                (dtype, v, gradients(&net, &g))
            };
            let (_, _, g32) = grads(Precision::F32);
            let (dtype, logits, g16) = grads(Precision::F16);
            let name = entry.name;
            assert_eq!(dtype, DType::F16, "{name}");
            assert!(logits.iter().all(|v| v.is_finite()), "{name}: {logits:?}");
            assert_eq!(g16.len(), g32.len(), "{name}: gradients");
            // (Without loss scaling some overflow float16 here: the trainer's scale handles it.)
            assert!(g16.iter().all(|(_, dt, _)| *dt == DType::F32), "{name}");
        }
    }
}
