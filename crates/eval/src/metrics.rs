//! Classification metrics accumulated from logits: loss, top-k accuracy, confusion matrix.

use serde::Serialize;

/// Running totals over an evaluation. Cross-entropy is computed here from the logits (in
/// f64, with a log-sum-exp shift), so the numbers do not depend on the backend's reduction.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Number of classes.
    pub num_classes: usize,
    /// `confusion[true * K + predicted]` counts.
    pub confusion: Vec<u64>,
    /// Sum of per-sample cross-entropy losses.
    pub loss_sum: f64,
    /// Samples seen.
    pub count: u64,
    /// Samples whose label ranks in the top 5.
    pub top5_correct: u64,
}

/// Rank of `label` in `row`: how many classes score strictly higher. Ties count in the
/// label's favour, so a row of equal scores ranks every label first.
pub fn rank_of(row: &[f32], label: usize) -> usize {
    let v = row[label];
    row.iter().filter(|&&x| x > v).count()
}

/// Index of the largest score (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Softmax cross-entropy of one row of logits against `label`.
pub fn cross_entropy(row: &[f32], label: usize) -> f64 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    lse - row[label] as f64
}

/// Softmax probabilities of one row of logits.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f32> = row.iter().map(|&x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

impl Metrics {
    /// Empty totals for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            confusion: vec![0; num_classes * num_classes],
            loss_sum: 0.0,
            count: 0,
            top5_correct: 0,
        }
    }

    /// Adds a batch: `logits` is `labels.len()` rows of `num_classes` scores.
    pub fn update(&mut self, logits: &[f32], labels: &[usize]) {
        let k = self.num_classes;
        assert_eq!(
            logits.len(),
            labels.len() * k,
            "logits do not match labels x classes"
        );
        for (row, &label) in logits.chunks_exact(k).zip(labels) {
            self.loss_sum += cross_entropy(row, label);
            self.confusion[label * k + argmax(row)] += 1;
            if rank_of(row, label) < 5 {
                self.top5_correct += 1;
            }
            self.count += 1;
        }
    }

    /// Mean cross-entropy.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Top-1 accuracy in [0, 1].
    pub fn accuracy(&self) -> f64 {
        let k = self.num_classes;
        let right: u64 = (0..k).map(|i| self.confusion[i * k + i]).sum();
        right as f64 / self.count.max(1) as f64
    }

    /// Top-5 accuracy in [0, 1] (top-k with k = number of classes when fewer than 5).
    pub fn top5(&self) -> f64 {
        self.top5_correct as f64 / self.count.max(1) as f64
    }

    /// Accuracy of each class (recall); `None` for classes with no samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        let k = self.num_classes;
        (0..k)
            .map(|i| {
                let row: u64 = self.confusion[i * k..(i + 1) * k].iter().sum();
                (row > 0).then(|| self.confusion[i * k + i] as f64 / row as f64)
            })
            .collect()
    }

    /// The confusion matrix as rows (true class) of columns (predicted class).
    pub fn confusion_rows(&self) -> Vec<&[u64]> {
        self.confusion.chunks(self.num_classes).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_batch() {
        let mut m = Metrics::new(3);
        // Rows: right (0), wrong (pred 2, label 1), tie of all three (label 2 -> argmax 0).
        m.update(&[3.0, 1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 1.0, 1.0], &[0, 1, 2]);
        assert_eq!(m.count, 3);
        assert!((m.accuracy() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            m.confusion_rows(),
            vec![&[1, 0, 0][..], &[0, 0, 1][..], &[1, 0, 0][..]]
        );
        assert_eq!(
            m.per_class_accuracy(),
            vec![Some(1.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(m.top5(), 1.0);
        let ce_tie = (3.0f64).ln();
        let ce0 = (3f64.exp() + 1f64.exp() + 1.0).ln() - 3.0;
        let ce1 = (1.0 + 1f64.exp() + 2f64.exp()).ln() - 1.0;
        assert!((m.loss() - (ce0 + ce1 + ce_tie) / 3.0).abs() < 1e-9);
    }

    #[test]
    fn top5_counts_ties_for_the_label_and_excludes_sixth() {
        let row = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 2.0];
        assert_eq!(rank_of(&row, 4), 4);
        assert_eq!(rank_of(&row, 6), 4, "a tie with the 5th is still top-5");
        assert_eq!(rank_of(&row, 5), 6);
        let mut m = Metrics::new(7);
        m.update(&row, &[5]);
        m.update(&row, &[6]);
        assert_eq!(m.top5_correct, 1);
        assert_eq!(m.confusion.iter().sum::<u64>(), 2);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6);
        assert!(cross_entropy(&[1000.0, 0.0], 0).abs() < 1e-9);
    }
}
