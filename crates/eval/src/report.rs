//! `report.html`: one self-contained page per run (pictures embedded as `data:` URIs, no
//! network, no files beside it) with the configuration, curves, confusion matrix, per-class
//! table, sample predictions and timing, to open in any browser or attach to a message.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use crate::metrics::Metrics;

/// A PNG to embed, with its caption.
#[derive(Debug, Clone)]
pub struct ReportImage {
    /// Heading above the picture.
    pub caption: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// A plain table of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

/// Everything a report shows; empty parts are left out.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Page title, e.g. the run folder.
    pub title: String,
    /// Key figures as `(name, value)`: model, data, top-1, …
    pub summary: Vec<(String, String)>,
    /// Pictures, in order.
    pub images: Vec<ReportImage>,
    /// Further tables with their headings (per-epoch timing, TTA gains, …).
    pub tables: Vec<(String, Table)>,
    /// The run's configuration as pretty JSON.
    pub config_json: Option<String>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The per-class table (support, precision, recall, F1, accuracy), then macro and micro
/// averages, and the most confused pairs, of `m`.
pub fn metrics_tables(m: &Metrics, classes: &[String]) -> Vec<(String, Table)> {
    let pct = |v: f64| format!("{:.2}", 100.0 * v);
    let mut per = Table {
        header: [
            "class",
            "support",
            "precision %",
            "recall (accuracy) %",
            "F1 %",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for (c, s) in classes.iter().zip(m.per_class()) {
        per.rows.push(vec![
            c.clone(),
            s.support.to_string(),
            pct(s.precision),
            pct(s.recall),
            pct(s.f1),
        ]);
    }
    for (name, s) in [
        ("macro average", m.macro_avg()),
        ("micro average", m.micro_avg()),
    ] {
        per.rows.push(vec![
            name.into(),
            s.support.to_string(),
            pct(s.precision),
            pct(s.recall),
            pct(s.f1),
        ]);
    }
    let mut confused = Table {
        header: ["true class", "predicted as", "count", "% of the class"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    let support: Vec<u64> = m.per_class().iter().map(|s| s.support).collect();
    for c in m.most_confused(10) {
        confused.rows.push(vec![
            classes[c.truth].clone(),
            classes[c.predicted].clone(),
            c.count.to_string(),
            pct(c.count as f64 / support[c.truth].max(1) as f64),
        ]);
    }
    vec![
        ("Per-class precision, recall and F1".into(), per),
        ("Most confused pairs".into(), confused),
    ]
}

/// Key figures of `m`: samples, loss, top-1/top-5 and their errors, ECE.
pub fn metrics_summary(m: &Metrics) -> Vec<(String, String)> {
    vec![
        ("test samples".into(), m.count.to_string()),
        ("loss".into(), format!("{:.4}", m.loss())),
        (
            "top-1 accuracy".into(),
            format!(
                "{:.2}% (error {:.2}%)",
                100.0 * m.accuracy(),
                100.0 * (1.0 - m.accuracy())
            ),
        ),
        (
            "top-5 accuracy".into(),
            format!(
                "{:.2}% (error {:.2}%)",
                100.0 * m.top5(),
                100.0 * (1.0 - m.top5())
            ),
        ),
        (
            "expected calibration error (15 bins)".into(),
            format!("{:.4}", m.ece()),
        ),
    ]
}

impl Report {
    /// The page as one HTML string. A script sets `data-images-loaded` and
    /// `data-images-broken` on `<body>` once the page has loaded (for headless checks).
    pub fn render(&self) -> String {
        let mut h = String::new();
        let t = escape(&self.title);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\n\
             body{{font-family:sans-serif;margin:2em;color:#222;max-width:1300px}}\n\
             table{{border-collapse:collapse;margin:0.5em 0 1.5em}}\n\
             td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\n\
             td:first-child,th:first-child{{text-align:left}}\nth{{background:#f0f0f0}}\n\
             img{{max-width:100%;border:1px solid #ddd}}\npre{{background:#f7f7f7;padding:1em;overflow:auto}}\n\
             </style></head>\n<body>\n<h1>{t}</h1>\n"
        );
        if !self.summary.is_empty() {
            h.push_str("<table>\n");
            for (k, v) in &self.summary {
                let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
            }
            h.push_str("</table>\n");
        }
        for img in &self.images {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&img.png);
            let c = escape(&img.caption);
            let _ = writeln!(
                h,
                "<h2>{c}</h2>\n<img alt=\"{c}\" src=\"data:image/png;base64,{b64}\">"
            );
        }
        for (title, table) in &self.tables {
            let _ = writeln!(h, "<h2>{}</h2>\n<table>", escape(title));
            h.push_str("<tr>");
            for c in &table.header {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>\n");
            for row in &table.rows {
                h.push_str("<tr>");
                for c in row {
                    let _ = write!(h, "<td>{}</td>", escape(c));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
        }
        if let Some(cfg) = &self.config_json {
            let _ = writeln!(h, "<h2>Configuration</h2>\n<pre>{}</pre>", escape(cfg));
        }
        h.push_str(
            "<script>\nwindow.addEventListener('load', function () {\n\
             var imgs = Array.prototype.slice.call(document.images);\n\
             var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;\n\
             document.body.dataset.imagesLoaded = ok;\n\
             document.body.dataset.imagesBroken = imgs.length - ok;\n});\n</script>\n</body></html>\n",
        );
        h
    }

    /// Writes [`Self::render`] atomically to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        convnet_data::files::write_atomic(path, self.render().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_text_embedded_images_and_tables() {
        let mut m = Metrics::new(2);
        m.update(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[0, 1, 1]);
        let classes = vec!["cat <1>".to_string(), "dog".to_string()];
        let mut r = Report {
            title: "run & co".into(),
            summary: metrics_summary(&m),
            images: vec![ReportImage {
                caption: "curves".into(),
                png: vec![0x89, b'P', b'N', b'G'],
            }],
            tables: metrics_tables(&m, &classes),
            config_json: Some("{\"a\": \"<b>\"}".into()),
        };
        let html = r.render();
        assert!(html.contains("<title>run &amp; co</title>"));
        assert!(html.contains("cat &lt;1&gt;") && !html.contains("cat <1>"));
        assert!(html.contains("src=\"data:image/png;base64,iVBORw==\""));
        assert_eq!(html.matches("<img ").count(), 1);
        assert!(html.contains("imagesBroken"));
        // Per-class rows: dog has support 2, recall 50%; the confused pair dog -> cat once.
        assert!(
            html.contains("<td>dog</td><td>2</td><td>100.00</td><td>50.00</td>"),
            "{html}"
        );
        assert!(html.contains("<td>dog</td><td>cat &lt;1&gt;</td><td>1</td><td>50.00</td>"));
        assert!(html.contains("&quot;a&quot;: &quot;&lt;b&gt;&quot;"));
        r.images.clear();
        assert_eq!(r.render().matches("<img ").count(), 0);
    }
}
