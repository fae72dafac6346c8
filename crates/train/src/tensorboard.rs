//! TensorBoard event files, so that `tensorboard --logdir runs` shows every run's curves.
//!
//! An event file is a sequence of TFRecords (`u64` length, masked CRC-32C of the length, the
//! bytes, masked CRC-32C of the bytes), each holding one `Event` protocol buffer. The few
//! fields needed (`wall_time`, `step`, `file_version`, `summary.value{tag, simple_value}`)
//! are encoded by hand here, so no protobuf dependency is needed.
//!
//! The file is rewritten whole from the history after every epoch (atomically), so a resumed
//! run that dropped epochs past its checkpoint shows exactly what `history.csv` holds.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::history::History;

/// File name prefix TensorBoard looks for.
pub const PREFIX: &str = "events.out.tfevents.";

/// TFRecord's CRC mask: rotate right by 15 and add a constant.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `data`.
pub fn push_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, ((field as u64) << 3) | wire as u64);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// An `Event` with `wall_time` (1, double), `step` (2, int64) and either `file_version`
/// (3, string) or `summary` (5) of `Value{tag (1), simple_value (2, float)}`s.
pub fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(&str, f32)],
) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step as u64);
    if let Some(v) = file_version {
        bytes_field(&mut e, 3, v.as_bytes());
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            bytes_field(&mut v, 1, tag.as_bytes());
            key(&mut v, 2, 5);
            v.extend_from_slice(&value.to_le_bytes());
            bytes_field(&mut summary, 1, &v);
        }
        bytes_field(&mut e, 5, &summary);
    }
    e
}

/// The scalars written per epoch, by tag, from one history row.
pub fn epoch_scalars(r: &crate::history::HistoryRow) -> Vec<(&'static str, f32)> {
    let mut v = vec![
        ("train/loss", r.train_loss as f32),
        ("train/acc", r.train_acc as f32),
        ("lr", r.lr as f32),
        ("throughput/images_per_sec", r.images_per_sec as f32),
    ];
    if r.val_acc.is_finite() {
        v.push(("val/loss", r.val_loss as f32));
        v.push(("val/acc", r.val_acc as f32));
    }
    v
}

/// The whole event file of a history: a version record, then one event per epoch (step =
/// epoch) whose wall time is `start` plus the epochs' cumulative seconds.
pub fn encode_history(history: &History, start: f64) -> Vec<u8> {
    let mut out = Vec::new();
    push_record(
        &mut out,
        &encode_event(start, 0, Some("brain.Event:2"), &[]),
    );
    let mut t = start;
    for r in &history.rows {
        t += r.seconds;
        push_record(
            &mut out,
            &encode_event(t, r.epoch as i64, None, &epoch_scalars(r)),
        );
    }
    out
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// Writes (or rewrites) the run's event file in `dir` from `history`. The first call names the
/// file `events.out.tfevents.<unix seconds>.<host>`; later calls find and rewrite it.
pub fn write_history(dir: &Path, history: &History) -> std::io::Result<PathBuf> {
    let existing = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX))
        })
        .min();
    let path = existing.unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        dir.join(format!("{PREFIX}{secs}.{}", host()))
    });
    let start = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .and_then(|n| n.split('.').next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    convnet_data::files::write_atomic(&path, &encode_history(history, start))?;
    Ok(path)
}

/// One decoded scalar: `(step, tag, value)`.
pub type Scalar = (i64, String, f32);

/// Reads an event file back, checking every length and CRC; returns its scalars in order.
/// (Used by the tests; TensorBoard itself is the real reader.)
pub fn read_scalars(bytes: &[u8]) -> Result<Vec<Scalar>, String> {
    fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i).ok_or("truncated varint")?;
            *i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    /// `(field, wire type, payload)` of one field of a message.
    type Field<'a> = (u64, u64, &'a [u8]);
    /// Every field of a message.
    fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, String> {
        let mut i = 0;
        let mut out = Vec::new();
        while i < b.len() {
            let k = varint(b, &mut i)?;
            let (field, wire) = (k >> 3, k & 7);
            let len = match wire {
                0 => {
                    let s = i;
                    varint(b, &mut i)?;
                    out.push((field, wire, &b[s..i]));
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => varint(b, &mut i)? as usize,
                w => return Err(format!("unsupported wire type {w}")),
            };
            let end = i
                .checked_add(len)
                .filter(|&e| e <= b.len())
                .ok_or("field past end")?;
            out.push((field, wire, &b[i..end]));
            i = end;
        }
        Ok(out)
    }
    let mut i = 0;
    let mut out = Vec::new();
    while i < bytes.len() {
        let head = bytes.get(i..i + 12).ok_or("truncated record header")?;
        let len_bytes = &head[..8];
        if masked_crc(len_bytes).to_le_bytes() != head[8..12] {
            return Err(format!("bad length CRC at byte {i}"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let data = bytes.get(i + 12..i + 12 + len).ok_or("truncated record")?;
        let crc = bytes
            .get(i + 12 + len..i + 16 + len)
            .ok_or("truncated CRC")?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err(format!("bad data CRC at byte {i}"));
        }
        i += 16 + len;
        let mut step = 0i64;
        for (f, _, payload) in fields(data)? {
            match f {
                2 => step = varint(payload, &mut 0)? as i64,
                5 => {
                    for (_, _, value) in fields(payload)? {
                        let mut tag = String::new();
                        let mut v = f32::NAN;
                        for (vf, _, p) in fields(value)? {
                            match vf {
                                1 => tag = String::from_utf8_lossy(p).into_owned(),
                                2 => v = f32::from_le_bytes(p.try_into().map_err(|_| "bad float")?),
                                _ => {}
                            }
                        }
                        out.push((step, tag, v));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryRow;

    fn history(n: usize) -> History {
        History {
            rows: (1..=n)
                .map(|e| HistoryRow {
                    epoch: e,
                    lr: 0.001,
                    train_loss: 1.0 / e as f64,
                    train_acc: 0.5 + 0.1 * e as f64,
                    val_loss: 0.9 / e as f64,
                    val_acc: 0.55 + 0.1 * e as f64,
                    seconds: 10.0,
                    images_per_sec: 1000.0,
                })
                .collect(),
        }
    }

    #[test]
    fn crc32c_and_mask_match_known_values() {
        // CRC-32C check value of "123456789" (RFC 3720), and TFRecord's mask of it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn written_file_decodes_back_with_tags_steps_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_history(dir.path(), &history(2)).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(PREFIX), "{name}");
        let bytes = std::fs::read(&p).unwrap();
        let s = read_scalars(&bytes).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.contains(&(1, "train/loss".into(), 1.0)));
        assert!(s.contains(&(2, "val/acc".into(), 0.75)));
        assert!(s.contains(&(2, "lr".into(), 0.001)));
        // Rewriting (next epoch) keeps the same file; a corrupted byte is caught.
        let p2 = write_history(dir.path(), &history(3)).unwrap();
        assert_eq!(p, p2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut bad = std::fs::read(&p).unwrap();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert!(read_scalars(&bad).unwrap_err().contains("CRC"));
    }
}
