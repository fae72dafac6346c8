//! Turning a decoded image into the model's input: channel conversion, resize, scaling and
//! normalisation, written straight into the batch buffer.

use image::DynamicImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

/// The fixed preprocessing a model was trained with; stored in its checkpoint so that
/// evaluation and prediction see exactly what training saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Output channels: 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Output height and width.
    pub size: [usize; 2],
    /// Per-channel mean, subtracted after scaling pixels to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl Preprocess {
    /// Floats per sample: `C * H * W`.
    pub fn sample_len(&self) -> usize {
        self.channels * self.size[0] * self.size[1]
    }

    /// Writes `img` as normalised `[C, H, W]` floats into `out` (of [`Self::sample_len`]).
    pub fn apply(&self, img: &DynamicImage, out: &mut [f32]) {
        let [h, w] = self.size;
        let resize = |i: DynamicImage| {
            if i.width() as usize == w && i.height() as usize == h {
                i
            } else {
                i.resize_exact(w as u32, h as u32, FilterType::Triangle)
            }
        };
        if self.channels == 1 {
            let g = resize(DynamicImage::ImageLuma8(img.to_luma8())).into_luma8();
            self.write_planar(g.as_raw(), 1, out);
        } else {
            let rgb = resize(DynamicImage::ImageRgb8(img.to_rgb8())).into_rgb8();
            self.write_planar(rgb.as_raw(), 3, out);
        }
    }

    /// Writes interleaved 8-bit pixels (`HWC`, already at the output size) as normalised `CHW`.
    pub fn write_planar(&self, pixels: &[u8], channels: usize, out: &mut [f32]) {
        let plane = self.size[0] * self.size[1];
        debug_assert_eq!(pixels.len(), plane * channels);
        for c in 0..channels {
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = self.mean[c] / self.std[c];
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(pixels.iter().skip(c).step_by(channels)) {
                *d = *px as f32 * scale - shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    #[test]
    fn normalises_and_lays_out_channels_first() {
        let pre = Preprocess {
            channels: 3,
            size: [1, 2],
            mean: vec![0.5, 0.0, 0.0],
            std: vec![0.5, 1.0, 2.0],
        };
        let img = RgbImage::from_raw(2, 1, vec![255, 0, 255, 0, 255, 0]).unwrap();
        let mut out = vec![0.0; 6];
        pre.apply(&DynamicImage::ImageRgb8(img), &mut out);
        assert_eq!(out, vec![1.0, -1.0, 0.0, 1.0, 0.5, 0.0]);
    }

    #[test]
    fn resizes_and_converts_to_gray() {
        let pre = Preprocess {
            channels: 1,
            size: [4, 4],
            mean: vec![0.0],
            std: vec![1.0],
        };
        let img = RgbImage::from_pixel(9, 7, image::Rgb([255, 255, 255]));
        let mut out = vec![0.0; 16];
        pre.apply(&DynamicImage::ImageRgb8(img), &mut out);
        assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-6));
        let gray = GrayImage::from_pixel(2, 2, image::Luma([0]));
        pre.apply(&DynamicImage::ImageLuma8(gray), &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }
}
