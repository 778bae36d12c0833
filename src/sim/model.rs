//! The elementwise kernels of `cuda/model.cu` on the simulator (RoPE, RMSNorm, SwiGLU,
//! embedding, residual add, head merge), for tests against `model::cpu`.

use std::ffi::{c_char, c_int};

use super::{check, dtype_code, from_bits, to_bits, ERR_LEN};
use crate::error::{Error, Result};
use crate::problem::Dtype;

extern "C" {
    fn sqa_sim_embed(
        dtype: c_int,
        tokens: *const i32,
        table: *const u16,
        h: *mut f32,
        d: c_int,
        count: i64,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn sqa_sim_rmsnorm(
        dtype: c_int,
        x: *const f32,
        g: *const u16,
        y: *mut u16,
        rows: c_int,
        d: c_int,
        eps: f32,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn sqa_sim_residual_add(
        dtype: c_int,
        h: *mut f32,
        a: *const u16,
        count: i64,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn sqa_sim_swiglu(
        dtype: c_int,
        gate: *const u16,
        up: *const u16,
        out: *mut u16,
        count: i64,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn sqa_sim_rope_heads(
        dtype: c_int,
        x: *const u16,
        y: *mut u16,
        n: c_int,
        heads: c_int,
        dh: c_int,
        rope: c_int,
        pairs: i64,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn sqa_sim_merge_heads(
        dtype: c_int,
        o: *const u16,
        y: *mut u16,
        n: c_int,
        heads: c_int,
        dh: c_int,
        count: i64,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
}

fn int(x: usize, what: &str) -> Result<c_int> {
    c_int::try_from(x).map_err(|_| Error::invalid(format!("simulator: {what} = {x} is too large")))
}

/// `h[t, :] = table[tokens[t], :]` with `table: [vocab, d]` stored as `dtype`.
pub fn embed(dtype: Dtype, tokens: &[u32], table: &[f32], d: usize) -> Result<Vec<f32>> {
    let vocab = table.len() / d.max(1);
    if tokens.iter().any(|&t| t as usize >= vocab) {
        return Err(Error::invalid("simulator: token id out of the vocabulary"));
    }
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    let tb = to_bits(dtype, table);
    let mut h = vec![f32::NAN; tokens.len() * d];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `ids` has tokens.len() ids below `vocab`, `tb` vocab·d values and `h`
    // tokens.len()·d values, the extents the kernel reads and writes for `count` = h.len().
    let rc = unsafe {
        sqa_sim_embed(
            dtype_code(dtype)?,
            ids.as_ptr(),
            tb.as_ptr(),
            h.as_mut_ptr(),
            int(d, "d")?,
            h.len() as i64,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(h)
}

/// RMSNorm of each row of `x: [rows, d]` (f32) with gains `g` stored as `dtype`.
pub fn rms_norm(dtype: Dtype, x: &[f32], g: &[f32], eps: f32) -> Result<Vec<f32>> {
    let d = g.len();
    let rows = x.len() / d.max(1);
    let gb = to_bits(dtype, g);
    let mut y = vec![0xFFFFu16; x.len()];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `x` and `y` hold rows·d values and `gb` d values, what the kernel touches.
    let rc = unsafe {
        sqa_sim_rmsnorm(
            dtype_code(dtype)?,
            x.as_ptr(),
            gb.as_ptr(),
            y.as_mut_ptr(),
            int(rows, "rows")?,
            int(d, "d")?,
            eps,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(from_bits(dtype, &y))
}

/// `h += a` with `a` stored as `dtype`.
pub fn residual_add(dtype: Dtype, h: &mut [f32], a: &[f32]) -> Result<()> {
    if h.len() != a.len() {
        return Err(Error::invalid(
            "simulator: residual_add needs equal lengths",
        ));
    }
    let ab = to_bits(dtype, a);
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `h` and `ab` both hold h.len() values, the `count` passed.
    let rc = unsafe {
        sqa_sim_residual_add(
            dtype_code(dtype)?,
            h.as_mut_ptr(),
            ab.as_ptr(),
            h.len() as i64,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)
}

/// `silu(gate) · up`, elementwise, stored as `dtype`.
pub fn swiglu(dtype: Dtype, gate: &[f32], up: &[f32]) -> Result<Vec<f32>> {
    if gate.len() != up.len() {
        return Err(Error::invalid("simulator: swiglu needs equal lengths"));
    }
    let (gb, ub) = (to_bits(dtype, gate), to_bits(dtype, up));
    let mut out = vec![0xFFFFu16; gate.len()];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: the three buffers hold gate.len() values, the `count` passed.
    let rc = unsafe {
        sqa_sim_swiglu(
            dtype_code(dtype)?,
            gb.as_ptr(),
            ub.as_ptr(),
            out.as_mut_ptr(),
            out.len() as i64,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(from_bits(dtype, &out))
}

/// `[B, N, H·dh]` → `[B, H, N, dh]`, with the rotary embedding when `rope` is set.
pub fn rope_heads(
    dtype: Dtype,
    x: &[f32],
    n: usize,
    heads: usize,
    dh: usize,
    rope: bool,
) -> Result<Vec<f32>> {
    if !dh.is_multiple_of(2) || !x.len().is_multiple_of((n * heads * dh).max(1)) {
        return Err(Error::invalid(
            "simulator: rope_heads needs [B, N, H*dh] with even dh",
        ));
    }
    let xb = to_bits(dtype, x);
    let mut y = vec![0xFFFFu16; x.len()];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `xb` and `y` hold B·N·H·dh values; the kernel visits x.len()/2 pairs.
    let rc = unsafe {
        sqa_sim_rope_heads(
            dtype_code(dtype)?,
            xb.as_ptr(),
            y.as_mut_ptr(),
            int(n, "n")?,
            int(heads, "heads")?,
            int(dh, "dh")?,
            rope as c_int,
            (x.len() / 2) as i64,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(from_bits(dtype, &y))
}

/// `[B, H, N, dh]` → `[B, N, H·dh]`.
pub fn merge_heads(dtype: Dtype, o: &[f32], n: usize, heads: usize, dh: usize) -> Result<Vec<f32>> {
    if !o.len().is_multiple_of((n * heads * dh).max(1)) {
        return Err(Error::invalid("simulator: merge_heads needs [B, H, N, dh]"));
    }
    let ob = to_bits(dtype, o);
    let mut y = vec![0xFFFFu16; o.len()];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `ob` and `y` hold o.len() values, the `count` passed.
    let rc = unsafe {
        sqa_sim_merge_heads(
            dtype_code(dtype)?,
            ob.as_ptr(),
            y.as_mut_ptr(),
            int(n, "n")?,
            int(heads, "heads")?,
            int(dh, "dh")?,
            o.len() as i64,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(from_bits(dtype, &y))
}
