#!/usr/bin/env bash
# The one script to run on a GPU machine: usage `ci/gpu-check.sh OUTDIR`.
#
# Runs from the repository root with a prebuilt target/release/sqa-bench (the GPU machine
# needs no Rust): GPU facts, library discovery and kernel loading (`doctor`), `verify`
# against the fp64 reference (bounded), then the sweep (all variants, 1k…131k at 131,072
# tokens per step), the layer and model scopes (verify, then the paper preset) with CSV,
# meta.json and charts under OUTDIR. Every step has a time limit: the kernel steps end
# inside 8 minutes on an H200, the scope steps (6) add at most 7 more (SKIP_SCOPES=1 leaves
# them out); a failing step does not stop the others, but the script exits non-zero at
# the end if any failed.
#
# Environment: SQA_BENCH (the binary, default target/release/sqa-bench);
# SQA_BENCH_CUDA_LIB_DIR (folder with libnvrtc.so.13 or .12, and for the layer and model
# scopes libcublas.so.* + libcublasLt.so.*, when not found by itself).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 1 ]]; then
    echo "usage: ci/gpu-check.sh OUTDIR" >&2
    exit 2
fi
OUT=$1
BIN=${SQA_BENCH:-target/release/sqa-bench}
if [[ ! -x $BIN ]]; then
    echo "error: $BIN not found: build it first (cargo build --release) or set SQA_BENCH" >&2
    exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
# Compiled kernels are cached inside OUTDIR: a rerun starts at once, a fresh OUTDIR compiles.
export SQA_BENCH_CACHE_DIR=${SQA_BENCH_CACHE_DIR:-$OUT/kernel-cache}

FAILED=()
START=$SECONDS
# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, output to OUTDIR/NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 124 ]] && echo "== $name: timed out after ${limit}s"
        FAILED+=("$name (exit $rc)")
    fi
    echo "== $name: exit $rc in $((SECONDS - t0))s (total $((SECONDS - START))s)"
}

# 1. The machine as the driver sees it.
step nvidia-smi 15 bash -c 'nvidia-smi && nvidia-smi -q -d CLOCK,POWER,TEMPERATURE,PERFORMANCE'

# 2. Library discovery: driver, GPU, NVRTC (path, version), NVML; every kernel compiled
#    for this GPU's sm_XY and loaded.
step doctor 40 "$BIN" doctor

# 3. Correctness against the fp64 reference: every kernel family with full outputs at small
#    lengths and sampled rows (edges, window edges, random) at 16k; the sweep's kernel
#    (auto) on sampled rows at 131k. Bounded to head structures that differ (MHA, GQA/SQA
#    grouping, rSQA's tiled queries, a single KV head, windows).
step verify 90 "$BIN" verify --backend cuda --variants mha,sqa,rsqa,swa \
    --d-head 16,64,128 --small-seqlen 1,7,129,333 --seqlen 16k
step verify-131k 45 "$BIN" verify --backend cuda --kernel auto --variants gqa,xsmqa,sw-sqa \
    --d-head 64 --small-seqlen 1 --seqlen 131k

# 4. The sweep: all variants, 1k…131k, 131,072 tokens per step, best kernel (mma where
#    it exists); every row is also checked on sampled rows (`verified` column).
step sweep 225 "$BIN" run --backend cuda --variants all --tokens-per-step 131072 \
    --out "$OUT/runs" --quiet

# 5. The readable baseline kernel at two lengths, for the kernel comparison (it has no
#    tensor cores: at 131k one causal pass takes about a second, too long for this check).
step sweep-simple 30 "$BIN" run --backend cuda --kernel simple --variants all \
    --seqlen 4k,32k --tokens-per-step 131072 --out "$OUT/runs" --quiet

# 6. Layer and model scopes (cuBLAS GEMMs + cuda/model.cu + the attention kernel): whole
#    outputs of small shapes (N = 45 and 300, batch 2, 2 layers, d_ff 64, vocabulary 97,
#    every variant, causal and window) against the f32 forward with fp64 attention, then
#    the paper preset (model scope: d_model 256, 16 heads, 8 layers, d_ff 768, vocabulary
#    10k; the published variants at 131,072 tokens per step) with `attn_time_share` and
#    measured `peak_mem_bytes` per row. Few repetitions: a 131k model step runs eight
#    attention passes (seconds each with the simple kernel).
if [[ ${SKIP_SCOPES:-0} != 1 ]]; then
    # cuBLAS: the search of `doctor` first; where SQA_BENCH_CUDA_LIB_DIR is unset, these
    # steps also look where the machine's Python keeps NVIDIA's wheels (PyTorch's cuBLAS).
    WITH_CUBLAS=(env)
    if [[ -z ${SQA_BENCH_CUDA_LIB_DIR:-} ]]; then
        PY_NVIDIA=$(python3 -c 'import nvidia; print(":".join(f"{p}/cu13/lib:{p}/cu12/lib:{p}/cublas/lib" for p in nvidia.__path__))' 2>/dev/null)
        [[ -n $PY_NVIDIA ]] && WITH_CUBLAS=(env "SQA_BENCH_CUDA_LIB_DIR=$PY_NVIDIA")
    fi
    step verify-layer 60 "${WITH_CUBLAS[@]}" "$BIN" verify --backend cuda --scope layer
    step verify-model 60 "${WITH_CUBLAS[@]}" "$BIN" verify --backend cuda --scope model
    step paper 300 "${WITH_CUBLAS[@]}" "$BIN" run --backend cuda --preset paper --seqlen 1k,4k,32k,131k \
        --warmup 1 --min-iters 3 --min-time 0 --out "$OUT/paper" --quiet
fi
# ---- compare: enable once `sqa-bench compare` (branch `plot`) is merged ------------------
# if "$BIN" compare --help >/dev/null 2>&1 && compgen -G "$OUT/paper/*/timings.csv" >/dev/null; then
#     step compare 20 "$BIN" compare "$OUT"/paper/*/
# fi
# -------------------------------------------------------------------------------------------

# ---- peers: PyTorch SDPA / FlashAttention rows (ci/peers.py) go here ---------------------
# if [[ -f ci/peers.py ]]; then
#     step peers 60 python3 ci/peers.py --out "$OUT/runs"
# fi
# -------------------------------------------------------------------------------------------

# 7. Charts of every run together (each run folder also has its own after `run`).
if "$BIN" plot --help >/dev/null 2>&1 && compgen -G "$OUT/runs/*/timings.csv" >/dev/null; then
    step plot 20 "$BIN" plot "$OUT"/runs/*/ --out "$OUT/combined"
fi

echo "== gpu-check finished in $((SECONDS - START))s; results in $OUT"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    printf '== FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "== all steps passed"
