//! Scopes beyond the kernel: one attention layer, and the published dense decoder.
//!
//! - `layer`: Q, K, V projections from d_model (Q to H_q·d_head, K and V to
//!   H_kv·d_head), rotary embedding on Q and K, attention, output projection from
//!   H_eff·d_head back to d_model.
//! - `model`: token embedding, `layers` × [RMSNorm → attention layer → residual →
//!   RMSNorm → SwiGLU feed-forward → residual], final RMSNorm, LM head.
//!
//! Conventions shared by every backend (and the fp64 formulas in tests):
//! row-major weights used as `x · W` (`W: [in, out]`); activations token-major
//! `[B, N, features]`; RoPE "rotate half" (pairs (i, i + d/2), θ_i = 10000^(-2i/d),
//! position = token index); RMSNorm `x / sqrt(mean(x²) + 1e-6) · g`;
//! SwiGLU `(silu(x·W_gate) ⊙ x·W_up) · W_down`.

pub mod cost;
pub mod cpu;
pub mod host;
pub mod program;
pub mod weights;

/// Base of the rotary embedding frequencies.
pub const ROPE_BASE: f64 = 10_000.0;
/// RMSNorm epsilon.
pub const NORM_EPS: f64 = 1e-6;
