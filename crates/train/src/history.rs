//! Per-epoch history: `history.csv` and the loss/accuracy curve picture.

use std::path::Path;

use convnet_eval::plot::{Series, plot_curves};
use serde::{Deserialize, Serialize};

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_acc: f64,
    /// Validation loss (NaN without validation data).
    pub val_loss: f64,
    /// Validation accuracy (NaN without validation data).
    pub val_acc: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
    /// Training throughput, images per second.
    pub images_per_sec: f64,
}

/// All epochs so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Rows in epoch order.
    pub rows: Vec<HistoryRow>,
}

const HEADER: &str = "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_sec";

impl History {
    /// CSV text with a header line.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{:.6},{:.6},{:.6},{:.6},{:.3},{:.1}\n",
                r.epoch,
                r.lr,
                r.train_loss,
                r.train_acc,
                r.val_loss,
                r.val_acc,
                r.seconds,
                r.images_per_sec
            ));
        }
        s
    }

    /// Parses what [`Self::to_csv`] wrote.
    pub fn from_csv(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err("unexpected header".into());
        }
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 8 {
                return Err(format!("line {}: expected 8 fields", i + 2));
            }
            let num = |k: usize| {
                f[k].parse::<f64>()
                    .map_err(|e| format!("line {}: {e}", i + 2))
            };
            rows.push(HistoryRow {
                epoch: f[0].parse().map_err(|e| format!("line {}: {e}", i + 2))?,
                lr: num(1)?,
                train_loss: num(2)?,
                train_acc: num(3)?,
                val_loss: num(4)?,
                val_acc: num(5)?,
                seconds: num(6)?,
                images_per_sec: num(7)?,
            });
        }
        Ok(Self { rows })
    }

    /// Draws loss and accuracy per epoch, train and validation, into one PNG.
    pub fn plot(&self, path: &Path) -> Result<(), convnet_eval::plot::PlotError> {
        let series = |name: &str, f: fn(&HistoryRow) -> f64| Series {
            name: name.to_string(),
            points: self.rows.iter().map(|r| (r.epoch as f64, f(r))).collect(),
        };
        let loss = [
            series("train", |r| r.train_loss),
            series("validation", |r| r.val_loss),
        ];
        let acc = [
            series("train", |r| r.train_acc * 100.0),
            series("validation", |r| r.val_acc * 100.0),
        ];
        plot_curves(path, ("loss", &loss), ("accuracy (%)", &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let h = History {
            rows: vec![HistoryRow {
                epoch: 1,
                lr: 0.001,
                train_loss: 0.5,
                train_acc: 0.8,
                val_loss: f64::NAN,
                val_acc: 0.75,
                seconds: 12.5,
                images_per_sec: 4000.0,
            }],
        };
        let back = History::from_csv(&h.to_csv()).unwrap();
        assert_eq!(back.rows[0].epoch, 1);
        assert!(back.rows[0].val_loss.is_nan());
        assert_eq!(back.rows[0].val_acc, 0.75);
        assert!(History::from_csv("nope\n").is_err());
    }
}
