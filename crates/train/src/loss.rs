//! The training loss: cross-entropy against soft targets, which covers hard labels, label
//! smoothing (Inception v3's ε = 0.1) and the mixed labels of MixUp/CutMix in one function.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// Mean over the batch of `-Σ_k target_k · log softmax(logits)_k`.
///
/// # Shapes
/// `logits`, `targets`: `[N, K]` → scalar `[1]`
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0].max(1) as f64;
    (log_softmax(logits, 1) * targets).sum().neg().div_scalar(n)
}

/// Target rows for hard `labels` over `classes`, smoothed as PyTorch's
/// `CrossEntropyLoss(label_smoothing = eps)`: `(1 - eps) · one_hot + eps / K`.
pub fn smoothed_targets(labels: &[usize], classes: usize, eps: f64) -> Vec<f32> {
    let off = (eps / classes as f64) as f32;
    let on = (1.0 - eps) as f32 + off;
    let mut t = vec![off; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        t[row * classes + l] = on;
    }
    t
}

/// Smooths already-soft target rows (MixUp/CutMix) the same way: `(1 - eps) · t + eps / K`.
pub fn smooth_soft(targets: &mut [f32], classes: usize, eps: f64) {
    let off = (eps / classes as f64) as f32;
    for t in targets {
        *t = (1.0 - eps) as f32 * *t + off;
    }
}

/// `targets` (`N * classes` floats) as a `[N, classes]` tensor on `device`.
pub fn targets_tensor(targets: Vec<f32>, classes: usize, device: &Device) -> Tensor<2> {
    let n = targets.len() / classes.max(1);
    Tensor::from_data(TensorData::new(targets, [n, classes]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::Int;

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().try_to_vec::<f32>().unwrap()[0] as f64
    }

    #[test]
    fn label_smoothing_gives_the_known_loss() {
        let d = Device::flex();
        // p = (0.8, 0.2), label 0, eps 0.1: targets (0.95, 0.05),
        // loss = -(0.95 ln 0.8 + 0.05 ln 0.2) = 0.292462...
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![0.8f32.ln(), 0.2f32.ln()], [1, 2]), &d);
        let t = targets_tensor(smoothed_targets(&[0], 2, 0.1), 2, &d);
        let expected = -(0.95 * 0.8f64.ln() + 0.05 * 0.2f64.ln());
        assert!((scalar(soft_cross_entropy(logits, t)) - expected).abs() < 1e-6);
    }

    #[test]
    fn hard_targets_match_burn_cross_entropy_and_rows_sum_to_one() {
        let d = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0, 0.0, -1.0], [2, 3]),
            &d,
        );
        let labels = [2usize, 0];
        let ours = scalar(soft_cross_entropy(
            logits.clone(),
            targets_tensor(smoothed_targets(&labels, 3, 0.0), 3, &d),
        ));
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &d);
        let burn = scalar(CrossEntropyLossConfig::new().init(&d).forward(logits, y));
        assert!((ours - burn).abs() < 1e-6, "{ours} vs {burn}");
        let t = smoothed_targets(&labels, 3, 0.1);
        for row in t.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let mut mixed = vec![0.7f32, 0.3, 0.0];
        smooth_soft(&mut mixed, 3, 0.3);
        assert!((mixed.iter().sum::<f32>() - 1.0).abs() < 1e-6 && mixed[2] > 0.0);
    }
}
