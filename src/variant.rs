//! The variant table: the single source of truth for every attention variant.
//!
//! The CLI names, the cost model, the CSV rows, kernel selection and chart colours
//! all read [`VARIANTS`]. Adding a variant is adding one row here.
//!
//! Head counts are rules relative to H, the total number of heads of the model
//! (H = 16 in the published benchmark), so every variant scales with H.

use crate::error::{Error, Result};
use crate::problem::{Heads, Pattern};

/// How many heads of one kind a variant has, relative to H.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRule {
    /// `num/den` of H (must divide exactly).
    Frac(u32, u32),
    /// Exactly one head, whatever H is (MQA's key/value head).
    One,
}

impl HeadRule {
    /// The head count for a model with `total` heads.
    pub fn count(self, total: u32) -> Result<u32> {
        match self {
            HeadRule::One => Ok(1),
            HeadRule::Frac(num, den) => {
                let scaled = total * num;
                if !scaled.is_multiple_of(den) || scaled / den == 0 {
                    Err(Error::invalid(format!(
                        "{num}/{den} of {total} heads is not a whole number of heads"
                    )))
                } else {
                    Ok(scaled / den)
                }
            }
        }
    }

    /// The rule as a fraction of H, for the cost model with symbolic H (`One` needs H).
    pub fn fraction(self, total: u32) -> f64 {
        match self {
            HeadRule::One => 1.0 / total as f64,
            HeadRule::Frac(n, d) => n as f64 / d as f64,
        }
    }
}

/// One row of the variant table.
#[derive(Debug, Clone, Copy)]
pub struct VariantSpec {
    /// Display name, as in the SQA paper (`xSQA`).
    pub name: &'static str,
    /// CLI and CSV key, lower case (`xsqa`).
    pub key: &'static str,
    /// Query heads.
    pub q: HeadRule,
    /// Key/value heads.
    pub kv: HeadRule,
    /// `true` for the sliding-window variants: their pattern is `window(w)` whatever `--mask` says.
    pub windowed: bool,
    /// `true` for the variants of the SQA paper's timing table (run by `--preset paper`).
    pub in_paper: bool,
    /// Fixed chart colour (RGB), the same in every chart.
    pub color: (u8, u8, u8),
    /// One line for `sqa-bench list`.
    pub about: &'static str,
}

use HeadRule::{Frac, One};

/// The default window of the sliding-window variants (the published SWA(128) baseline).
pub const DEFAULT_WINDOW: u32 = 128;

/// Every named variant. Order is the display order of tables and legends.
#[rustfmt::skip]
pub const VARIANTS: &[VariantSpec] = &[
    VariantSpec { name: "MHA", key: "mha", q: Frac(1, 1), kv: Frac(1, 1), windowed: false, in_paper: true, color: (31, 119, 180), about: "multi-head attention: every head has its own query, key and value" },
    VariantSpec { name: "GQA", key: "gqa", q: Frac(1, 1), kv: Frac(1, 4), windowed: false, in_paper: true, color: (255, 127, 14), about: "grouped-query attention: H/4 key/value heads shared by groups of 4 query heads" },
    VariantSpec { name: "MQA", key: "mqa", q: Frac(1, 1), kv: One, windowed: false, in_paper: true, color: (214, 39, 40), about: "multi-query attention: one key/value head for all query heads" },
    VariantSpec { name: "SQA", key: "sqa", q: Frac(1, 2), kv: Frac(1, 4), windowed: false, in_paper: true, color: (44, 160, 44), about: "sparse query attention: half the query heads, H/4 key/value heads" },
    VariantSpec { name: "sSQA", key: "ssqa", q: Frac(1, 2), kv: Frac(1, 2), windowed: false, in_paper: true, color: (23, 190, 207), about: "symmetric SQA: half the query and half the key/value heads" },
    VariantSpec { name: "xSQA", key: "xsqa", q: Frac(1, 4), kv: Frac(1, 4), windowed: false, in_paper: true, color: (148, 103, 189), about: "extreme SQA: a quarter of the query and key/value heads" },
    VariantSpec { name: "xSMQA", key: "xsmqa", q: Frac(1, 4), kv: One, windowed: false, in_paper: false, color: (140, 86, 75), about: "extreme SQA with a single key/value head" },
    VariantSpec { name: "lSQA", key: "lsqa", q: Frac(3, 4), kv: Frac(3, 4), windowed: false, in_paper: false, color: (227, 119, 194), about: "light SQA: three quarters of the query and key/value heads" },
    VariantSpec { name: "rSQA", key: "rsqa", q: Frac(1, 4), kv: Frac(1, 2), windowed: false, in_paper: false, color: (188, 189, 34), about: "reverse SQA: fewer query than key/value heads; queries are tiled over H/2 heads" },
    VariantSpec { name: "SWA", key: "swa", q: Frac(1, 1), kv: Frac(1, 4), windowed: true, in_paper: true, color: (127, 127, 127), about: "sliding-window baseline: GQA heads, causal window (block-sparse, flex-style)" },
    VariantSpec { name: "SW-SQA", key: "sw-sqa", q: Frac(1, 2), kv: Frac(1, 4), windowed: true, in_paper: false, color: (0, 109, 44), about: "SQA heads with the sliding window" },
    VariantSpec { name: "SW-xSQA", key: "sw-xsqa", q: Frac(1, 4), kv: Frac(1, 4), windowed: true, in_paper: false, color: (84, 39, 143), about: "xSQA heads with the sliding window" },
];

/// The key of rows made from `--heads-q/--heads-kv` instead of a named variant.
pub const CUSTOM_KEY: &str = "custom";
/// Chart colour of custom head configurations and unknown keys.
pub const CUSTOM_COLOR: (u8, u8, u8) = (0, 0, 0);

/// Looks a variant up by key or display name, case-insensitively.
pub fn find(name: &str) -> Result<&'static VariantSpec> {
    let wanted = name.trim().to_ascii_lowercase();
    VARIANTS
        .iter()
        .find(|v| v.key == wanted || v.name.to_ascii_lowercase() == wanted)
        .ok_or_else(|| Error::UnknownVariant {
            name: name.trim().to_string(),
            known: keys().join(", "),
        })
}

/// All keys in table order.
pub fn keys() -> Vec<&'static str> {
    VARIANTS.iter().map(|v| v.key).collect()
}

/// Parses a comma-separated list of variant keys, or `all`.
pub fn parse_list(list: &str) -> Result<Vec<&'static VariantSpec>> {
    if list.trim().eq_ignore_ascii_case("all") {
        return Ok(VARIANTS.iter().collect());
    }
    let mut out: Vec<&'static VariantSpec> = Vec::new();
    for item in list.split(',') {
        if item.trim().is_empty() {
            return Err(Error::invalid(format!(
                "empty name in variant list '{list}'"
            )));
        }
        let v = find(item)?;
        if !out.iter().any(|o| o.key == v.key) {
            out.push(v);
        }
    }
    Ok(out)
}

/// The variants of the SQA paper's timing table, in table order.
pub fn paper_variants() -> Vec<&'static VariantSpec> {
    VARIANTS.iter().filter(|v| v.in_paper).collect()
}

/// Chart colour of a row's variant key (custom and unknown keys are black).
pub fn color_of(key: &str) -> (u8, u8, u8) {
    find(key).map(|v| v.color).unwrap_or(CUSTOM_COLOR)
}

/// Display name of a variant key (the key itself when it is not in the table).
pub fn display_name(key: &str) -> String {
    find(key)
        .map(|v| v.name.to_string())
        .unwrap_or_else(|_| key.to_string())
}

/// Table position of a key, for sorting rows the way the table lists them (custom last).
pub fn order_of(key: &str) -> usize {
    VARIANTS
        .iter()
        .position(|v| v.key == key)
        .unwrap_or(VARIANTS.len())
}

impl VariantSpec {
    /// The head configuration of this variant for a model with `total` heads.
    pub fn heads(&self, total: u32) -> Result<Heads> {
        let ctx = |e: Error| Error::invalid(format!("variant {} with H = {total}: {e}", self.name));
        let heads = Heads {
            total,
            q: self.q.count(total).map_err(ctx)?,
            kv: self.kv.count(total).map_err(ctx)?,
        };
        heads.validate()?;
        Ok(heads)
    }

    /// The attention pattern of this variant given the run's mask and window.
    pub fn pattern(&self, mask: Pattern, window: u32) -> Pattern {
        if self.windowed {
            Pattern::Window(window)
        } else {
            mask
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_lowercase() {
        let keys = keys();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(k.to_ascii_lowercase(), *k);
            assert!(!keys[i + 1..].contains(k), "duplicate key {k}");
            assert_ne!(*k, CUSTOM_KEY);
        }
    }

    #[test]
    fn published_head_counts_at_h16() {
        let h = |k: &str| find(k).unwrap().heads(16).unwrap();
        assert_eq!((h("mha").q, h("mha").kv), (16, 16));
        assert_eq!((h("gqa").q, h("gqa").kv), (16, 4));
        assert_eq!((h("mqa").q, h("mqa").kv), (16, 1));
        assert_eq!((h("sqa").q, h("sqa").kv), (8, 4));
        assert_eq!((h("ssqa").q, h("ssqa").kv), (8, 8));
        assert_eq!((h("xsqa").q, h("xsqa").kv), (4, 4));
        assert_eq!((h("xsmqa").q, h("xsmqa").kv), (4, 1));
        assert_eq!((h("lsqa").q, h("lsqa").kv), (12, 12));
        assert_eq!((h("rsqa").q, h("rsqa").kv), (4, 8));
        assert_eq!(h("rsqa").eff(), 8);
    }

    #[test]
    fn variants_scale_with_h_and_reject_fractions() {
        let x = find("xsqa").unwrap();
        assert_eq!(x.heads(32).unwrap().q, 8);
        assert!(x.heads(6).is_err(), "6/4 heads is not whole");
        assert!(find("lsqa").unwrap().heads(2).is_err());
    }

    #[test]
    fn lookup_is_case_insensitive_and_lists_known_names() {
        assert_eq!(find("xSQA").unwrap().key, "xsqa");
        assert_eq!(find(" SW-xSQA ").unwrap().key, "sw-xsqa");
        let err = find("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("mha"), "{err}");
        assert!(parse_list("mha,,gqa").is_err());
        assert_eq!(parse_list("all").unwrap().len(), VARIANTS.len());
        assert_eq!(parse_list("gqa,GQA").unwrap().len(), 1);
    }

    #[test]
    fn window_variants_ignore_mask() {
        let swa = find("swa").unwrap();
        assert_eq!(swa.pattern(Pattern::Full, 64), Pattern::Window(64));
        assert_eq!(
            find("mha").unwrap().pattern(Pattern::Full, 64),
            Pattern::Full
        );
    }
}
