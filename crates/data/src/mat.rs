//! A small reader for MATLAB level-5 `.mat` files: numeric arrays only, which is all that
//! Flowers-102's `imagelabels.mat` and `setid.mat` hold (labels and split ids).

use std::io::Read;
use std::path::Path;

use crate::error::DataError;

const MI_INT8: u32 = 1;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Reads every numeric array of a little-endian level-5 `.mat` file, as `(name, values)` with
/// values in MATLAB's column-major order converted to `f64`. Other variables are left out.
pub fn read_arrays(path: &Path) -> Result<Vec<(String, Vec<f64>)>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes).map_err(|why| {
        DataError::format(
            path,
            format!("not a readable MATLAB 5 .mat file ({why}); download it again"),
        )
    })
}

/// [`read_arrays`] on bytes in memory.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, Vec<f64>)>, String> {
    if bytes.len() < 128 || !bytes[..6].eq_ignore_ascii_case(b"MATLAB") {
        return Err("no MATLAB 5.0 header".into());
    }
    if &bytes[126..128] != b"IM" {
        return Err("big-endian or unknown byte order".into());
    }
    let mut out = Vec::new();
    elements(&bytes[128..], &mut out)?;
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "unexpected end of data".to_string())
}

/// Splits `b` into `(type, payload, rest)`, handling the 4-byte "small element" form.
fn element(b: &[u8]) -> Result<(u32, &[u8], &[u8]), String> {
    let tag = u32_at(b, 0)?;
    if tag >> 16 != 0 {
        let (ty, n) = (tag & 0xFFFF, (tag >> 16) as usize);
        if n > 4 || b.len() < 8 {
            return Err("bad small data element".into());
        }
        return Ok((ty, &b[4..4 + n], &b[8..]));
    }
    let n = u32_at(b, 4)? as usize;
    let end = 8usize.checked_add(n).ok_or("element too large")?;
    let payload = b
        .get(8..end)
        .ok_or("element runs past the end of the file")?;
    // Elements are padded to 8 bytes, except compressed ones.
    let next = if tag == MI_COMPRESSED {
        end
    } else {
        end.div_ceil(8) * 8
    };
    Ok((tag, payload, b.get(next..).unwrap_or(&[])))
}

fn elements(mut b: &[u8], out: &mut Vec<(String, Vec<f64>)>) -> Result<(), String> {
    while b.len() >= 8 {
        let (ty, payload, rest) = element(b)?;
        match ty {
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(payload)
                    .read_to_end(&mut inflated)
                    .map_err(|e| format!("compressed element: {e}"))?;
                elements(&inflated, out)?;
            }
            MI_MATRIX => {
                if let Some(array) = matrix(payload)? {
                    out.push(array);
                }
            }
            _ => {}
        }
        b = rest;
    }
    Ok(())
}

/// A numeric matrix: flags, dimensions, name, real part. `None` for cells, structs, chars.
fn matrix(b: &[u8]) -> Result<Option<(String, Vec<f64>)>, String> {
    let (_, flags, rest) = element(b)?;
    let class = flags.first().copied().ok_or("empty array flags")?;
    // mxDOUBLE_CLASS (6) .. mxUINT64_CLASS (15) are numeric.
    if !(6..=15).contains(&class) {
        return Ok(None);
    }
    let (_, _dims, rest) = element(rest)?;
    let (name_ty, name, rest) = element(rest)?;
    if name_ty != MI_INT8 {
        return Err("array name is not text".into());
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let (ty, data, _) = element(rest)?;
    Ok(Some((name, numbers(ty, data)?)))
}

fn numbers(ty: u32, d: &[u8]) -> Result<Vec<f64>, String> {
    fn each<const N: usize>(d: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        d.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap()))
            .collect()
    }
    Ok(match ty {
        1 => each(d, |b: [u8; 1]| i8::from_le_bytes(b) as f64),
        2 => each(d, |b: [u8; 1]| b[0] as f64),
        3 => each(d, |b| i16::from_le_bytes(b) as f64),
        4 => each(d, |b| u16::from_le_bytes(b) as f64),
        5 => each(d, |b| i32::from_le_bytes(b) as f64),
        6 => each(d, |b| u32::from_le_bytes(b) as f64),
        7 => each(d, |b| f32::from_le_bytes(b) as f64),
        9 => each(d, f64::from_le_bytes),
        12 => each(d, |b| i64::from_le_bytes(b) as f64),
        13 => each(d, |b| u64::from_le_bytes(b) as f64),
        t => return Err(format!("unsupported numeric type {t}")),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn el(ty: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = ty.to_le_bytes().to_vec();
        v.extend((payload.len() as u32).to_le_bytes());
        v.extend(payload);
        while !v.len().is_multiple_of(8) {
            v.push(0);
        }
        v
    }

    /// A `.mat` file with one 1xN double row per `(name, values)`, the way MATLAB writes
    /// Flowers-102's files (each variable zlib-compressed when `compress`).
    pub(crate) fn mat_file(arrays: &[(&str, &[f64])], compress: bool) -> Vec<u8> {
        let mut out = vec![b' '; 128];
        out[..6].copy_from_slice(b"MATLAB");
        out[124..126].copy_from_slice(&0x0100u16.to_le_bytes());
        out[126..128].copy_from_slice(b"IM");
        for (name, values) in arrays {
            let mut m = el(6, &[6, 0, 0, 0, 0, 0, 0, 0]);
            let dims: Vec<u8> = [1i32, values.len() as i32]
                .iter()
                .flat_map(|d| d.to_le_bytes())
                .collect();
            m.extend(el(5, &dims));
            m.extend(el(1, name.as_bytes()));
            // Stored as uint16, as MATLAB does for small whole numbers in a double array.
            let data: Vec<u8> = values
                .iter()
                .flat_map(|v| (*v as u16).to_le_bytes())
                .collect();
            m.extend(el(4, &data));
            let matrix = el(MI_MATRIX, &m);
            if compress {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
                z.write_all(&matrix).unwrap();
                let z = z.finish().unwrap();
                out.extend(MI_COMPRESSED.to_le_bytes());
                out.extend((z.len() as u32).to_le_bytes());
                out.extend(z);
            } else {
                out.extend(matrix);
            }
        }
        out
    }

    #[test]
    fn reads_plain_and_compressed_numeric_arrays() {
        for compress in [false, true] {
            let bytes = mat_file(
                &[("labels", &[77.0, 1.0, 102.0]), ("trnid", &[2.0])],
                compress,
            );
            let arrays = parse(&bytes).unwrap();
            assert_eq!(
                arrays,
                vec![
                    ("labels".to_string(), vec![77.0, 1.0, 102.0]),
                    ("trnid".to_string(), vec![2.0])
                ]
            );
        }
        assert!(parse(b"not a mat file").is_err());
        let mut cut = mat_file(&[("labels", &[1.0; 40])], false);
        cut.truncate(160);
        assert!(parse(&cut).is_err());
    }
}
