//! Running a model over a loader or a list of images.

use burn::tensor::{Device, Tensor, TensorData};
use convnet_data::{Batch, Loader};
use convnet_nn::Network;

use crate::metrics::{Metrics, softmax};

/// Moves a batch's pixels into a `[N, C, H, W]` tensor on `device` (no host copy;
/// `batch.images` is left empty).
pub fn images_tensor(batch: &mut Batch, device: &Device) -> Tensor<4> {
    let images = std::mem::take(&mut batch.images);
    Tensor::<4>::from_data(TensorData::new(images, batch.shape), device)
}

/// Logits of one batch, as `N * classes` floats. `model` should be in inference mode
/// ([`valid`](burn::module::Module::valid)). Consumes the batch's pixels.
pub fn logits_of(model: &Network, batch: &mut Batch, device: &Device) -> Vec<f32> {
    let x = images_tensor(batch, device);
    model
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .expect("logits are f32")
}

/// Evaluates `model` (inference mode) over every batch of `loader`, calling `on_batch` after
/// each (for progress and warnings about skipped samples).
pub fn evaluate(
    model: &Network,
    loader: &Loader,
    device: &Device,
    mut on_batch: impl FnMut(&Batch, &Metrics),
) -> Metrics {
    let mut m = Metrics::new(loader.dataset().classes().len());
    for mut batch in loader.epoch(0) {
        if !batch.labels.is_empty() {
            let logits = logits_of(model, &mut batch, device);
            m.update(&logits, &batch.labels);
        }
        on_batch(&batch, &m);
    }
    m
}

/// The `k` most probable classes of each row of logits, as `(class index, probability)`.
pub fn predict_top_k(logits: &[f32], num_classes: usize, k: usize) -> Vec<Vec<(usize, f32)>> {
    logits
        .chunks_exact(num_classes)
        .map(|row| {
            let p = softmax(row);
            let mut idx: Vec<usize> = (0..num_classes).collect();
            idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            idx.into_iter().take(k).map(|i| (i, p[i])).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_sorted_and_sized() {
        let out = predict_top_k(&[0.0, 2.0, 1.0, 5.0, 5.0, 5.0], 3, 2);
        assert_eq!(out[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(out[0][0].1 > out[0][1].1);
        assert_eq!(out[1].iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((out[1][0].1 - 1.0 / 3.0).abs() < 1e-6);
    }
}
