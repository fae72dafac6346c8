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
        let fits = img.width() as usize == w && img.height() as usize == h;
        // Already the output's size and channels (an augmented crop): no copy.
        match (self.channels, img) {
            (1, DynamicImage::ImageLuma8(g)) if fits => return self.write_planar(g, 1, out),
            (3, DynamicImage::ImageRgb8(rgb)) if fits => return self.write_planar(rgb, 3, out),
            _ => {}
        }
        let resize = |i: DynamicImage| {
            if fits {
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
        // `v * scale - shift` is `(v / 255 - mean) / std`.
        let coef = |c: usize| (1.0 / (255.0 * self.std[c]), self.mean[c] / self.std[c]);
        if channels == 3 {
            let (r, rest) = out[..3 * plane].split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            let coef = [coef(0), coef(1), coef(2)];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { rgb_planes_avx2(pixels, [r, g, b], coef) };
            }
            return rgb_planes(pixels, [r, g, b], coef);
        }
        for c in 0..channels {
            let (scale, shift) = coef(c);
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(pixels.iter().skip(c).step_by(channels)) {
                *d = *px as f32 * scale - shift;
            }
        }
    }
}

/// RGB pixels to three normalised planes in one sweep, `v * scale - shift` per channel.
#[inline(always)]
fn rgb_planes(pixels: &[u8], [r, g, b]: [&mut [f32]; 3], coef: [(f32, f32); 3]) {
    let [(s0, t0), (s1, t1), (s2, t2)] = coef;
    let planes = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
    for (((r, g), b), px) in planes.zip(pixels.chunks_exact(3)) {
        *r = px[0] as f32 * s0 - t0;
        *g = px[1] as f32 * s1 - t1;
        *b = px[2] as f32 * s2 - t2;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rgb_planes_avx2(pixels: &[u8], planes: [&mut [f32]; 3], coef: [(f32, f32); 3]) {
    rgb_planes(pixels, planes, coef)
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
    fn rgb_planes_are_the_per_channel_formula() {
        let pre = Preprocess {
            channels: 3,
            size: [23, 37],
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        };
        let px: Vec<u8> = (0..23 * 37 * 3).map(|i| (i * 97 % 256) as u8).collect();
        let mut out = vec![0.0; px.len()];
        pre.write_planar(&px, 3, &mut out);
        let plane = 23 * 37;
        for (i, &v) in px.iter().enumerate() {
            let c = i % 3;
            let want = v as f32 * (1.0 / (255.0 * pre.std[c])) - pre.mean[c] / pre.std[c];
            assert_eq!(out[c * plane + i / 3].to_bits(), want.to_bits(), "{i}");
        }
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
