//! The kernel table: one row per kernel family in `cuda/`, with its launch geometry.
//!
//! Adding a family is one row here (plus its `.cu` file). The numbers must match the
//! header comment of the `.cu` file and the simulator's C ABI.
//!
//! Entry points (unmangled), one per dtype × d_head:
//! `attention_<family>_<dtype>_d<D>(q, k, v, o, seq_len, heads_q, heads_kv, causal, window, scale_log2)`.

use crate::error::{Error, Result};
use crate::problem::Dtype;

use super::compile::Source;

/// `cuda/common.cuh`, passed to NVRTC as the named header `common.cuh`.
pub const COMMON_HEADER: (&str, &str) = ("common.cuh", include_str!("../../../cuda/common.cuh"));

/// Launch geometry of one entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Query rows per block: grid.x = ceil(N / block_q).
    pub block_q: u32,
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory per block, in bytes.
    pub smem_bytes: u32,
}

/// One kernel family (one `.cu` file).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// `simple`, `mma`: the `--kernel` value and the CSV `kernel` column.
    pub name: &'static str,
    /// File name in `cuda/` (shown in compile errors).
    pub file: &'static str,
    pub source: &'static str,
    pub dtypes: &'static [Dtype],
    pub d_heads: &'static [usize],
    /// Geometry for a head dimension in `d_heads`.
    pub geometry: fn(usize) -> Geometry,
}

/// Every kernel family, the readable baseline first.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "simple",
        file: "attention_simple.cu",
        source: include_str!("../../../cuda/attention_simple.cu"),
        dtypes: &[Dtype::Bf16, Dtype::F16],
        d_heads: &[16, 32, 64, 128],
        geometry: |_| Geometry {
            block_q: 64,
            threads: 64,
            smem_bytes: 0,
        },
    },
    Family {
        name: "mma",
        file: "attention_mma.cu",
        source: include_str!("../../../cuda/attention_mma.cu"),
        dtypes: &[Dtype::Bf16, Dtype::F16],
        d_heads: &[16, 32, 64, 128],
        // 8 warps x 16 query rows; two stages of one K and one V tile of BLOCK_K rows
        // (128 at d16, else 64): the table in the header of attention_mma.cu.
        geometry: |d| {
            let block_k = if d == 16 { 128 } else { 64 };
            Geometry {
                block_q: 128,
                threads: 256,
                smem_bytes: (2 * 2 * block_k * d * 2) as u32,
            }
        },
    },
];

impl Family {
    /// The NVRTC program of this family.
    pub fn program(&self) -> Source<'static> {
        const HEADERS: &[(&str, &str)] = &[COMMON_HEADER];
        Source {
            name: self.file,
            text: self.source,
            headers: HEADERS,
        }
    }

    pub fn supports(&self, dtype: Dtype, d_head: usize) -> bool {
        self.dtypes.contains(&dtype) && self.d_heads.contains(&d_head)
    }

    /// Every entry point of the family: (dtype, d_head, name).
    pub fn entries(&self) -> Vec<(Dtype, usize, String)> {
        let mut out = Vec::new();
        for &dt in self.dtypes {
            for &d in self.d_heads {
                out.push((dt, d, entry_name(self.name, dt, d)));
            }
        }
        out
    }
}

/// `attention_simple_bf16_d64`.
pub fn entry_name(family: &str, dtype: Dtype, d_head: usize) -> String {
    format!("attention_{family}_{}_d{d_head}", dtype.name())
}

/// The family named `name`.
pub fn family(name: &str) -> Result<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        Error::invalid(format!(
            "unknown kernel '{name}' (known: {}, auto)",
            known.join(", ")
        ))
    })
}

/// Families are the same when their names are (names are unique in [`FAMILIES`]).
impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Family {}

/// Which kernel `--kernel` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// The fastest family supporting the problem: `mma` where it exists, else `simple`.
    Auto,
    Named(&'static Family),
}

impl KernelChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(KernelChoice::Auto),
            name => family(name).map(KernelChoice::Named),
        }
    }

    /// The family that runs a (dtype, d_head) problem, or why none can.
    pub fn resolve(&self, dtype: Dtype, d_head: usize) -> Result<&'static Family> {
        let fam = match self {
            KernelChoice::Named(f) => Some(*f),
            KernelChoice::Auto => FAMILIES
                .iter()
                .find(|f| f.name == "mma" && f.supports(dtype, d_head))
                .or_else(|| FAMILIES.iter().find(|f| f.supports(dtype, d_head))),
        };
        match fam {
            Some(f) if f.supports(dtype, d_head) => Ok(f),
            _ => Err(Error::BackendUnavailable(format!(
                "no CUDA kernel{} for dtype {} and d_head {d_head}",
                match self {
                    KernelChoice::Named(f) => format!(" '{}'", f.name),
                    KernelChoice::Auto => String::new(),
                },
                dtype.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert!(!FAMILIES.is_empty());
        for (i, f) in FAMILIES.iter().enumerate() {
            assert!(
                FAMILIES[..i].iter().all(|g| g.name != f.name),
                "duplicate family {}",
                f.name
            );
            assert!(f.file.ends_with(".cu"));
            // Entry points may be generated by macros: tests/cuda_compile.rs finds each
            // one in the compiled PTX.
            assert!(f.source.contains("extern \"C\""), "{}", f.file);
            for (dt, d, _) in f.entries() {
                let g = (f.geometry)(d);
                assert!(g.block_q > 0 && g.threads > 0 && g.threads <= 1024);
                assert!(g.threads % 32 == 0, "whole warps");
                assert!(g.smem_bytes <= 227 * 1024, "fits an H100/H200 SM");
                assert!(matches!(dt, Dtype::Bf16 | Dtype::F16));
            }
        }
    }

    #[test]
    fn choice_parsing_and_resolution() {
        assert_eq!(KernelChoice::parse("AUTO").unwrap(), KernelChoice::Auto);
        let simple = KernelChoice::parse("simple").unwrap();
        assert_eq!(simple.resolve(Dtype::Bf16, 64).unwrap().name, "simple");
        assert!(simple.resolve(Dtype::F32, 64).is_err());
        assert!(simple.resolve(Dtype::Bf16, 48).is_err());
        let err = KernelChoice::parse("nope").unwrap_err().to_string();
        assert!(err.contains("simple") && err.contains("auto"), "{err}");
        let auto = KernelChoice::Auto.resolve(Dtype::F16, 128).unwrap();
        let has_mma = FAMILIES
            .iter()
            .any(|f| f.name == "mma" && f.supports(Dtype::F16, 128));
        assert_eq!(auto.name, if has_mma { "mma" } else { "simple" });
        assert_eq!(entry_name("mma", Dtype::F16, 128), "attention_mma_f16_d128");
    }
}
