//! `sqa-bench list`: the variant table.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use sqa_bench::cost;
use sqa_bench::problem::{AttnShape, Dtype, Pattern};
use sqa_bench::report::align;
use sqa_bench::variant::{DEFAULT_WINDOW, VARIANTS};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// H, the total number of heads the variants scale with.
    #[arg(long, default_value_t = 16)]
    pub heads: u32,
    /// Model width (d_head = d_model / heads).
    #[arg(long, default_value_t = 256)]
    pub d_model: usize,
    /// Length at which FLOPs are compared (windows make FLOPs depend on it).
    #[arg(long, default_value = "32k")]
    pub seqlen: String,
    /// `table` for people, `csv` for scripts (one row per variant: key, head counts, windowed).
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Output format of `sqa-bench list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
}

pub fn run(a: ListArgs) -> anyhow::Result<ExitCode> {
    let n = sqa_bench::plan::parse_length(&a.seqlen)?;
    if a.heads == 0 || !a.d_model.is_multiple_of(a.heads as usize) || a.d_model == 0 {
        anyhow::bail!(
            "--d-model {} is not divisible by --heads {}",
            a.d_model,
            a.heads
        );
    }
    let d_head = a.d_model / a.heads as usize;
    if a.format == ListFormat::Csv {
        print!("{}", variants_csv(a.heads)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mha = VARIANTS[0].heads(a.heads)?;
    let flops_of = |heads, pattern| {
        let shape = AttnShape {
            batch: 1,
            seq_len: n,
            heads,
            d_head,
            pattern,
        };
        cost::attention(&shape, Dtype::Bf16).flops
    };
    let mha_flops = flops_of(mha, Pattern::Causal);
    let mha_kv = cost::kv_cache_bytes_per_token(mha, d_head, Dtype::Bf16) as f64;

    let mut lines = vec![vec![
        "variant".to_string(),
        "key".into(),
        "H_q".into(),
        "H_kv".into(),
        "pattern".into(),
        format!("FLOPs vs MHA @{}", sqa_bench::plan::length_label(n)),
        "KV cache vs MHA".into(),
        "about".into(),
    ]];
    for v in VARIANTS {
        let heads = match v.heads(a.heads) {
            Ok(h) => h,
            Err(e) => {
                lines.push(vec![
                    v.name.into(),
                    v.key.into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    e.to_string(),
                ]);
                continue;
            }
        };
        let pattern = v.pattern(Pattern::Causal, DEFAULT_WINDOW);
        let kv = cost::kv_cache_bytes_per_token(heads, d_head, Dtype::Bf16) as f64;
        lines.push(vec![
            v.name.into(),
            v.key.into(),
            heads.q.to_string(),
            heads.kv.to_string(),
            pattern.to_string(),
            format!("{:.3}", flops_of(heads, pattern) / mha_flops),
            format!("{:.3}", kv / mha_kv),
            v.about.into(),
        ]);
    }
    print!("{}", align(&lines));
    println!("H = {}, d_head = {d_head}; FLOPs of causal attention (window {DEFAULT_WINDOW} for SW-*), KV cache per token and layer.", a.heads);
    Ok(ExitCode::SUCCESS)
}

/// The variant table as CSV for scripts such as `ci/peers.py`, so they never restate it:
/// `key,name,heads_total,heads_q,heads_kv,heads_eff,windowed,error` (head counts empty and
/// `error` set for variants that do not exist at this H).
fn variants_csv(total: u32) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "key",
        "name",
        "heads_total",
        "heads_q",
        "heads_kv",
        "heads_eff",
        "windowed",
        "error",
    ])?;
    for v in VARIANTS {
        let windowed = if v.windowed { "yes" } else { "no" };
        let record = match v.heads(total) {
            Ok(h) => [
                v.key.to_string(),
                v.name.to_string(),
                total.to_string(),
                h.q.to_string(),
                h.kv.to_string(),
                h.eff().to_string(),
                windowed.to_string(),
                String::new(),
            ],
            Err(e) => [
                v.key.to_string(),
                v.name.to_string(),
                total.to_string(),
                String::new(),
                String::new(),
                String::new(),
                windowed.to_string(),
                e.to_string(),
            ],
        };
        w.write_record(&record)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lists_every_variant_with_its_heads() {
        let text = variants_csv(16).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), VARIANTS.len());
        for (row, v) in rows.iter().zip(VARIANTS) {
            let h = v.heads(16).unwrap();
            assert_eq!(&row[0], v.key);
            assert_eq!(row[3].parse::<u32>().unwrap(), h.q);
            assert_eq!(row[4].parse::<u32>().unwrap(), h.kv);
            assert_eq!(row[5].parse::<u32>().unwrap(), h.eff());
            assert_eq!(&row[6] == "yes", v.windowed);
        }
        // H = 2 cannot host lSQA's 3/4 heads: the row stays, with the reason.
        let text = variants_csv(2).unwrap();
        let lsqa = text.lines().find(|l| l.starts_with("lsqa,")).unwrap();
        assert!(lsqa.contains("not a whole number"), "{lsqa}");
    }
}
