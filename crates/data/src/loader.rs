//! The batch loader: per-epoch seeded shuffling, decoding on worker threads ahead of the
//! model, and contiguous batch buffers.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::dataset::Dataset;
use crate::transform::Preprocess;

/// One batch, laid out as `[N, C, H, W]` floats.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `N * C * H * W` floats.
    pub images: Vec<f32>,
    /// `N` labels.
    pub labels: Vec<usize>,
    /// Dataset indices of the samples, in order.
    pub indices: Vec<usize>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Samples that could not be loaded and were left out: `(description, error)`.
    pub skipped: Vec<(String, String)>,
}

/// Iterates a dataset in batches, `workers` threads decoding up to `prefetch` batches each
/// ahead of the consumer. Batch order depends only on `(seed, epoch)`, never on thread timing.
#[derive(Clone)]
pub struct Loader {
    dataset: Arc<dyn Dataset>,
    pre: Arc<Preprocess>,
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (training) or keep dataset order (evaluation).
    pub shuffle: bool,
    /// Base seed of the shuffles.
    pub seed: u64,
    /// Decoding threads.
    pub workers: usize,
    /// Batches each worker may hold ready.
    pub prefetch: usize,
}

impl Loader {
    /// A loader with one worker per core and a prefetch of 2 batches per worker.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        pre: Preprocess,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
    ) -> Self {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            dataset,
            pre: Arc::new(pre),
            batch_size: batch_size.max(1),
            shuffle,
            seed,
            workers,
            prefetch: 2,
        }
    }

    /// The dataset being loaded.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.dataset.len().div_ceil(self.batch_size)
    }

    /// Sample order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            let seed = self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        order
    }

    /// The batches of `epoch`, decoded on worker threads.
    pub fn epoch(&self, epoch: usize) -> Batches {
        let order = Arc::new(self.order(epoch));
        let num = self.num_batches();
        let workers = self.workers.clamp(1, num.max(1));
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.prefetch.max(1));
            receivers.push(rx);
            let (ds, pre, order, bs) = (
                self.dataset.clone(),
                self.pre.clone(),
                order.clone(),
                self.batch_size,
            );
            std::thread::spawn(move || worker(ds, pre, order, bs, w, workers, tx));
        }
        Batches {
            receivers,
            next: 0,
            num,
        }
    }
}

fn worker(
    ds: Arc<dyn Dataset>,
    pre: Arc<Preprocess>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    first: usize,
    step: usize,
    tx: SyncSender<Batch>,
) {
    let len = pre.sample_len();
    let mut b = first;
    while b * batch_size < order.len() {
        let ids = &order[b * batch_size..((b + 1) * batch_size).min(order.len())];
        let mut images = vec![0f32; ids.len() * len];
        let mut labels = Vec::with_capacity(ids.len());
        let mut indices = Vec::with_capacity(ids.len());
        let mut skipped = Vec::new();
        for &i in ids {
            let slot = labels.len();
            match ds.load_into(i, &pre, &mut images[slot * len..(slot + 1) * len]) {
                Ok(()) => {
                    labels.push(ds.label(i));
                    indices.push(i);
                }
                Err(e) => skipped.push((ds.describe(i), e.to_string())),
            }
        }
        images.truncate(labels.len() * len);
        let shape = [labels.len(), pre.channels, pre.size[0], pre.size[1]];
        if tx
            .send(Batch {
                images,
                labels,
                indices,
                shape,
                skipped,
            })
            .is_err()
        {
            return; // The consumer stopped early.
        }
        b += step;
    }
}

/// The batches of one epoch, in order.
pub struct Batches {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    num: usize,
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.num {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        self.receivers[w].recv().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num - self.next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::InMemory;

    fn data(n: usize) -> Arc<dyn Dataset> {
        let pixels = (0..n).flat_map(|i| [i as u8; 4]).collect();
        Arc::new(InMemory::gray(
            pixels,
            [2, 2],
            (0..n).map(|i| i % 3).collect(),
            vec!["a".into(), "b".into(), "c".into()],
        ))
    }

    fn pre() -> Preprocess {
        Preprocess {
            channels: 1,
            size: [2, 2],
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        }
    }

    #[test]
    fn every_sample_once_per_epoch_in_a_seeded_order() {
        let mut loader = Loader::new(data(103), pre(), 10, true, 1);
        loader.workers = 3;
        let batches: Vec<Batch> = loader.epoch(0).collect();
        assert_eq!(batches.len(), 11);
        assert_eq!(batches[10].shape, [3, 1, 2, 2]);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        // Pixel values carry the index: the buffer matches the indices.
        for b in &batches {
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.images[k * 4], i as f32);
                assert_eq!(b.labels[k], i % 3);
            }
        }
        let first = seen.clone();
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        // Same epoch, same order whatever the worker count; another epoch, another order.
        loader.workers = 1;
        let again: Vec<usize> = loader.epoch(0).flat_map(|b| b.indices).collect();
        assert_eq!(again, first);
        let next: Vec<usize> = loader.epoch(1).flat_map(|b| b.indices).collect();
        assert_ne!(next, first);
    }

    #[test]
    fn evaluation_order_is_dataset_order() {
        let loader = Loader::new(data(25), pre(), 8, false, 0);
        let ids: Vec<usize> = loader.epoch(3).flat_map(|b| b.indices).collect();
        assert_eq!(ids, (0..25).collect::<Vec<_>>());
    }
}
