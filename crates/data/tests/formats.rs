//! Every image kind the issue lists decodes to the right size and colours: PNG 8/16-bit gray,
//! RGB, RGBA and palette; JPEG baseline, progressive, CMYK and EXIF-rotated; BMP, GIF, WebP,
//! TIFF 8/16-bit, PPM; detected by content, with decompression bombs refused unread.

use std::path::{Path, PathBuf};

use convnet_data::folder::{MAX_PIXELS, decode, header};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageBuffer, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Top rows red, bottom rows blue (the fixtures are ImageMagick's `gradient:red-blue`).
fn red_over_blue(img: &DynamicImage) {
    let rgb = img.to_rgb8();
    let (top, bottom) = (rgb.get_pixel(0, 0).0, rgb.get_pixel(0, rgb.height() - 1).0);
    assert!(top[0] > 150 && top[2] < 100, "top {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "bottom {bottom:?}");
}

#[test]
fn fixtures_made_elsewhere_decode() {
    for (name, color) in [
        ("cmyk.jpg", ""),
        ("progressive.jpg", "Rgb8"),
        ("palette.png", ""),
        ("tiff16.tif", "Rgb16"),
    ] {
        let path = fixture(name);
        let img = decode(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width(), img.height()), (8, 6), "{name}");
        red_over_blue(&img);
        if !color.is_empty() {
            let h = header(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(h.color, color, "{name}");
        }
    }
    // The CMYK fixture really has four components (its frame header says so); the decoder
    // reports it already converted to RGB.
    let jpg = std::fs::read(fixture("cmyk.jpg")).unwrap();
    let sof = jpg
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .unwrap();
    assert_eq!(jpg[sof + 9], 4, "components in the frame header");
    let gray = decode(&fixture("gray16.png")).unwrap();
    assert_eq!(gray.color(), image::ColorType::L16);
    let g = gray.to_luma8();
    assert!(g.get_pixel(0, 0).0[0] > 200 && g.get_pixel(0, 5).0[0] < 50);
}

#[test]
fn formats_the_image_crate_writes_decode_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut rgb = RgbImage::new(6, 4);
    for (x, _, p) in rgb.enumerate_pixels_mut() {
        *p = Rgb([x as u8 * 40, 100, 200]);
    }
    let rgba: ImageBuffer<Rgba<u8>, _> = DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();
    let rgba16 = DynamicImage::ImageRgb8(rgb.clone()).to_rgba16();
    let cases: Vec<(&str, DynamicImage, ImageFormat)> = vec![
        ("rgba.png", rgba.into(), ImageFormat::Png),
        ("rgba16.png", rgba16.into(), ImageFormat::Png),
        (
            "gray.bmp",
            DynamicImage::ImageRgb8(rgb.clone()).to_luma8().into(),
            ImageFormat::Bmp,
        ),
        ("anim.gif", rgb.clone().into(), ImageFormat::Gif),
        ("lossless.webp", rgb.clone().into(), ImageFormat::WebP),
        ("rgb.tiff", rgb.clone().into(), ImageFormat::Tiff),
        ("rgb.ppm", rgb.clone().into(), ImageFormat::Pnm),
        // A PNG named .jpg, and one with no extension: found by content.
        ("lies.jpg", rgb.clone().into(), ImageFormat::Png),
        ("noext", rgb.clone().into(), ImageFormat::Png),
    ];
    for (name, img, format) in cases {
        let path = dir.path().join(name);
        img.save_with_format(&path, format).unwrap();
        let back = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((back.width(), back.height()), (6, 4), "{name}");
        let px = back.to_rgb8().get_pixel(5, 0).0;
        if name != "gray.bmp" && name != "anim.gif" {
            assert_eq!(px, [200, 100, 200], "{name}");
        }
        assert_eq!(
            header(&std::fs::read(&path).unwrap()).unwrap().format,
            format,
            "{name}"
        );
    }
}

/// A minimal EXIF block (TIFF structure) holding only `Orientation = value`.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend(8u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(0x0112u16.to_le_bytes());
    v.extend(3u16.to_le_bytes());
    v.extend(1u32.to_le_bytes());
    v.extend(value.to_le_bytes());
    v.extend([0, 0]);
    v.extend(0u32.to_le_bytes());
    v
}

#[test]
fn exif_orientation_is_applied() {
    // 16x8: left half red, right half blue; orientation 6 means "rotate 90° clockwise".
    let img = RgbImage::from_fn(16, 8, |x, _| {
        if x < 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut bytes = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut bytes, 95);
    enc.set_exif_metadata(exif_orientation(6)).unwrap();
    enc.write_image(img.as_raw(), 16, 8, image::ExtendedColorType::Rgb8)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.jpg");
    std::fs::write(&path, bytes).unwrap();
    let back = decode(&path).unwrap().to_rgb8();
    assert_eq!(back.dimensions(), (8, 16));
    let (top, bottom) = (back.get_pixel(4, 2).0, back.get_pixel(4, 13).0);
    assert!(
        top[0] > 200 && top[2] < 60,
        "left half goes to the top: {top:?}"
    );
    assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
}

/// A PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    let mut v = (data.len() as u32).to_be_bytes().to_vec();
    v.extend(body);
    v.extend(crc.sum().to_be_bytes());
    v
}

/// A small PNG file that claims `w`x`h` pixels but holds almost no pixel data.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(chunk(b"IHDR", &ihdr));
    v.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    v.extend(chunk(b"IEND", &[]));
    v
}

#[test]
fn decompression_bombs_and_truncated_files_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_header_only(100_000, 100_000)).unwrap();
    let started = std::time::Instant::now();
    let err = match decode(&bomb) {
        Ok(_) => panic!("{} decoded", bomb.display()),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("bomb.png") && err.contains(&MAX_PIXELS.to_string()),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 2, "refused before decoding");

    let mut bytes = Vec::new();
    JpegEncoder::new(&mut bytes)
        .write_image(&[90u8; 64 * 64 * 3], 64, 64, image::ExtendedColorType::Rgb8)
        .unwrap();
    // A larger, detailed JPEG cut near its end: decoders fill the missing part with grey
    // rather than fail, so convnet checks for the end marker itself.
    let noisy = RgbImage::from_fn(256, 256, |x, y| {
        Rgb([(x * 31 + y * 17) as u8, (x * y) as u8, (x ^ y) as u8])
    });
    let mut big = Vec::new();
    JpegEncoder::new_with_quality(&mut big, 95)
        .write_image(noisy.as_raw(), 256, 256, image::ExtendedColorType::Rgb8)
        .unwrap();
    for (name, data) in [
        ("cut_late.jpg", &big[..big.len() * 9 / 10]),
        ("cut.jpg", &bytes[..bytes.len() / 2]),
        ("empty.png", &[][..]),
        ("text.jpg", &b"just some text"[..]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let err = match decode(&p) {
            Ok(_) => panic!("{} decoded", p.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(name) && err.contains("not a readable image"),
            "{err}"
        );
    }
}
