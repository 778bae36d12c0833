//! `sqa-bench list`: the variant table.

use std::process::ExitCode;

use clap::Args;

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
