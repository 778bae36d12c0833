//! The CPU backend: FlashAttention-style tiled attention with an online softmax.
//!
//! No N×N matrix: memory is linear in N. f32 accumulation; inputs stored as bf16, f16
//! or f32. Each run first converts K and V to f32 in the layouts the tile kernel reads
//! (keys transposed per tile, values padded), once per key/value head, then runs one
//! task per (batch, head, query tile) on rayon. Causal and window patterns skip the key
//! tiles they cannot see. The kernel is compiled three times (AVX-512, AVX2+FMA,
//! portable) and picked at run time from the CPU's features, so the binary runs on any
//! x86-64 (or other) machine.

mod exp2;
mod kernel;
pub mod sgemm;
mod simd;

use std::time::Instant;

use rayon::prelude::*;

use crate::backend::cpu_model::CpuScopePrepared;
use crate::backend::{Backend, Prepared};
use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::problem::Scope;
use crate::problem::{AttnShape, Dtype, Problem};
use kernel::{HeadData, Scratch, COL_BLOCK, TILE_K, TILE_Q};

/// The instruction set the tile kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2-fma",
            Isa::Portable => "portable",
        }
    }
}

pub struct CpuBackend {
    threads: usize,
    isa: Isa,
}

impl CpuBackend {
    /// The backend with the best kernel for this CPU.
    pub fn new() -> Self {
        Self::with_isa(Isa::detect())
    }

    /// The backend with a given kernel. Fails when this CPU lacks its instructions.
    pub fn with_isa_checked(isa: Isa) -> Result<Self> {
        let best = Isa::detect();
        let ok = match isa {
            Isa::Portable => true,
            Isa::Avx2Fma => best != Isa::Portable,
            Isa::Avx512 => best == Isa::Avx512,
        };
        if !ok {
            return Err(Error::BackendUnavailable(format!(
                "this CPU cannot run the {} kernel",
                isa.name()
            )));
        }
        Ok(Self::with_isa(isa))
    }

    fn with_isa(isa: Isa) -> Self {
        CpuBackend {
            threads: rayon::current_num_threads(),
            isa,
        }
    }

    /// The instruction set of the kernel this backend runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes the CPU backend holds for a problem: inputs in their storage type, their f32
/// working copies (K and V padded), and an f32 output.
pub fn working_set_bytes(p: &Problem) -> u64 {
    let s = &p.shape;
    let heads_kv = (s.batch * s.heads.kv as usize) as u64;
    let padded = heads_kv * s.seq_len.next_multiple_of(TILE_K) as u64;
    let kv_f32 = padded * (s.d_head + s.d_head.next_multiple_of(COL_BLOCK)) as u64 * 4;
    (s.q_len() + 2 * s.kv_len()) as u64 * p.dtype.bytes()
        + s.q_len() as u64 * 4
        + kv_f32
        + s.o_len() as u64 * 4
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        crate::sysinfo::cpu_model()
    }

    fn device_info(&self) -> serde_json::Value {
        let peak = sgemm::peak();
        serde_json::json!({
            "cpu_model": crate::sysinfo::cpu_model(),
            "threads": self.threads,
            "memory_available_bytes": crate::sysinfo::available_memory_bytes(),
            "arch": std::env::consts::ARCH,
            "kernel_isa": self.isa.name(),
            "sgemm_gflops": peak.gflops,
            "peak_tflops_per_s": peak.gflops / 1e3,
            "peak_source": peak.source,
        })
    }

    fn kernel(&self, _problem: &Problem) -> String {
        format!("cpu-flash-{}", self.isa.name())
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
        let s = &p.shape;
        let heads_kv = s.batch * s.heads.kv as usize;
        let n_pad = s.seq_len.next_multiple_of(TILE_K);
        let dp = s.d_head.next_multiple_of(COL_BLOCK);
        Ok(Box::new(CpuPrepared {
            shape: *s,
            isa: self.isa,
            q: Stored::new(&inputs.q, p.dtype),
            k: Stored::new(&inputs.k, p.dtype),
            v: Stored::new(&inputs.v, p.dtype),
            q32: vec![0.0; s.q_len()],
            kt32: vec![0.0; heads_kv * n_pad * s.d_head],
            v32: vec![0.0; heads_kv * n_pad * dp],
            out: vec![f32::NAN; s.o_len()],
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

    /// Converts key head `h` (`[n][d]` from element `h·n·d`) into tiles of `TILE_K`
    /// keys transposed to `[d][TILE_K]`, zero past `n`: `dst` is `[n / TILE_K up][d][TILE_K]`.
    fn transpose_tiles(&self, h: usize, n: usize, d: usize, dst: &mut [f32]) {
        fn go<T: Copy>(src: &[T], f: impl Fn(T) -> f32, n: usize, d: usize, dst: &mut [f32]) {
            for (tile, block) in dst.chunks_mut(d * TILE_K).enumerate() {
                let k0 = tile * TILE_K;
                let kn = TILE_K.min(n - k0);
                block.fill(0.0);
                for (t, key) in src[k0 * d..][..kn * d].chunks_exact(d).enumerate() {
                    for (c, &x) in key.iter().enumerate() {
                        block[c * TILE_K + t] = f(x);
                    }
                }
            }
        }
        match self {
            Stored::Bf16(x) => go(&x[h * n * d..][..n * d], |v| v.to_f32(), n, d, dst),
            Stored::F16(x) => go(&x[h * n * d..][..n * d], |v| v.to_f32(), n, d, dst),
            Stored::F32(x) => go(&x[h * n * d..][..n * d], |v| v, n, d, dst),
        }
    }

    /// Converts `dst.len()` elements from `start` into `dst`, times `scale`.
    fn load_scaled(&self, start: usize, dst: &mut [f32], scale: f32) {
        let n = dst.len();
        match self {
            Stored::Bf16(x) => dst
                .iter_mut()
                .zip(&x[start..start + n])
                .for_each(|(d, s)| *d = s.to_f32() * scale),
            Stored::F16(x) => dst
                .iter_mut()
                .zip(&x[start..start + n])
                .for_each(|(d, s)| *d = s.to_f32() * scale),
            Stored::F32(x) => dst
                .iter_mut()
                .zip(&x[start..start + n])
                .for_each(|(d, s)| *d = s * scale),
        }
    }
}

struct CpuPrepared {
    shape: AttnShape,
    isa: Isa,
    q: Stored,
    k: Stored,
    v: Stored,
    /// Q as f32, pre-scaled: `[B, H_q, N, d]`.
    q32: Vec<f32>,
    /// K as f32, transposed per key tile: `[B, H_kv, N / TILE_K, d, TILE_K]`.
    kt32: Vec<f32>,
    /// V as f32 with padded rows and columns: `[B, H_kv, N_pad, dp]`.
    v32: Vec<f32>,
    out: Vec<f32>,
}

impl Prepared for CpuPrepared {
    fn run(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        self.convert_inputs();
        forward(
            self.isa,
            &self.shape,
            &self.q32,
            &self.kt32,
            &self.v32,
            &mut self.out,
        );
        Ok(t0.elapsed().as_secs_f64())
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.out.clone())
    }
}

impl CpuPrepared {
    /// Q, K, V from their storage type to the f32 layouts of the kernel (part of each run).
    fn convert_inputs(&mut self) {
        let s = &self.shape;
        let (n, d) = (s.seq_len, s.d_head);
        let n_pad = n.next_multiple_of(TILE_K);
        let dp = d.next_multiple_of(COL_BLOCK);
        // Scores in base 2: q · k · scale · log2(e), so the softmax needs only exp2.
        let scale = (s.scale() * std::f64::consts::LOG2_E) as f32;
        let q = &self.q;
        self.q32
            .par_chunks_mut(n * d)
            .enumerate()
            .for_each(|(h, dst)| q.load_scaled(h * n * d, dst, scale));
        let k = &self.k;
        self.kt32
            .par_chunks_mut(n_pad * d)
            .enumerate()
            .for_each(|(h, dst)| k.transpose_tiles(h, n, d, dst));
        let v = &self.v;
        self.v32
            .par_chunks_mut(n_pad * dp)
            .enumerate()
            .for_each(|(h, dst)| {
                for (t, row) in dst.chunks_mut(dp).enumerate() {
                    if t < n {
                        v.load_scaled((h * n + t) * d, &mut row[..d], 1.0);
                        row[d..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
            });
    }
}

/// O = attention(Q, K, V) for the whole problem, written into `out: [B, H_eff, N, d]`,
/// from the f32 layouts of [`CpuPrepared`].
fn forward(isa: Isa, shape: &AttnShape, q32: &[f32], kt32: &[f32], v32: &[f32], out: &mut [f32]) {
    let (n, d) = (shape.seq_len, shape.d_head);
    let n_pad = n.next_multiple_of(TILE_K);
    let dp = d.next_multiple_of(COL_BLOCK);
    let h = shape.heads;
    let heff = h.eff() as usize;
    let head = |bj: usize| {
        let (b, j) = (bj / heff, bj % heff);
        let qh = b * h.q as usize + h.q_head(j as u32) as usize;
        let kvh = b * h.kv as usize + h.kv_head(j as u32) as usize;
        HeadData {
            q: &q32[qh * n * d..][..n * d],
            kt: &kt32[kvh * n_pad * d..][..n_pad * d],
            v: &v32[kvh * n_pad * dp..][..n_pad * dp],
            n,
            d,
            dp,
            pattern: shape.pattern,
        }
    };
    // One task per (batch, effective head, query tile); each owns a disjoint slice of `out`.
    out.par_chunks_mut(n * d)
        .enumerate()
        .flat_map(|(bj, o)| {
            o.par_chunks_mut(TILE_Q * d)
                .enumerate()
                .map(move |(t, o_tile)| (bj, t, o_tile))
        })
        .for_each_init(
            || Scratch::new(d, dp),
            |scratch, (bj, tile, o_tile)| {
                run_tile(isa, &head(bj), tile * TILE_Q, o_tile, scratch);
            },
        );
}

/// One query tile with the kernel compiled for `isa`.
fn run_tile(isa: Isa, h: &HeadData, row0: usize, out: &mut [f32], sc: &mut Scratch) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only constructed after `is_x86_feature_detected!`
        // found avx512f, avx2 and fma on this CPU (`Isa::detect`, `with_isa_checked`).
        Isa::Avx512 => unsafe { tile_avx512(h, row0, out, sc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2Fma` is only constructed after `is_x86_feature_detected!`
        // found avx2 and fma on this CPU.
        Isa::Avx2Fma => unsafe { tile_avx2(h, row0, out, sc) },
        // SAFETY: the scalar kernel runs on any CPU.
        _ => unsafe { kernel::query_tile::<simd::Scalar, 4, 8, 2, 16>(h, row0, out, sc) },
    }
}

/// S: 6 rows × 2 zmm (32 keys), 12 accumulators; P·V: 12 rows × 1 zmm (16 columns).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn tile_avx512(h: &HeadData, row0: usize, out: &mut [f32], sc: &mut Scratch) {
    // SAFETY: this function only runs where avx512f is enabled.
    unsafe { kernel::query_tile::<simd::Avx512, 6, 2, 12, 1>(h, row0, out, sc) }
}

/// S: 6 rows × 2 ymm (16 keys), 12 accumulators; P·V: 6 rows × 2 ymm (16 columns).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2(h: &HeadData, row0: usize, out: &mut [f32], sc: &mut Scratch) {
    // SAFETY: this function only runs where avx2 and fma are enabled.
    unsafe { kernel::query_tile::<simd::Avx2, 6, 2, 6, 2>(h, row0, out, sc) }
}
