//! PNG pictures: training curves and confusion matrices, drawn with plotters and an embedded
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

/// Encodes an RGB buffer as PNG and writes it atomically.
fn save_png(path: &Path, buf: Vec<u8>, w: u32, h: u32) -> Result<(), PlotError> {
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| PlotError::Draw("buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(draw_err)?;
    convnet_data::files::write_atomic(path, &png).map_err(|source| PlotError::Io {
        path: path.display().to_string(),
        source,
    })
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
        .x_desc("epoch")
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
    register_font();
    let (w, h) = (1200u32, 450u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (a, b) = root.split_horizontally(w / 2);
        panel(&a, left.0, left.1)?;
        panel(&b, right.0, right.1)?;
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
}
