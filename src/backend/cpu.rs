//! The CPU backend: FlashAttention-style tiled attention with an online softmax.
//!
//! No N×N matrix: memory is linear in N. f32 accumulation; inputs stored as bf16, f16
//! or f32. Parallel over (batch, head, query tile) with rayon. Causal and window
//! patterns skip the key tiles they cannot see.

use std::time::Instant;

use rayon::prelude::*;

use crate::backend::cpu_model::CpuScopePrepared;
use crate::backend::{Backend, Prepared};
use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::problem::{AttnShape, Dtype, Problem, Scope};

/// Query rows per tile (one rayon task).
const TILE_Q: usize = 64;
/// Key rows per tile.
const TILE_K: usize = 64;

pub struct CpuBackend {
    threads: usize,
}

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend {
            threads: rayon::current_num_threads(),
        }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes the CPU backend holds for a problem: inputs in their storage type, an f32
/// output, plus the reference rows `verify` computes (small).
pub fn working_set_bytes(p: &Problem) -> u64 {
    let s = &p.shape;
    (s.q_len() + 2 * s.kv_len()) as u64 * p.dtype.bytes() + s.o_len() as u64 * 4
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        crate::sysinfo::cpu_model()
    }

    fn device_info(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu_model": crate::sysinfo::cpu_model(),
            "threads": self.threads,
            "memory_available_bytes": crate::sysinfo::available_memory_bytes(),
            "arch": std::env::consts::ARCH,
        })
    }

    fn kernel(&self, _problem: &Problem) -> String {
        "cpu-flash".to_string()
    }

    fn output_dtype(&self, _problem: &Problem) -> Dtype {
        Dtype::F32
    }

    fn check(&self, p: &Problem) -> Result<()> {
        let need = working_set_bytes(p) + crate::backend::cpu_model::working_set_bytes(p);
        // The inputs are drawn as f32 first: count them too.
        let need = need + (p.shape.q_len() + 2 * p.shape.kv_len()) as u64 * 4;
        if let Some(avail) = crate::sysinfo::available_memory_bytes() {
            if need > avail / 10 * 9 {
                return Err(Error::OutOfMemory {
                    what: format!(
                        "{} at N = {}, batch {}",
                        p.variant, p.shape.seq_len, p.shape.batch
                    ),
                    need_bytes: need,
                    avail_bytes: avail,
                });
            }
        }
        Ok(())
    }

    fn prepare<'a>(&'a self, p: &Problem, inputs: &Inputs) -> Result<Box<dyn Prepared + 'a>> {
        if p.scope != Scope::Kernel {
            return Ok(Box::new(CpuScopePrepared::new(self, p, inputs.seed)?));
        }
        Ok(Box::new(CpuPrepared {
            shape: p.shape,
            q: Stored::new(&inputs.q, p.dtype),
            k: Stored::new(&inputs.k, p.dtype),
            v: Stored::new(&inputs.v, p.dtype),
            out: vec![f32::NAN; p.shape.o_len()],
        }))
    }
}

/// A tensor in its storage type.
enum Stored {
    Bf16(Vec<half::bf16>),
    F16(Vec<half::f16>),
    F32(Vec<f32>),
}

impl Stored {
    fn new(x: &[f32], dtype: Dtype) -> Self {
        match dtype {
            Dtype::Bf16 => Stored::Bf16(x.iter().map(|&v| half::bf16::from_f32(v)).collect()),
            Dtype::F16 => Stored::F16(x.iter().map(|&v| half::f16::from_f32(v)).collect()),
            Dtype::F32 => Stored::F32(x.to_vec()),
        }
    }

    /// Converts `len` elements from `start` into `dst` as f32.
    fn load(&self, start: usize, dst: &mut [f32]) {
        let n = dst.len();
        match self {
            Stored::Bf16(x) => dst
                .iter_mut()
                .zip(&x[start..start + n])
                .for_each(|(d, s)| *d = s.to_f32()),
            Stored::F16(x) => dst
                .iter_mut()
                .zip(&x[start..start + n])
                .for_each(|(d, s)| *d = s.to_f32()),
            Stored::F32(x) => dst.copy_from_slice(&x[start..start + n]),
        }
    }
}

struct CpuPrepared {
    shape: AttnShape,
    q: Stored,
    k: Stored,
    v: Stored,
    out: Vec<f32>,
}

impl Prepared for CpuPrepared {
    fn run(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        forward(&self.shape, &self.q, &self.k, &self.v, &mut self.out);
        Ok(t0.elapsed().as_secs_f64())
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.out.clone())
    }
}

/// O = attention(Q, K, V) for the whole problem, written into `out: [B, H_eff, N, d]`.
fn forward(shape: &AttnShape, q: &Stored, k: &Stored, v: &Stored, out: &mut [f32]) {
    let (n, d) = (shape.seq_len, shape.d_head);
    let heff = shape.heads.eff() as usize;
    // One task per (batch, effective head, query tile); each owns a disjoint slice of `out`.
    out.par_chunks_mut(n * d)
        .enumerate()
        .flat_map(|(bj, head)| {
            head.par_chunks_mut(TILE_Q * d)
                .enumerate()
                .map(move |(t, o)| (bj, t, o))
        })
        .for_each(|(bj, tile, o_tile)| {
            let (b, j) = (bj / heff, bj % heff);
            query_tile(shape, q, k, v, b, j, tile * TILE_Q, o_tile);
        });
}

/// One query tile of one head: online softmax over the visible key tiles.
#[allow(clippy::too_many_arguments)]
fn query_tile(
    shape: &AttnShape,
    q: &Stored,
    k: &Stored,
    v: &Stored,
    b: usize,
    j: usize,
    row0: usize,
    o: &mut [f32],
) {
    let (n, d) = (shape.seq_len, shape.d_head);
    let rows = o.len() / d;
    let h = shape.heads;
    let q_base = ((b * h.q as usize + h.q_head(j as u32) as usize) * n + row0) * d;
    let kv_base = (b * h.kv as usize + h.kv_head(j as u32) as usize) * n * d;
    // Scores in base 2: s · scale · log2(e), so exp becomes exp2.
    let scale = (shape.scale() * std::f64::consts::LOG2_E) as f32;

    let mut qt = vec![0.0f32; rows * d];
    q.load(q_base, &mut qt);
    qt.iter_mut().for_each(|x| *x *= scale);
    let mut kt = vec![0.0f32; TILE_K * d];
    let mut vt = vec![0.0f32; TILE_K * d];
    let mut s = vec![0.0f32; TILE_K];
    let mut m = vec![f32::NEG_INFINITY; rows];
    let mut l = vec![0.0f32; rows];
    o.iter_mut().for_each(|x| *x = 0.0);

    // Keys visible to any row of the tile: from the first row's start to the last row's end.
    let lo = shape.pattern.visible(row0, n).start;
    let hi = shape.pattern.visible(row0 + rows - 1, n).end;
    let mut k0 = lo;
    while k0 < hi {
        let kn = TILE_K.min(hi - k0);
        k.load(kv_base + k0 * d, &mut kt[..kn * d]);
        v.load(kv_base + k0 * d, &mut vt[..kn * d]);
        for r in 0..rows {
            let vis = shape.pattern.visible(row0 + r, n);
            let (a, e) = (vis.start.max(k0), vis.end.min(k0 + kn));
            if a >= e {
                continue;
            }
            let qr = &qt[r * d..][..d];
            let mut mx = m[r];
            for t in a..e {
                let kr = &kt[(t - k0) * d..][..d];
                let dot: f32 = qr.iter().zip(kr).map(|(x, y)| x * y).sum();
                s[t - k0] = dot;
                mx = mx.max(dot);
            }
            let alpha = (m[r] - mx).exp2();
            let orow = &mut o[r * d..][..d];
            orow.iter_mut().for_each(|x| *x *= alpha);
            let mut sum = 0.0f32;
            for t in a..e {
                let p = (s[t - k0] - mx).exp2();
                sum += p;
                let vr = &vt[(t - k0) * d..][..d];
                orow.iter_mut().zip(vr).for_each(|(x, y)| *x += p * y);
            }
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
        }
        k0 += kn;
    }
    for r in 0..rows {
        let inv = 1.0 / l[r];
        o[r * d..][..d].iter_mut().for_each(|x| *x *= inv);
    }
}
