//! Chart data: sources (runs or published sets), their series, and the style groups that
//! tell the sources and backends apart.

use crate::published::PublishedSet;
use crate::results::{Meta, Row};
use crate::variant;

/// Backends that run this project's own kernels; every other backend is a peer (dashed).
const OWN_BACKENDS: &[&str] = &["cpu", "cuda"];

/// One run folder, or one published set, as charted.
#[derive(Debug, Clone)]
pub struct Source {
    /// Device name (from `meta.json`).
    pub device: String,
    /// Backend of the run (`cpu`, `cuda`) or `published`.
    pub backend: String,
    /// All measured rows are CPU rows: throughput in GFLOP/s.
    pub is_cpu: bool,
    /// Peak throughput in TFLOP/s and where it comes from.
    pub peak: Option<(f64, String)>,
    /// One line about the shape (scope, batch, model, dtype, mask).
    pub shape: String,
    pub published: bool,
    pub rows: Vec<Row>,
}

impl Source {
    /// A run's measured rows; the device, backend and peak come from `meta.json` when
    /// there is one, else from the rows.
    pub fn from_run(meta: Option<&Meta>, rows: Vec<Row>) -> Source {
        let rows: Vec<Row> = rows.into_iter().filter(|r| r.is_ok()).collect();
        let first = rows.first();
        let field = |m: fn(&Meta) -> &String, r: fn(&Row) -> &String| {
            meta.map(|x| m(x).clone())
                .or_else(|| first.map(|x| r(x).clone()))
                .unwrap_or_default()
        };
        let device = field(|m| &m.device, |r| &r.device);
        let backend = field(|m| &m.backend, |r| &r.backend);
        let peak = meta
            .and_then(|m| m.device_info.get("peak_tflops_per_s").map(|p| (m, p)))
            .and_then(|(m, p)| p.as_f64().map(|p| (m, p)))
            .filter(|(_, p)| p.is_finite() && *p > 0.0)
            .map(|(m, p)| {
                let src = m
                    .device_info
                    .get("peak_source")
                    .and_then(|v| v.as_str())
                    .unwrap_or("source not recorded");
                (p, src.to_string())
            });
        Source {
            device,
            backend,
            is_cpu: rows.iter().all(|r| r.backend == "cpu"),
            peak,
            shape: shape_line(&rows),
            published: false,
            rows,
        }
    }

    pub fn from_published(set: &PublishedSet) -> Source {
        let rows = set
            .rows
            .iter()
            .map(|p| Row {
                backend: "published".into(),
                device: p.device.clone(),
                kernel: format!("{} ({})", set.software, set.name),
                scope: set.scope.clone(),
                variant: p.variant.clone(),
                heads_total: set.heads,
                heads_q: 0,
                heads_kv: 0,
                heads_eff: 0,
                d_model: set.d_model,
                d_head: set.d_head,
                batch: p.batch,
                seq_len: p.seq_len,
                dtype: set.dtype.clone(),
                pattern: set.pattern.clone(),
                window: 0,
                iters: p.steps.unwrap_or(0),
                median_ms: Some(p.seconds_per_step * 1e3),
                min_ms: None,
                max_ms: None,
                mean_ms: None,
                cv: None,
                flops: 0.0,
                tflops_per_s: None,
                bytes: 0.0,
                gb_per_s: None,
                peak_mem_bytes: None,
                verified: "no".into(),
                max_abs_err: None,
                status: "ok".into(),
                error: String::new(),
                attn_flops_share: None,
                attn_time_share: None,
            })
            .collect::<Vec<_>>();
        Source {
            device: set.device.clone(),
            backend: "published".into(),
            is_cpu: false,
            peak: None,
            shape: format!(
                "published: whole-model step on {} ({})",
                set.device, set.name
            ),
            published: true,
            rows,
        }
    }
}

/// "kernel scope, batch 1, d_model 256, H 16, bf16, causal" from the rows.
fn shape_line(rows: &[Row]) -> String {
    let uniq = |f: &dyn Fn(&Row) -> String| {
        let mut v: Vec<String> = rows.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.join("/")
    };
    let batches: Vec<usize> = rows.iter().map(|r| r.batch).collect();
    let tokens: Vec<usize> = rows.iter().map(|r| r.batch * r.seq_len).collect();
    let batch = if batches.windows(2).all(|w| w[0] == w[1]) {
        format!("batch {}", batches.first().copied().unwrap_or(0))
    } else if tokens.windows(2).all(|w| w[0] == w[1]) {
        format!("{} tokens per step", tokens[0])
    } else {
        "batch varies".into()
    };
    format!(
        "{} scope, {batch}, d_model {}, H {}, {}, {}",
        uniq(&|r| r.scope.clone()),
        uniq(&|r| r.d_model.to_string()),
        uniq(&|r| r.heads_total.to_string()),
        uniq(&|r| r.dtype.clone()),
        uniq(&|r| r.pattern.clone())
    )
}

/// Sources × backends (× kernels where one backend ran several kernels for a variant):
/// each gets its own line style, in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleGroup {
    pub source: usize,
    pub backend: String,
    pub kernel: Option<String>,
    pub label: String,
}

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub seq_len: usize,
    /// Median seconds per call.
    pub seconds: f64,
    pub tflops: Option<f64>,
}

/// One line: a variant in one style group.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub group: usize,
    /// Line style index (= group index).
    pub style: usize,
    pub variant: String,
    pub points: Vec<Point>,
}

impl Series {
    /// Median seconds at a length.
    pub fn at(&self, n: usize) -> Option<f64> {
        self.points
            .iter()
            .find(|p| p.seq_len == n)
            .map(|p| p.seconds)
    }
}

/// The series and style groups of a set of sources.
pub fn build(sources: &[Source]) -> (Vec<Series>, Vec<StyleGroup>) {
    let mut groups: Vec<StyleGroup> = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let mut backends: Vec<&str> = s.rows.iter().map(|r| r.backend.as_str()).collect();
        backends.sort_by_key(|b| (!OWN_BACKENDS.contains(b), b.to_string()));
        backends.dedup();
        for b in backends {
            let rows: Vec<&Row> = s.rows.iter().filter(|r| r.backend == b).collect();
            let split = rows.iter().any(|r| {
                rows.iter().any(|o| {
                    o.variant == r.variant && o.seq_len == r.seq_len && o.kernel != r.kernel
                })
            });
            let mut kernels: Vec<Option<String>> = if split {
                rows.iter().map(|r| Some(r.kernel.clone())).collect()
            } else {
                vec![None]
            };
            kernels.dedup();
            for k in kernels {
                if groups
                    .iter()
                    .any(|g| g.source == i && g.backend == b && g.kernel == k)
                {
                    continue;
                }
                let label = if s.published {
                    format!("published: {}, whole-model step", s.device)
                } else {
                    let mut l = format!("{} · {b}", s.device);
                    if let Some(k) = &k {
                        l.push_str(&format!(" · {k}"));
                    }
                    if sources.len() > 1 {
                        l.push_str(&format!(" · {} scope", rows[0].scope));
                    }
                    l
                };
                groups.push(StyleGroup {
                    source: i,
                    backend: b.to_string(),
                    kernel: k,
                    label,
                });
            }
        }
    }
    let mut series: Vec<Series> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for r in &sources[g.source].rows {
            if r.backend != g.backend || g.kernel.as_ref().is_some_and(|k| *k != r.kernel) {
                continue;
            }
            let Some(seconds) = r.median_s() else {
                continue;
            };
            let idx = match series
                .iter()
                .position(|s| s.group == gi && s.variant == r.variant)
            {
                Some(i) => i,
                None => {
                    series.push(Series {
                        group: gi,
                        style: gi,
                        variant: r.variant.clone(),
                        points: Vec::new(),
                    });
                    series.len() - 1
                }
            };
            let s = &mut series[idx];
            // The first row of a length wins (a run may hold several batches).
            if s.at(r.seq_len).is_none() {
                s.points.push(Point {
                    seq_len: r.seq_len,
                    seconds,
                    tflops: r.tflops_per_s.filter(|t| *t > 0.0),
                });
            }
        }
    }
    for s in &mut series {
        s.points.sort_by_key(|p| p.seq_len);
    }
    series.sort_by_key(|s| (variant::order_of(&s.variant), s.group));
    (series, groups)
}

/// For each wanted length, the nearest measured one (by ratio), without repeats, ascending.
pub fn nearest_lengths(wanted: &[usize], measured: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = wanted
        .iter()
        .filter_map(|&w| {
            measured.iter().copied().min_by(|&a, &b| {
                let d = |x: usize| ((x as f64) / (w as f64)).ln().abs();
                d(a).total_cmp(&d(b))
            })
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_lengths_by_ratio() {
        assert_eq!(
            nearest_lengths(&[32768, 131072], &[1024, 2048, 4096]),
            vec![4096]
        );
        assert_eq!(
            nearest_lengths(&[32768, 131072], &[1024, 32768, 131072, 200000]),
            vec![32768, 131072]
        );
        assert_eq!(nearest_lengths(&[3000], &[2048, 4096]), vec![4096]);
        assert!(nearest_lengths(&[1024], &[]).is_empty());
    }
}
