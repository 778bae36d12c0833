//! Tables as text for the terminal, markdown, LaTeX (booktabs) and CSV: one header row
//! and string cells, so every table of the program is rendered the same way.

use crate::plan::length_label;
use crate::report::{align, fmt_ms, SpeedTable};
use crate::results::Row;
use crate::variant;

/// Output format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned plain text for the terminal.
    Table,
    Md,
    Latex,
    Csv,
}

/// A table: header cells, then rows of the same width. The first column is a label,
/// the others are right-aligned numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// A caption (markdown: a line above; LaTeX: `\caption`; text: a line above).
    pub caption: Option<String>,
}

impl Table {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.to_text(),
            Format::Md => self.to_markdown(),
            Format::Latex => self.to_latex(),
            Format::Csv => self.to_csv(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut lines = vec![self.header.clone()];
        lines.extend(self.rows.iter().cloned());
        let mut out = self
            .caption
            .as_ref()
            .map(|c| format!("{c}\n"))
            .unwrap_or_default();
        out.push_str(&align(&lines));
        out
    }

    pub fn to_markdown(&self) -> String {
        let esc = |s: &String| s.replace('|', "\\|");
        let mut out = String::new();
        if let Some(c) = &self.caption {
            out.push_str(&format!("**{c}**\n\n"));
        }
        let header: Vec<String> = self.header.iter().map(esc).collect();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        let rule: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { ":---" } else { "---:" })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(esc).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    pub fn to_latex(&self) -> String {
        let cols = format!("l{}", "r".repeat(self.header.len().saturating_sub(1)));
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ")
                + " \\\\\n"
        };
        let mut out =
            String::from("% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n");
        if let Some(c) = &self.caption {
            out.push_str(&format!("\\caption{{{}}}\n", latex_escape(c)));
        }
        out.push_str(&format!("\\begin{{tabular}}{{{cols}}}\n\\toprule\n"));
        out.push_str(&line(&self.header));
        out.push_str("\\midrule\n");
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        out
    }

    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to memory cannot fail.
        w.write_record(&self.header).expect("csv to memory");
        for r in &self.rows {
            w.write_record(r).expect("csv to memory");
        }
        String::from_utf8(w.into_inner().expect("csv to memory")).expect("csv is utf-8")
    }
}

/// Escapes LaTeX's special characters; `×` becomes `$\times$`.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '×' => out.push_str("$\\times$"),
            '—' => out.push_str("---"),
            '–' => out.push_str("--"),
            '·' => out.push_str("$\\cdot$"),
            _ => out.push(c),
        }
    }
    out
}

/// Rows grouped by (backend, scope), in order of first appearance.
fn by_backend(rows: &[Row]) -> Vec<((String, String), Vec<Row>)> {
    let mut groups: Vec<((String, String), Vec<Row>)> = Vec::new();
    for r in rows {
        let key = (r.backend.clone(), r.scope.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r.clone()),
            None => groups.push((key, vec![r.clone()])),
        }
    }
    groups
}

/// The main table of a run: variants × lengths, `time ms (speedup×)` per cell, one
/// table per (backend, scope) in the run.
pub fn run_tables(rows: &[Row], baseline: &str) -> Vec<Table> {
    by_backend(rows)
        .into_iter()
        .map(|((backend, scope), rows)| {
            let t = SpeedTable::from_rows(&rows, baseline);
            let mut header = vec!["Variant".to_string()];
            header.extend(t.lengths.iter().map(|&n| length_label(n)));
            let body = t
                .variants
                .iter()
                .map(|v| {
                    let mut line = vec![variant::display_name(v)];
                    for &n in &t.lengths {
                        let key = (v.clone(), n);
                        line.push(match (t.cells.get(&key), t.failed.get(&key)) {
                            (Some(c), _) => match c.speedup {
                                Some(s) => format!("{} ({s:.2}×)", fmt_ms(c.median_ms)),
                                None => fmt_ms(c.median_ms),
                            },
                            (None, Some(status)) => status.clone(),
                            (None, None) => "—".to_string(),
                        });
                    }
                    line
                })
                .collect();
            let device = rows.first().map(|r| r.device.clone()).unwrap_or_default();
            let batches: Vec<String> = {
                let mut b: Vec<usize> = rows.iter().map(|r| r.batch).collect();
                b.sort_unstable();
                b.dedup();
                b.iter().map(|x| x.to_string()).collect()
            };
            Table {
                header,
                rows: body,
                caption: Some(format!(
                    "Forward time per call in ms (speedup over {}) on {device}, backend {backend}, \
                     {scope} scope, batch {}",
                    variant::display_name(baseline),
                    batches.join("/")
                )),
            }
        })
        .collect()
}

/// The main table of a run in long form for spreadsheets: one line per
/// (backend, scope, variant, length) with the median and the speedup.
pub fn run_csv(rows: &[Row], baseline: &str) -> String {
    let mut t = Table {
        header: [
            "backend",
            "scope",
            "device",
            "variant",
            "seq_len",
            "batch",
            "median_ms",
            &format!("speedup_vs_{baseline}"),
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    for ((backend, scope), rows) in by_backend(rows) {
        let st = SpeedTable::from_rows(&rows, baseline);
        for v in &st.variants {
            for &n in &st.lengths {
                let Some(c) = st.cells.get(&(v.clone(), n)) else {
                    continue;
                };
                let r = rows.iter().find(|r| r.variant == *v && r.seq_len == n);
                t.rows.push(vec![
                    backend.clone(),
                    scope.clone(),
                    r.map(|r| r.device.clone()).unwrap_or_default(),
                    v.clone(),
                    n.to_string(),
                    r.map(|r| r.batch.to_string()).unwrap_or_default(),
                    c.median_ms.to_string(),
                    c.speedup.map(|s| s.to_string()).unwrap_or_default(),
                ]);
            }
        }
    }
    t.to_csv()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Table {
        Table {
            header: vec!["variant".into(), "1k (ms)".into()],
            rows: vec![vec!["x_SQA".into(), "1.5 (2.00×)".into()]],
            caption: Some("A & B".into()),
        }
    }

    #[test]
    fn formats_render() {
        let md = t().to_markdown();
        assert!(md.contains("| variant | 1k (ms) |\n|:---|---:|\n| x_SQA | 1.5 (2.00×) |"));
        let tex = t().to_latex();
        assert!(tex.contains("x\\_SQA & 1.5 (2.00$\\times$) \\\\"), "{tex}");
        assert!(tex.contains("\\caption{A \\& B}"));
        assert_eq!(t().to_csv(), "variant,1k (ms)\nx_SQA,1.5 (2.00×)\n");
        assert!(t().to_text().starts_with("A & B\nvariant"));
    }
}
