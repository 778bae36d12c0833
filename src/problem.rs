//! A benchmark problem: one attention shape with its storage type, and its validation.
//!
//! Tensor layout, for every backend and the reference: row-major, contiguous,
//! `Q: [B, H_q, N, d]`, `K, V: [B, H_kv, N, d]`, `O: [B, H_eff, N, d]`.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Head configuration: H total heads (fixes d_head = d_model / H), H_q query heads, H_kv key/value heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub total: u32,
    pub q: u32,
    pub kv: u32,
}

impl Heads {
    /// Checks that one of H_q, H_kv is a multiple of the other.
    pub fn validate(&self) -> Result<()> {
        if self.total == 0 || self.q == 0 || self.kv == 0 {
            return Err(Error::invalid(format!(
                "head counts must be at least 1 (H = {}, H_q = {}, H_kv = {})",
                self.total, self.q, self.kv
            )));
        }
        let (hi, lo) = (self.q.max(self.kv), self.q.min(self.kv));
        if hi % lo != 0 {
            return Err(Error::invalid(format!(
                "H_q = {} and H_kv = {}: the larger must be a multiple of the smaller",
                self.q, self.kv
            )));
        }
        Ok(())
    }

    /// Effective heads: the heads that are computed and written, max(H_q, H_kv).
    pub fn eff(&self) -> u32 {
        self.q.max(self.kv)
    }

    /// The query head read by effective head `j`.
    ///
    /// H_q >= H_kv: `j` itself. H_q < H_kv (rSQA): queries are tiled, `j mod H_q`.
    pub fn q_head(&self, j: u32) -> u32 {
        j % self.q
    }

    /// The key/value head read by effective head `j`: GQA grouping, `j / (H_eff / H_kv)`.
    pub fn kv_head(&self, j: u32) -> u32 {
        j / (self.eff() / self.kv)
    }
}

/// Which keys each query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every query sees every key (encoders).
    Full,
    /// Query i sees keys 0..=i (decoders; the published benchmark).
    Causal,
    /// Causal sliding window: query i sees keys max(0, i-w+1)..=i.
    Window(u32),
}

impl Pattern {
    /// The keys visible to query row `i` of a sequence of `n` tokens.
    pub fn visible(&self, i: usize, n: usize) -> Range<usize> {
        match *self {
            Pattern::Full => 0..n,
            Pattern::Causal => 0..i + 1,
            Pattern::Window(w) => (i + 1).saturating_sub(w as usize)..i + 1,
        }
    }

    /// `full`, `causal` or `window` (the CSV `pattern` column).
    pub fn kind(&self) -> &'static str {
        match self {
            Pattern::Full => "full",
            Pattern::Causal => "causal",
            Pattern::Window(_) => "window",
        }
    }

    /// The window size, 0 for patterns without one (the CSV `window` column).
    pub fn window(&self) -> u32 {
        match self {
            Pattern::Window(w) => *w,
            _ => 0,
        }
    }

    /// Rebuilds a pattern from its CSV columns.
    pub fn from_parts(kind: &str, window: u32) -> Result<Self> {
        match kind {
            "full" => Ok(Pattern::Full),
            "causal" => Ok(Pattern::Causal),
            "window" if window > 0 => Ok(Pattern::Window(window)),
            _ => Err(Error::invalid(format!(
                "unknown pattern '{kind}' (window {window})"
            ))),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Window(w) => write!(f, "window({w})"),
            p => f.write_str(p.kind()),
        }
    }
}

/// Storage type of Q, K, V and O (accumulation is always f32 or wider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Bf16,
    F16,
    F32,
}

impl Dtype {
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::Bf16 | Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
            Dtype::F32 => "f32",
        }
    }

    /// Rounds an f32 to this storage type and back (the value a kernel actually reads).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Dtype::Bf16 => half::bf16::from_f32(x).to_f32(),
            Dtype::F16 => half::f16::from_f32(x).to_f32(),
            Dtype::F32 => x,
        }
    }

    /// f32 values as the 16-bit words of this storage type (round to nearest even), the
    /// form kernels read; `None` for f32, which has no 16-bit form.
    pub fn to_bits16(self, x: &[f32]) -> Option<Vec<u16>> {
        match self {
            Dtype::Bf16 => Some(
                x.iter()
                    .map(|&v| half::bf16::from_f32(v).to_bits())
                    .collect(),
            ),
            Dtype::F16 => Some(
                x.iter()
                    .map(|&v| half::f16::from_f32(v).to_bits())
                    .collect(),
            ),
            Dtype::F32 => None,
        }
    }

    /// 16-bit words of this storage type back to f32 (exact; f32 reads them as bf16).
    pub fn from_bits16(self, x: &[u16]) -> Vec<f32> {
        match self {
            Dtype::F16 => x
                .iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect(),
            _ => x
                .iter()
                .map(|&b| half::bf16::from_bits(b).to_f32())
                .collect(),
        }
    }

    /// Unit roundoff of the storage type (half an ulp at 1.0).
    pub fn epsilon(self) -> f64 {
        match self {
            Dtype::Bf16 => 2f64.powi(-8),
            Dtype::F16 => 2f64.powi(-11),
            Dtype::F32 => 2f64.powi(-24),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one timed step covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The attention kernel alone.
    Kernel,
    /// One attention layer: Q/K/V projections, RoPE, attention, output projection.
    Layer,
    /// The published dense decoder, one forward step (see [`ModelDims`]).
    Model(ModelDims),
}

impl Scope {
    /// `kernel`, `layer` or `model` (the CSV `scope` column).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Kernel => "kernel",
            Scope::Layer => "layer",
            Scope::Model(_) => "model",
        }
    }
}

/// The sizes of the dense decoder that `Scope::Model` times, beyond d_model and heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDims {
    /// Decoder layers.
    pub layers: usize,
    /// Hidden width of the SwiGLU feed-forward.
    pub d_ff: usize,
    /// Vocabulary (embedding rows and LM-head columns).
    pub vocab: usize,
}

impl ModelDims {
    /// The published model (SQA paper): 8 layers, SwiGLU 768, vocabulary 10,000.
    pub const PAPER: ModelDims = ModelDims {
        layers: 8,
        d_ff: 768,
        vocab: 10_000,
    };

    pub fn validate(&self) -> Result<()> {
        if self.layers == 0 || self.d_ff == 0 || self.vocab == 0 {
            return Err(Error::invalid(format!(
                "--layers, --d-ff and --vocab must be at least 1 (got {}, {}, {})",
                self.layers, self.d_ff, self.vocab
            )));
        }
        Ok(())
    }
}

/// The shape of one attention call: everything a kernel needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    pub batch: usize,
    pub seq_len: usize,
    pub heads: Heads,
    pub d_head: usize,
    pub pattern: Pattern,
}

impl AttnShape {
    pub fn validate(&self) -> Result<()> {
        self.heads.validate()?;
        if self.batch == 0 {
            return Err(Error::invalid("batch must be at least 1"));
        }
        if self.seq_len == 0 {
            return Err(Error::invalid("sequence length must be at least 1"));
        }
        if self.d_head == 0 {
            return Err(Error::invalid("d_head must be at least 1"));
        }
        if self.pattern == Pattern::Window(0) {
            return Err(Error::invalid("window must be at least 1"));
        }
        Ok(())
    }

    /// Elements of Q: B · H_q · N · d.
    pub fn q_len(&self) -> usize {
        self.batch * self.heads.q as usize * self.seq_len * self.d_head
    }

    /// Elements of K (and of V): B · H_kv · N · d.
    pub fn kv_len(&self) -> usize {
        self.batch * self.heads.kv as usize * self.seq_len * self.d_head
    }

    /// Elements of O: B · H_eff · N · d.
    pub fn o_len(&self) -> usize {
        self.batch * self.heads.eff() as usize * self.seq_len * self.d_head
    }

    /// Softmax scale 1/sqrt(d).
    pub fn scale(&self) -> f64 {
        1.0 / (self.d_head as f64).sqrt()
    }
}

/// One benchmark problem: a named variant's attention shape, stored in one dtype, timed over one scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Variant key from the variant table, or `custom`.
    pub variant: String,
    pub d_model: usize,
    pub shape: AttnShape,
    pub dtype: Dtype,
    pub scope: Scope,
}

impl Problem {
    pub fn validate(&self) -> Result<()> {
        self.shape.validate()?;
        let h = self.shape.heads.total as usize;
        if self.d_model == 0 || !self.d_model.is_multiple_of(h) {
            return Err(Error::invalid(format!(
                "d_model = {} is not divisible by H = {h} heads",
                self.d_model
            )));
        }
        if let Scope::Model(dims) = self.scope {
            dims.validate()?;
        }
        if self.d_model / h != self.shape.d_head {
            return Err(Error::invalid(format!(
                "d_head = {} but d_model / H = {}",
                self.shape.d_head,
                self.d_model / h
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_mapping_gqa_and_rsqa() {
        let gqa = Heads {
            total: 16,
            q: 16,
            kv: 4,
        };
        assert_eq!(
            (0..16).map(|j| gqa.kv_head(j)).collect::<Vec<_>>(),
            [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
        );
        assert_eq!(gqa.q_head(13), 13);
        let rsqa = Heads {
            total: 16,
            q: 4,
            kv: 8,
        };
        assert_eq!(rsqa.eff(), 8);
        assert_eq!(
            (0..8).map(|j| rsqa.q_head(j)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 0, 1, 2, 3]
        );
        assert_eq!(
            (0..8).map(|j| rsqa.kv_head(j)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6, 7]
        );
    }

    #[test]
    fn heads_must_divide() {
        assert!(Heads {
            total: 16,
            q: 6,
            kv: 4
        }
        .validate()
        .is_err());
        assert!(Heads {
            total: 16,
            q: 0,
            kv: 4
        }
        .validate()
        .is_err());
        assert!(Heads {
            total: 16,
            q: 3,
            kv: 12
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn visible_ranges() {
        assert_eq!(Pattern::Full.visible(2, 10), 0..10);
        assert_eq!(Pattern::Causal.visible(2, 10), 0..3);
        assert_eq!(Pattern::Window(4).visible(2, 10), 0..3);
        assert_eq!(Pattern::Window(4).visible(9, 10), 6..10);
        assert_eq!(Pattern::Window(1).visible(9, 10), 9..10);
    }

    #[test]
    fn pattern_round_trips_through_csv_columns() {
        for p in [Pattern::Full, Pattern::Causal, Pattern::Window(128)] {
            assert_eq!(Pattern::from_parts(p.kind(), p.window()).unwrap(), p);
        }
        assert!(Pattern::from_parts("window", 0).is_err());
    }
}
