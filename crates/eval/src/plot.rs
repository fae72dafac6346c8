//! PNG pictures: training curves, confusion matrices and prediction grids, drawn with plotters and an embedded
//! font (no system fonts needed), written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans, embedded so that charts render the same everywhere (licence beside it).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| ())
            .expect("embedded font is valid");
    });
}

/// A named line of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// Errors drawing or writing a picture.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The drawing backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// The PNG could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Encodes an RGB buffer as PNG bytes.
fn encode_png(buf: Vec<u8>, w: u32, h: u32) -> Result<Vec<u8>, PlotError> {
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| PlotError::Draw("buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(draw_err)?;
    Ok(png)
}

/// Writes bytes atomically, as a [`PlotError`] naming the file on failure.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    convnet_data::files::write_atomic(path, bytes).map_err(|source| PlotError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Encodes an RGB buffer as PNG and writes it atomically.
fn save_png(path: &Path, buf: Vec<u8>, w: u32, h: u32) -> Result<(), PlotError> {
    write_file(path, &encode_png(buf, w, h)?)
}

/// One picture of a prediction grid.
#[derive(Debug, Clone)]
pub struct GridTile {
    /// The image as decoded (any size; scaled into the tile).
    pub image: image::DynamicImage,
    /// First caption line, e.g. `Trouser 98.1%`.
    pub predicted: String,
    /// Second caption line, e.g. `true: Trouser` (empty when unknown).
    pub truth: String,
    /// Whether the prediction is right: blue when true, red when false, black when unknown.
    pub correct: Option<bool>,
}

/// Blue of right predictions in prediction grids (seed 002's convention).
pub const RIGHT: RGBColor = RGBColor(20, 60, 220);
/// Red of wrong predictions in prediction grids.
pub const WRONG: RGBColor = RGBColor(215, 25, 28);

/// Draws images in a grid of `cols` columns, each with its predicted label (and the true one
/// when known) in blue when right and red when wrong; returns the PNG bytes.
pub fn prediction_grid(tiles: &[GridTile], cols: usize) -> Result<Vec<u8>, PlotError> {
    register_font();
    let cols = cols.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let (img_px, tile_w, tile_h) = (112u32, 150u32, 160u32);
    let (w, h) = (tile_w * cols as u32, tile_h * rows as u32);
    let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (t, tile) in tiles.iter().enumerate() {
        let (x0, y0) = ((t % cols) as u32 * tile_w, (t / cols) as u32 * tile_h);
        let (iw, ih) = (tile.image.width().max(1), tile.image.height().max(1));
        let scale = img_px as f64 / iw.max(ih) as f64;
        let (sw, sh) = (
            ((iw as f64 * scale).round() as u32).max(1),
            ((ih as f64 * scale).round() as u32).max(1),
        );
        // Small images (28x28) are enlarged with nearest-neighbour so pixels stay crisp.
        let filter = if scale >= 2.0 {
            image::imageops::FilterType::Nearest
        } else {
            image::imageops::FilterType::Triangle
        };
        let small = tile.image.resize_exact(sw, sh, filter).to_rgb8();
        let ox = x0 + (tile_w - sw) / 2;
        let oy = y0 + 6 + (img_px - sh) / 2;
        image::imageops::overlay(&mut canvas, &small, ox as i64, oy as i64);
    }
    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for (t, tile) in tiles.iter().enumerate() {
            let (x0, y0) = (
                (t % cols) as i32 * tile_w as i32,
                (t / cols) as i32 * tile_h as i32,
            );
            let color = match tile.correct {
                Some(true) => RIGHT,
                Some(false) => WRONG,
                None => BLACK,
            };
            let cx = x0 + tile_w as i32 / 2;
            let style = |size: i32| {
                TextStyle::from(("sans-serif", size).into_font())
                    .color(&color)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    ))
            };
            let clip = |s: &str| s.chars().take(24).collect::<String>();
            root.draw(&Text::new(
                clip(&tile.predicted),
                (cx, y0 + img_px as i32 + 10),
                style(13),
            ))
            .map_err(draw_err)?;
            if !tile.truth.is_empty() {
                root.draw(&Text::new(
                    clip(&tile.truth),
                    (cx, y0 + img_px as i32 + 27),
                    style(12),
                ))
                .map_err(draw_err)?;
            }
            if tile.correct.is_some() {
                root.draw(&Rectangle::new(
                    [
                        (x0 + 2, y0 + 2),
                        (x0 + tile_w as i32 - 3, y0 + tile_h as i32 - 3),
                    ],
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?;
            }
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(buf, w, h)
}

/// [`prediction_grid`] written atomically to `path`.
pub fn save_prediction_grid(path: &Path, tiles: &[GridTile], cols: usize) -> Result<(), PlotError> {
    write_file(path, &prediction_grid(tiles, cols)?)
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    series: &[Series],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (x0, x1) = if x0.is_finite() {
        (x0, if x1 > x0 { x1 } else { x0 + 1.0 })
    } else {
        (0.0, 1.0)
    };
    let (y0, y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    let (y0, y1) = if y0.is_finite() {
        let pad = ((y1 - y0) * 0.08).max(1e-3);
        (y0 - pad, y1 + pad)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_err)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts = s.points.iter().copied().filter(|p| p.1.is_finite());
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.map(|p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Two side-by-side line charts (e.g. loss and accuracy per epoch) in one PNG.
pub fn plot_curves(
    path: &Path,
    left: (&str, &[Series]),
    right: (&str, &[Series]),
) -> Result<(), PlotError> {
    plot_curves_over(path, "epoch", left, right)
}

/// [`plot_curves`] with another quantity than the epoch across.
pub fn plot_curves_over(
    path: &Path,
    x_desc: &str,
    left: (&str, &[Series]),
    right: (&str, &[Series]),
) -> Result<(), PlotError> {
    register_font();
    let (w, h) = (1200u32, 450u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (a, b) = root.split_horizontally(w / 2);
        panel(&a, left.0, x_desc, left.1)?;
        panel(&b, right.0, x_desc, right.1)?;
        root.present().map_err(draw_err)?;
    }
    save_png(path, buf, w, h)
}

/// A confusion matrix as a heat map, true class down, predicted class across, with counts.
pub fn plot_confusion(
    path: &Path,
    rows: &[&[u64]],
    classes: &[String],
    title: &str,
) -> Result<(), PlotError> {
    register_font();
    let k = classes.len().max(1);
    let cell = (640 / k).clamp(12, 64) as i32;
    let left = 150i32;
    let top = 60i32;
    let (w, h) = (
        (left + cell * k as i32 + 30) as u32,
        (top + cell * k as i32 + 140) as u32,
    );
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        root.draw(&Text::new(title.to_string(), (10, 15), ("sans-serif", 20)))
            .map_err(draw_err)?;
        let font = ("sans-serif", (cell / 3).clamp(8, 14));
        for (i, row) in rows.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            for (j, &n) in row.iter().enumerate() {
                let frac = n as f64 / total as f64;
                let shade = (255.0 * (1.0 - frac)) as u8;
                let color = RGBColor(shade, shade, 255);
                let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))
                .map_err(draw_err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(220, 220, 220),
                ))
                .map_err(draw_err)?;
                if cell >= 20 && n > 0 {
                    let fg = if frac > 0.5 { WHITE } else { BLACK };
                    let style = TextStyle::from(font.into_font()).color(&fg).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    );
                    root.draw(&Text::new(
                        n.to_string(),
                        (x + cell / 2, y + cell / 2),
                        style,
                    ))
                    .map_err(draw_err)?;
                }
            }
        }
        let label_font = ("sans-serif", (cell / 2).clamp(8, 13));
        for (i, c) in classes.iter().enumerate() {
            let short: String = c.chars().take(18).collect();
            root.draw(&Text::new(
                short.clone(),
                (5, top + i as i32 * cell + cell / 2 - 6),
                label_font,
            ))
            .map_err(draw_err)?;
            let style = TextStyle::from(label_font.into_font()).transform(FontTransform::Rotate90);
            root.draw(&Text::new(
                short,
                (
                    left + i as i32 * cell + cell / 2 + 6,
                    top + cell * k as i32 + 6,
                ),
                style,
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Text::new(
            "true class ↓   predicted class →",
            (left, top - 22),
            ("sans-serif", 14),
        ))
        .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    save_png(path, buf, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_files_that_decode() {
        let dir = tempfile::tempdir().unwrap();
        let s = vec![Series {
            name: "train".into(),
            points: vec![(1.0, 0.9), (2.0, 0.5)],
        }];
        let p = dir.path().join("curves.png");
        plot_curves(&p, ("loss", &s), ("accuracy", &[])).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (1200, 450));
        let rows: Vec<&[u64]> = vec![&[5, 1], &[0, 4]];
        let p = dir.path().join("cm.png");
        plot_confusion(&p, &rows, &["a".into(), "b".into()], "test").unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        // The diagonal cell of a pure row is dark blue, an empty cell white.
        let cell = (640 / 2).clamp(12, 64);
        let cell = cell as u32;
        assert!(img.get_pixel(150 + cell + 5, 60 + cell + 5).0[0] < 100);
        assert_eq!(img.get_pixel(150 + 5, 60 + cell + 5).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(150 + cell + 5, 60 + 5).0, [212, 212, 255]);
    }

    #[test]
    fn prediction_grid_colours_right_blue_and_wrong_red() {
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
            28,
            28,
            image::Luma([128]),
        ));
        let tile = |correct| GridTile {
            image: img.clone(),
            predicted: "Trouser 91.0%".into(),
            truth: "true: Trouser".into(),
            correct,
        };
        let png = prediction_grid(&[tile(Some(true)), tile(Some(false)), tile(None)], 2).unwrap();
        let g = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!((g.width(), g.height()), (300, 320));
        // Borders: the first tile's is blue, the second's red, the third has none.
        assert_eq!(g.get_pixel(3, 80).0, [RIGHT.0, RIGHT.1, RIGHT.2]);
        assert_eq!(g.get_pixel(150 + 3, 80).0, [WRONG.0, WRONG.1, WRONG.2]);
        assert_eq!(g.get_pixel(3, 160 + 80).0, [255, 255, 255]);
        // The image is drawn (gray) in the middle of its tile.
        assert_eq!(g.get_pixel(75, 60).0, [128, 128, 128]);
        // Caption text of a wrong tile has red pixels below the image.
        let reds = (150..300)
            .flat_map(|x| (120..160).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let p = g.get_pixel(x, y).0;
                p[0] > 150 && p[2] < 120 && x > 150 + 4 && x < 300 - 4
            })
            .count();
        assert!(reds > 20, "{reds}");
    }
}
