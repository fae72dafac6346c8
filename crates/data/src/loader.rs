//! The batch loader: per-epoch seeded shuffling, decoding on worker threads ahead of the
//! model, and contiguous batch buffers.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::augment::{Augment, mix_batch, sample_rng};
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
    /// Soft targets `[N, num_classes]` (rows sum to 1) when MixUp/CutMix mixed the batch;
    /// `None` means the one-hot `labels` are the targets.
    pub soft: Option<Vec<f32>>,
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
    /// Random augmentation applied to each decoded image before `Preprocess` (training
    /// only), with an RNG per `(seed, epoch, sample)`; plus MixUp/CutMix per batch.
    pub augment: Option<Arc<Augment>>,
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
            augment: None,
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
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on: exactly those [`Self::epoch`] yields after
    /// its first `first` (same samples, same augmentation), for resuming mid-epoch.
    pub fn epoch_from(&self, epoch: usize, first: usize) -> Batches {
        let order = Arc::new(self.order(epoch));
        let num = self.num_batches().saturating_sub(first);
        let workers = self.workers.clamp(1, num.max(1));
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.prefetch.max(1));
            receivers.push(rx);
            let job = Job {
                ds: self.dataset.clone(),
                pre: self.pre.clone(),
                order: order.clone(),
                batch_size: self.batch_size,
                augment: self.augment.clone(),
                seed: self.seed,
                epoch,
            };
            std::thread::spawn(move || worker(job, first + w, workers, tx));
        }
        Batches {
            receivers,
            next: 0,
            num,
        }
    }
}

/// What one worker thread needs to build its batches of an epoch.
struct Job {
    ds: Arc<dyn Dataset>,
    pre: Arc<Preprocess>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    augment: Option<Arc<Augment>>,
    seed: u64,
    epoch: usize,
}

impl Job {
    /// Decodes, augments (if enabled) and preprocesses sample `i` into `out`.
    fn load(&self, i: usize, out: &mut [f32]) -> Result<(), crate::DataError> {
        match &self.augment {
            Some(aug) if !aug.is_empty() => {
                let mut rng = sample_rng(self.seed, self.epoch, i);
                let img = aug.apply(self.ds.image(i)?, &mut rng);
                self.pre.apply(&img, out);
                Ok(())
            }
            _ => self.ds.load_into(i, &self.pre, out),
        }
    }
}

fn worker(job: Job, first: usize, step: usize, tx: SyncSender<Batch>) {
    let Job {
        ref ds,
        ref pre,
        ref order,
        batch_size,
        ..
    } = job;
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
            match job.load(i, &mut images[slot * len..(slot + 1) * len]) {
                Ok(()) => {
                    labels.push(ds.label(i));
                    indices.push(i);
                }
                Err(e) => skipped.push((ds.describe(i), e.to_string())),
            }
        }
        images.truncate(labels.len() * len);
        let shape = [labels.len(), pre.channels, pre.size[0], pre.size[1]];
        let mut batch = Batch {
            images,
            labels,
            indices,
            shape,
            skipped,
            soft: None,
        };
        if let Some(aug) = &job.augment {
            // Batch-level RNG: a stream of its own (seed offset) per (epoch, batch).
            let mut rng = sample_rng(job.seed ^ 0xBA7C_4000, job.epoch, b);
            if let Some(mix) = aug.batch_mix(&mut rng) {
                mix_batch(&mut batch, ds.classes().len(), mix, &mut rng);
            }
        }
        if tx.send(batch).is_err() {
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
    fn augmentation_is_per_sample_seeded_whatever_the_worker_count() {
        // 6x6 images with a horizontal gradient so flips and shifts show.
        let n = 40;
        let pixels = (0..n)
            .flat_map(|i| (0..36).map(move |p| ((p % 6) * 40 + i) as u8))
            .collect();
        let ds: Arc<dyn Dataset> = Arc::new(InMemory::gray(
            pixels,
            [6, 6],
            (0..n).map(|i| i % 4).collect(),
            (0..4).map(|c| c.to_string()).collect(),
        ));
        let pre = Preprocess {
            channels: 1,
            size: [6, 6],
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut loader = Loader::new(ds, pre, 8, true, 3);
        loader.augment = Some(Arc::new(
            Augment::parse("hflip,shift=0.3,mixup=0.4").unwrap(),
        ));
        let run = |l: &Loader, e| -> Vec<Batch> { l.epoch(e).collect() };
        loader.workers = 3;
        let a = run(&loader, 0);
        loader.workers = 1;
        let b = run(&loader, 0);
        let c = run(&loader, 1);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.images, y.images);
            assert_eq!(x.soft, y.soft);
            let soft = x.soft.as_ref().expect("mixup gives soft targets");
            assert_eq!(soft.len(), x.labels.len() * 4);
            for row in soft.chunks(4) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        let flat = |v: &[Batch]| v.iter().flat_map(|b| b.images.clone()).collect::<Vec<_>>();
        assert_ne!(flat(&a), flat(&c));
        // Without augmentation the same loader yields the plain images.
        loader.augment = None;
        let plain = run(&loader, 0);
        assert!(plain.iter().all(|b| b.soft.is_none()));
        assert_ne!(flat(&plain), flat(&a));
    }

    #[test]
    fn an_epoch_can_start_at_any_batch() {
        let mut loader = Loader::new(data(53), pre(), 5, true, 7);
        loader.workers = 3;
        let all: Vec<Vec<usize>> = loader.epoch(2).map(|b| b.indices).collect();
        let tail: Vec<Vec<usize>> = loader.epoch_from(2, 4).map(|b| b.indices).collect();
        assert_eq!(tail, all[4..]);
        assert_eq!(loader.epoch_from(2, 11).count(), 0);
    }

    #[test]
    fn evaluation_order_is_dataset_order() {
        let loader = Loader::new(data(25), pre(), 8, false, 0);
        let ids: Vec<usize> = loader.epoch(3).flat_map(|b| b.indices).collect();
        assert_eq!(ids, (0..25).collect::<Vec<_>>());
    }
}
