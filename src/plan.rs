//! From flags to a validated list of problems. Every bad input fails here, before
//! anything is allocated or written.

use crate::error::{Error, Result};
use crate::problem::{AttnShape, Dtype, Heads, Pattern, Problem, Scope};
use crate::variant::{self, VariantSpec, CUSTOM_KEY};

/// How the batch of each sequence length is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRule {
    /// The same batch at every length.
    Fixed(usize),
    /// batch = max(1, T / N): the published benchmark kept 131,072 tokens per step.
    TokensPerStep(usize),
}

impl BatchRule {
    pub fn batch(self, seq_len: usize) -> usize {
        match self {
            BatchRule::Fixed(b) => b,
            BatchRule::TokensPerStep(t) => (t / seq_len).max(1),
        }
    }
}

/// Everything that decides which problems a sweep runs.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Named variants to run.
    pub variants: Vec<&'static VariantSpec>,
    /// A custom (H_q, H_kv) pair, run as variant `custom`.
    pub custom: Option<(u32, u32)>,
    pub seq_lens: Vec<usize>,
    pub batch: BatchRule,
    pub d_model: usize,
    /// H, total heads.
    pub heads: u32,
    /// Pattern of the variants without a window (`full` or `causal`).
    pub mask: Pattern,
    /// Window of the sliding-window variants (and of a custom pair, when set).
    pub window: u32,
    /// Whether `--window` was given: a custom pair then runs with the window.
    pub custom_window: bool,
    pub dtype: Dtype,
    pub scope: Scope,
}

impl PlanSpec {
    /// The problems in run order: by length (shortest first, so results come early),
    /// then by variant in table order.
    pub fn build(&self) -> Result<Vec<Problem>> {
        if self.heads == 0 {
            return Err(Error::invalid("--heads must be at least 1"));
        }
        if self.d_model == 0 || !self.d_model.is_multiple_of(self.heads as usize) {
            return Err(Error::invalid(format!(
                "--d-model {} is not divisible by --heads {}",
                self.d_model, self.heads
            )));
        }
        if self.window == 0 {
            return Err(Error::invalid("--window must be at least 1"));
        }
        if self.seq_lens.is_empty() {
            return Err(Error::invalid("no sequence lengths given"));
        }
        if self.variants.is_empty() && self.custom.is_none() {
            return Err(Error::invalid("no variants given"));
        }
        match self.batch {
            BatchRule::Fixed(0) => return Err(Error::invalid("--batch must be at least 1")),
            BatchRule::TokensPerStep(0) => {
                return Err(Error::invalid("--tokens-per-step must be at least 1"))
            }
            _ => {}
        }
        let d_head = self.d_model / self.heads as usize;

        // (key, heads, pattern) for every configuration, validated once.
        let mut configs: Vec<(String, Heads, Pattern)> = Vec::new();
        for v in &self.variants {
            configs.push((
                v.key.to_string(),
                v.heads(self.heads)?,
                v.pattern(self.mask, self.window),
            ));
        }
        if let Some((q, kv)) = self.custom {
            let heads = Heads {
                total: self.heads,
                q,
                kv,
            };
            heads
                .validate()
                .map_err(|e| Error::invalid(format!("--heads-q/--heads-kv: {e}")))?;
            let pattern = if self.custom_window {
                Pattern::Window(self.window)
            } else {
                self.mask
            };
            configs.push((CUSTOM_KEY.to_string(), heads, pattern));
        }

        let mut plan = Vec::new();
        for &n in &self.seq_lens {
            if n == 0 {
                return Err(Error::invalid("sequence lengths must be at least 1"));
            }
            for (key, heads, pattern) in &configs {
                let p = Problem {
                    variant: key.clone(),
                    d_model: self.d_model,
                    shape: AttnShape {
                        batch: self.batch.batch(n),
                        seq_len: n,
                        heads: *heads,
                        d_head,
                        pattern: *pattern,
                    },
                    dtype: self.dtype,
                    scope: self.scope,
                };
                p.validate()?;
                plan.push(p);
            }
        }
        Ok(plan)
    }
}

/// The thousands label used for lengths in this field: 32768 is "32k", 131072 is "131k".
pub fn length_label(n: usize) -> String {
    if n >= 1000 && (n.is_multiple_of(1024) || n.is_multiple_of(1000)) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Parses one length: a plain number, or `Xk` = X · 1024. The labels of powers of two
/// that are not multiples of 1024 thousands (65k, 131k, 262k, 524k, 1048k) name those
/// powers of two, as in the SQA paper ("131k" is 131,072 = 2^17).
pub fn parse_length(s: &str) -> Result<usize> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || {
        Error::invalid(format!(
            "'{s}' is not a sequence length (examples: 1024, 4k, 131k)"
        ))
    };
    let n = if let Some(num) = t.strip_suffix('k') {
        let x: usize = num.parse().map_err(|_| bad())?;
        // "131k" names 2^17 (131,072), not 131 · 1024.
        match (10..=30).map(|e| 1usize << e).find(|p| p / 1000 == x) {
            Some(p) => p,
            None => x.checked_mul(1024).ok_or_else(bad)?,
        }
    } else {
        t.parse().map_err(|_| bad())?
    };
    if n == 0 {
        return Err(Error::invalid(format!(
            "sequence length '{s}' must be at least 1"
        )));
    }
    Ok(n)
}

/// Parses a comma-separated list of lengths (`1k,4k,32k,131k`).
pub fn parse_lengths(list: &str) -> Result<Vec<usize>> {
    if list.trim().is_empty() {
        return Err(Error::invalid(
            "empty --seqlen list: give sequence lengths such as 1k,4k",
        ));
    }
    list.split(',').map(parse_length).collect()
}

/// The key list of a plan's variants in table order (used by reports).
pub fn variant_keys(plan: &[Problem]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for p in plan {
        if !keys.contains(&p.variant) {
            keys.push(p.variant.clone());
        }
    }
    keys.sort_by_key(|k| variant::order_of(k));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PlanSpec {
        PlanSpec {
            variants: variant::parse_list("all").unwrap(),
            custom: None,
            seq_lens: vec![1024, 4096],
            batch: BatchRule::Fixed(1),
            d_model: 256,
            heads: 16,
            mask: Pattern::Causal,
            window: 128,
            custom_window: false,
            dtype: Dtype::Bf16,
            scope: Scope::Kernel,
        }
    }

    #[test]
    fn lengths_parse_with_k_suffix() {
        assert_eq!(
            parse_lengths("1k,4k,32k,131k").unwrap(),
            vec![1024, 4096, 32768, 131072]
        );
        assert_eq!(
            parse_lengths("65k, 128k,200000,7").unwrap(),
            vec![65536, 131072, 200000, 7]
        );
        assert_eq!(parse_length("64k").unwrap(), 65536);
        assert_eq!(parse_length("262k").unwrap(), 262144);
        for bad in ["", "k", "4x", "-1", "0", "1.5k", "4k,", ",4k"] {
            assert!(parse_lengths(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labels_round_trip_published_lengths() {
        for n in [1024, 4096, 32768, 65536, 131072, 262144] {
            assert_eq!(parse_length(&length_label(n)).unwrap(), n);
        }
        assert_eq!(length_label(131072), "131k");
        assert_eq!(length_label(200000), "200k");
        assert_eq!(length_label(1000), "1k");
        assert_eq!(length_label(129), "129");
    }

    #[test]
    fn plan_orders_by_length_then_table() {
        let plan = spec().build().unwrap();
        assert_eq!(plan.len(), 2 * variant::VARIANTS.len());
        assert_eq!(plan[0].variant, "mha");
        assert_eq!(plan[0].shape.seq_len, 1024);
        assert_eq!(plan.last().unwrap().shape.seq_len, 4096);
        let swa = plan.iter().find(|p| p.variant == "swa").unwrap();
        assert_eq!(swa.shape.pattern, Pattern::Window(128));
        assert_eq!(swa.shape.d_head, 16);
    }

    #[test]
    fn tokens_per_step_sets_published_batches() {
        let mut s = spec();
        s.batch = BatchRule::TokensPerStep(131072);
        s.seq_lens = vec![1024, 4096, 32768, 131072, 200000];
        let batches: Vec<_> = s
            .build()
            .unwrap()
            .iter()
            .filter(|p| p.variant == "gqa")
            .map(|p| p.shape.batch)
            .collect();
        assert_eq!(batches, [128, 32, 4, 1, 1]);
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.d_model = 250;
        assert!(s.build().is_err());
        let mut s = spec();
        s.window = 0;
        assert!(s.build().is_err());
        let mut s = spec();
        s.custom = Some((6, 4));
        assert!(s.build().unwrap_err().to_string().contains("multiple"));
        let mut s = spec();
        s.heads = 6; // 6/4 heads for GQA
        s.d_model = 96;
        assert!(s.build().is_err());
        let mut s = spec();
        s.batch = BatchRule::Fixed(0);
        assert!(s.build().is_err());
    }

    #[test]
    fn custom_pair_runs_with_window_when_asked() {
        let mut s = spec();
        s.variants.clear();
        s.custom = Some((2, 8));
        s.custom_window = true;
        s.window = 64;
        let plan = s.build().unwrap();
        assert!(plan.iter().all(|p| p.variant == "custom"
            && p.shape.pattern == Pattern::Window(64)
            && p.shape.heads.eff() == 8));
    }
}
