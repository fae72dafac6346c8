//! Classification metrics accumulated from logits or probabilities: loss, top-k accuracy,
//! confusion matrix, per-class precision/recall/F1, macro/micro averages, calibration (ECE)
//! and the most confused class pairs.
//!
//! Tie rules (documented because hand-made cases hit them): top-1 is the *first* class with
//! the highest score; top-k counts a sample as right when fewer than k classes score
//! *strictly* higher than its label (ties go in the label's favour).

use serde::Serialize;

/// Confidence bins of the expected calibration error (Guo et al. 2017 use 15).
pub const ECE_BINS: usize = 15;

/// Running totals over an evaluation. Cross-entropy is computed here from the logits (in
/// f64, with a log-sum-exp shift), so the numbers do not depend on the backend's reduction.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Per confidence bin: samples whose top-1 probability falls in `((b)/15, (b+1)/15]`.
    pub bin_count: Vec<u64>,
    /// Per confidence bin: sum of top-1 probabilities.
    pub bin_confidence: Vec<f64>,
    /// Per confidence bin: samples whose top-1 prediction is right.
    pub bin_correct: Vec<u64>,
}

/// Precision, recall and F1 of one class (or an average), with its support.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    /// TP / (TP + FP); 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class has no samples.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Samples whose true class this is (for an average: all samples).
    pub support: u64,
}

impl ClassScores {
    fn from_counts(tp: u64, fp: u64, fn_: u64) -> Self {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            f1,
            support: tp + fn_,
        }
    }
}

/// One off-diagonal cell of the confusion matrix: `count` samples of class `truth` predicted
/// as `predicted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// True class index.
    pub truth: usize,
    /// Predicted class index.
    pub predicted: usize,
    /// How many samples.
    pub count: u64,
}

/// Confidence bin of a top-1 probability: bin `b` holds `(b/15, (b+1)/15]`, and 0 goes to bin 0.
pub fn ece_bin(confidence: f64) -> usize {
    ((confidence * ECE_BINS as f64).ceil() as usize)
        .saturating_sub(1)
        .min(ECE_BINS - 1)
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
            bin_count: vec![0; ECE_BINS],
            bin_confidence: vec![0.0; ECE_BINS],
            bin_correct: vec![0; ECE_BINS],
        }
    }

    /// Counts one sample given its scores (any monotone scale: logits or probabilities), its
    /// loss and its top-1 probability.
    fn add(&mut self, row: &[f32], label: usize, loss: f64, confidence: f64) {
        let k = self.num_classes;
        let pred = argmax(row);
        self.loss_sum += loss;
        self.confusion[label * k + pred] += 1;
        if rank_of(row, label) < 5 {
            self.top5_correct += 1;
        }
        let b = ece_bin(confidence);
        self.bin_count[b] += 1;
        self.bin_confidence[b] += confidence;
        self.bin_correct[b] += u64::from(pred == label);
        self.count += 1;
    }

    /// Adds a batch of probabilities (e.g. averaged over test-time views or over an ensemble):
    /// `probs` is `labels.len()` rows of `num_classes` probabilities; the loss is their
    /// negative log-likelihood (probabilities clamped at 1e-12).
    pub fn update_probs(&mut self, probs: &[f32], labels: &[usize]) {
        let k = self.num_classes;
        assert_eq!(
            probs.len(),
            labels.len() * k,
            "probabilities do not match labels x classes"
        );
        for (row, &label) in probs.chunks_exact(k).zip(labels) {
            let loss = -(row[label].max(1e-12) as f64).ln();
            let conf = row[argmax(row)] as f64;
            self.add(row, label, loss, conf);
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
            let conf = softmax(row)[argmax(row)] as f64;
            self.add(row, label, cross_entropy(row, label), conf);
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

    /// Per-class precision, recall and F1 from the confusion matrix.
    pub fn per_class(&self) -> Vec<ClassScores> {
        let k = self.num_classes;
        (0..k)
            .map(|c| {
                let tp = self.confusion[c * k + c];
                let row: u64 = self.confusion[c * k..(c + 1) * k].iter().sum();
                let col: u64 = (0..k).map(|i| self.confusion[i * k + c]).sum();
                ClassScores::from_counts(tp, col - tp, row - tp)
            })
            .collect()
    }

    /// Unweighted mean of precision, recall and F1 over the classes that have samples
    /// (scikit-learn's `average="macro"` restricted to present labels).
    pub fn macro_avg(&self) -> ClassScores {
        let present: Vec<ClassScores> = self
            .per_class()
            .into_iter()
            .filter(|s| s.support > 0)
            .collect();
        let n = present.len().max(1) as f64;
        ClassScores {
            precision: present.iter().map(|s| s.precision).sum::<f64>() / n,
            recall: present.iter().map(|s| s.recall).sum::<f64>() / n,
            f1: present.iter().map(|s| s.f1).sum::<f64>() / n,
            support: self.count,
        }
    }

    /// Precision, recall and F1 from the summed TP/FP/FN of all classes. With one label per
    /// sample all three equal top-1 accuracy; reported for completeness.
    pub fn micro_avg(&self) -> ClassScores {
        let k = self.num_classes;
        let tp: u64 = (0..k).map(|i| self.confusion[i * k + i]).sum();
        ClassScores::from_counts(tp, self.count - tp, self.count - tp)
    }

    /// Expected calibration error over [`ECE_BINS`] equal-width confidence bins:
    /// `sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|`.
    pub fn ece(&self) -> f64 {
        let n = self.count.max(1) as f64;
        (0..ECE_BINS)
            .filter(|&b| self.bin_count[b] > 0)
            .map(|b| {
                let c = self.bin_count[b] as f64;
                (self.bin_correct[b] as f64 / c - self.bin_confidence[b] / c).abs() * c / n
            })
            .sum()
    }

    /// The `n` largest off-diagonal cells of the confusion matrix, largest first (ties in
    /// `(truth, predicted)` order); empty cells are left out.
    pub fn most_confused(&self, n: usize) -> Vec<Confusion> {
        let k = self.num_classes;
        let mut cells: Vec<Confusion> = (0..k * k)
            .filter(|&i| i / k != i % k && self.confusion[i] > 0)
            .map(|i| Confusion {
                truth: i / k,
                predicted: i % k,
                count: self.confusion[i],
            })
            .collect();
        cells.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then((a.truth, a.predicted).cmp(&(b.truth, b.predicted)))
        });
        cells.truncate(n);
        cells
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
    fn top5_with_ties_on_a_hand_made_batch() {
        // Seven classes. Row A: the label (3) ties with four others at the top, and two more
        // score lower: 0 classes strictly higher -> top-5 right, and top-1 is class 0 (first
        // of the tie) -> wrong. Row B: five classes strictly above the label -> top-5 wrong.
        // Row C: four strictly above, the label tied with a fifth -> top-5 right.
        let a = [2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0];
        let b = [5.0, 5.0, 4.0, 4.0, 3.0, 1.0, 1.0];
        let c = [5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 0.0];
        let mut m = Metrics::new(7);
        m.update(&[a, b, c].concat(), &[3, 5, 5]);
        assert_eq!(m.top5_correct, 2);
        assert!((m.top5() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            m.confusion[3 * 7],
            1,
            "tie at the top goes to the first class"
        );
        assert_eq!(m.accuracy(), 0.0);
        // Probabilities take the same rule.
        let mut p = Metrics::new(7);
        let probs: Vec<f32> = [a, b, c].iter().flat_map(|r| softmax(r)).collect();
        p.update_probs(&probs, &[3, 5, 5]);
        assert_eq!(
            (p.top5_correct, p.confusion.clone()),
            (m.top5_correct, m.confusion.clone())
        );
    }

    #[test]
    fn confusion_sums_precision_recall_f1_and_averages() {
        // Three classes, 10 samples; predictions chosen by hand:
        // true 0: 0,0,0,1   true 1: 1,1,0   true 2: 2,1,1
        let pairs = [
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 1),
            (1, 0),
            (2, 2),
            (2, 1),
            (2, 1),
        ];
        let mut m = Metrics::new(3);
        for (t, p) in pairs {
            let mut row = [0.0f32; 3];
            row[p] = 1.0;
            m.update(&row, &[t]);
        }
        let rows = m.confusion_rows();
        assert_eq!(rows, vec![&[3, 1, 0][..], &[1, 2, 0][..], &[0, 2, 1][..]]);
        let row_sums: Vec<u64> = rows.iter().map(|r| r.iter().sum()).collect();
        assert_eq!(row_sums, vec![4, 3, 3], "rows sum to the class supports");
        assert_eq!(m.confusion.iter().sum::<u64>(), m.count);
        let s = m.per_class();
        // class 0: TP 3, FP 1, FN 1 ; class 1: TP 2, FP 3, FN 1 ; class 2: TP 1, FP 0, FN 2
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s[0].precision, 0.75) && close(s[0].recall, 0.75) && close(s[0].f1, 0.75));
        assert!(close(s[1].precision, 0.4) && close(s[1].recall, 2.0 / 3.0));
        assert!(close(s[1].f1, 2.0 * 0.4 * (2.0 / 3.0) / (0.4 + 2.0 / 3.0)));
        assert!(close(s[2].precision, 1.0) && close(s[2].recall, 1.0 / 3.0) && close(s[2].f1, 0.5));
        assert_eq!(
            s.iter().map(|c| c.support).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        let mac = m.macro_avg();
        assert!(close(mac.precision, (0.75 + 0.4 + 1.0) / 3.0));
        assert!(close(mac.recall, (0.75 + 2.0 / 3.0 + 1.0 / 3.0) / 3.0));
        let mic = m.micro_avg();
        assert!(close(mic.precision, 0.6) && close(mic.recall, 0.6) && close(mic.f1, 0.6));
        assert!(close(m.accuracy(), 0.6));
        // Most confused: 2->1 (2 samples), then 0->1 and 1->0 (1 each, in index order).
        let top: Vec<(usize, usize, u64)> = m
            .most_confused(3)
            .iter()
            .map(|c| (c.truth, c.predicted, c.count))
            .collect();
        assert_eq!(top, vec![(2, 1, 2), (0, 1, 1), (1, 0, 1)]);
        assert_eq!(m.most_confused(10).len(), 3, "empty cells are not listed");
    }

    #[test]
    fn precision_of_a_never_predicted_class_is_zero() {
        let mut m = Metrics::new(2);
        m.update(&[1.0, 0.0, 1.0, 0.0], &[0, 1]);
        let s = m.per_class();
        assert_eq!((s[1].precision, s[1].recall, s[1].f1), (0.0, 0.0, 0.0));
        assert_eq!(s[0].precision, 0.5);
    }

    #[test]
    fn ece_on_hand_made_probabilities() {
        // Bins are (b/15, (b+1)/15]. Four samples:
        //   conf 0.95 right, conf 0.95 wrong  -> bin 14: acc 0.5, conf 0.95, gap 0.45
        //   conf 0.50 right, conf 0.50 right  -> bin 7: acc 1.0, conf 0.5,  gap 0.5
        // ECE = 2/4 * 0.45 + 2/4 * 0.5 = 0.475.
        assert_eq!(ece_bin(0.95), 14);
        assert_eq!(ece_bin(0.5), 7);
        assert_eq!(ece_bin(1.0), 14);
        assert_eq!(ece_bin(0.0), 0);
        assert_eq!(ece_bin(1.0 / 15.0), 0, "right edge belongs to the bin");
        let probs = [0.95f32, 0.05, 0.95, 0.05, 0.5, 0.5, 0.5, 0.5];
        let mut m = Metrics::new(2);
        m.update_probs(&probs, &[0, 1, 0, 0]);
        assert!((m.ece() - 0.475).abs() < 1e-6, "{}", m.ece());
        // A perfectly calibrated bin: conf 0.5, half right -> 0.
        let mut m = Metrics::new(2);
        m.update_probs(&[0.5, 0.5, 0.5, 0.5], &[0, 1]);
        assert!(m.ece().abs() < 1e-9);
        // Loss of probabilities is their NLL.
        assert!((m.loss() - 2f64.ln()).abs() < 1e-6);
        // Logits go through softmax: equal logits -> conf 1/2 in bin 7.
        let mut m = Metrics::new(2);
        m.update(&[3.0, 3.0], &[0]);
        assert_eq!(m.bin_count[7], 1);
        assert!((m.ece() - 0.5).abs() < 1e-6);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6);
        assert!(cross_entropy(&[1000.0, 0.0], 0).abs() < 1e-9);
    }
}
