#!/usr/bin/env bash
# The one script to run on a GPU machine: usage `ci/gpu-check.sh OUTDIR`.
#
# Runs from the repository root with a prebuilt target/release/sqa-bench (the GPU machine
# needs no Rust): GPU facts, library discovery and kernel loading (`doctor`), `verify`
# against the fp64 reference (bounded), then the sweep (all variants, 1k…131k at 131,072
# tokens per step), the PyTorch peers on the same shapes (ci/peers.py), one combined CSV
# (OUTDIR/combined.csv), meta.json and charts under OUTDIR, then the layer and model
# scopes (verify, the paper preset, compare with the published timings). Every step has
# a time limit so the kernel steps end inside about 10 minutes on an H200 (8 without the
# peers) and the scope steps add at most 6 more (SQA_GPU_CHECK_SCOPES=0 leaves them out);
# a failing step does not stop the others, but the script exits non-zero at the end if
# any failed.
#
# Environment: SQA_BENCH (the binary, default target/release/sqa-bench);
# SQA_GPU_CHECK_STAGES (comma-separated subset of verify,sweep,scopes,headdim,peers,plot);
# SQA_GPU_CHECK_QUICK=1 (a ~5-minute version for a short device lease: fewer verify
# shapes, the sweep at the published lengths 1k/4k/32k/131k only, shorter peers);
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
# NVRTC: the binary searches the toolkit folders and the usual Python prefixes itself
# (`doctor` lists them). Without a toolkit, also ask this machine's Python where NVIDIA's
# pip wheels (PyTorch's NVRTC) live.
if [[ -z ${SQA_BENCH_CUDA_LIB_DIR:-} ]] && ! compgen -G "/usr/local/cuda*/lib64/libnvrtc.so.1[23]" >/dev/null &&
    command -v python3 >/dev/null 2>&1; then
    PY_NVRTC=$(python3 -c '
import os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = [os.path.join(r, "nvidia", w, "lib") for r in roots for w in ("cu13", "cu12", "cuda_nvrtc")]
print(":".join(d for d in dirs if os.path.isdir(d)))' 2>/dev/null)
    [[ -n $PY_NVRTC ]] && export SQA_BENCH_CUDA_LIB_DIR=$PY_NVRTC && echo "SQA_BENCH_CUDA_LIB_DIR=$PY_NVRTC"
fi
# Compiled kernels are cached inside OUTDIR: a rerun starts at once, a fresh OUTDIR compiles.
export SQA_BENCH_CACHE_DIR=${SQA_BENCH_CACHE_DIR:-$OUT/kernel-cache}

QUICK=${SQA_GPU_CHECK_QUICK:-0}
# Stages to run (comma-separated), all by default: verify, sweep, scopes, headdim, peers, plot.
STAGES=${SQA_GPU_CHECK_STAGES:-all}
want() { [[ $STAGES == all || ",$STAGES," == *",$1,"* ]]; }
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
step doctor 30 "$BIN" doctor

# 3. Correctness against the fp64 reference: every kernel family with full outputs at small
#    lengths and sampled rows (edges, window edges, random) at 16k; the sweep's kernel
#    (auto) on sampled rows at 131k. Bounded to head structures that differ (MHA, GQA/SQA
#    grouping, rSQA's tiled queries, a single KV head, windows).
if ! want verify; then
    :
elif [[ $QUICK == 1 ]]; then
    step verify 50 "$BIN" verify --backend cuda --variants mha,sqa,rsqa,swa \
        --d-head 16,64,128 --small-seqlen 7,129 --seqlen 4k
    step verify-131k 25 "$BIN" verify --backend cuda --kernel auto --variants gqa,sw-sqa \
        --d-head 16 --small-seqlen 1 --seqlen 131k
else
    step verify 90 "$BIN" verify --backend cuda --variants mha,sqa,rsqa,swa \
        --d-head 16,64,128 --small-seqlen 1,7,129,333 --seqlen 16k
    step verify-131k 45 "$BIN" verify --backend cuda --kernel auto --variants gqa,xsmqa,sw-sqa \
        --d-head 64 --small-seqlen 1 --seqlen 131k
fi

# 4. The sweep: all variants, 1k…131k, 131,072 tokens per step, best kernel (mma where
#    it exists); every row is also checked on sampled rows (`verified` column).
if ! want sweep; then
    :
elif [[ $QUICK == 1 ]]; then
    step sweep 120 "$BIN" run --backend cuda --variants all --tokens-per-step 131072 \
        --seqlen 1k,4k,32k,131k --out "$OUT/runs" --quiet
else
    step sweep 225 "$BIN" run --backend cuda --variants all --tokens-per-step 131072 \
        --out "$OUT/runs" --quiet
fi

# 5. The readable baseline kernel at two lengths, for the kernel comparison (it has no
#    tensor cores: at 131k one causal pass takes about a second, too long for this check).
[[ $QUICK == 1 ]] || ! want sweep || step sweep-simple 30 "$BIN" run --backend cuda --kernel simple --variants all \
    --seqlen 4k,32k --tokens-per-step 131072 --out "$OUT/runs" --quiet

# 5b. Layer and model scopes (cuBLAS GEMMs + cuda/model.cu + the attention kernel): whole
#    outputs of small shapes (N = 45 and 300, batch 2, 2 layers, d_ff 64, vocabulary 97,
#    every variant, causal and window) against the f32 forward with fp64 attention, then
#    the paper preset (model scope: d_model 256, 16 heads, 8 layers, d_ff 768, vocabulary
#    10k; the published variants at 131,072 tokens per step) with `attn_time_share` and
#    measured `peak_mem_bytes` per row, then `compare` against the published timings.
if want scopes && [[ ${SQA_GPU_CHECK_SCOPES:-1} == 1 ]]; then
    # cuBLAS: the binary searches the same folders as for NVRTC; where a toolkit supplied
    # NVRTC but has no cuBLAS, these steps also look in the Python wheels (PyTorch's).
    WITH_CUBLAS=(env)
    if [[ -z ${SQA_BENCH_CUDA_LIB_DIR:-} ]] && ! compgen -G "/usr/local/cuda*/lib64/libcublas.so.1[23]" >/dev/null &&
        command -v python3 >/dev/null 2>&1; then
        PY_CUBLAS=$(python3 -c '
import os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = [os.path.join(r, "nvidia", w, "lib") for r in roots for w in ("cu13", "cu12", "cublas")]
print(":".join(d for d in dirs if os.path.isdir(d)))' 2>/dev/null)
        [[ -n $PY_CUBLAS ]] && WITH_CUBLAS=(env "SQA_BENCH_CUDA_LIB_DIR=$PY_CUBLAS") &&
            echo "scope steps: SQA_BENCH_CUDA_LIB_DIR=$PY_CUBLAS"
    fi
    step verify-layer 60 "${WITH_CUBLAS[@]}" "$BIN" verify --backend cuda --scope layer
    step verify-model 60 "${WITH_CUBLAS[@]}" "$BIN" verify --backend cuda --scope model
    # With the mma kernel one 131k MHA attention pass took 62 ms on an H200 (kernel
    # sweep), so a 131k model step is about 0.5 s; the quick mode measures fewer steps.
    if [[ $QUICK == 1 ]]; then
        PAPER_ITERS=(--warmup 1 --min-iters 3 --min-time 0)
    else
        PAPER_ITERS=()
    fi
    step paper $([[ $QUICK == 1 ]] && echo 120 || echo 240) "${WITH_CUBLAS[@]}" "$BIN" run \
        --backend cuda --preset paper --seqlen 1k,4k,32k,131k "${PAPER_ITERS[@]}" \
        --out "$OUT/paper" --quiet
    # ---- compare with the published timings (`sqa-bench compare`, from branch `plot`) ----
    if "$BIN" compare --help >/dev/null 2>&1 && compgen -G "$OUT/paper/*/timings.csv" >/dev/null; then
        PAPER_RUN=$(ls -d "$OUT"/paper/*/ | sort | tail -n 1)
        step compare 20 "$BIN" compare "$PAPER_RUN"
    fi
    # ---------------------------------------------------------------------------------------
fi

# 5c. Head dimensions 64 and 128 (d_model 1024 and 2048, 16 heads) and a 1024-token window,
#     for the comparison with SDPA flash and FlexAttention (the peers below take these shapes).
if want headdim; then
    for DM in 1024 2048; do
        step headdim-$((DM / 16)) 60 "$BIN" run --backend cuda --variants mha,gqa,sqa,xsqa --d-model $DM \
            --seqlen 8k,32k,131k --tokens-per-step 131072 --out "$OUT/runs" --quiet --no-plot
    done
    step window-1024 30 "$BIN" run --backend cuda --variants swa,sw-xsqa --window 1024 \
        --seqlen 8k,32k,131k --tokens-per-step 131072 --out "$OUT/runs" --quiet --no-plot
fi

# 6. Peers on the same GPU, same shapes: PyTorch SDPA (flash, cuDNN, efficient) and
#    FlexAttention with a block mask for the window variants, timed like sqa-bench (CUDA
#    events, L2 flush, warm-up, median), as one more run folder. Rows are written one by
#    one, so a time-out keeps every row already measured. Then one CSV with every row.
if want peers && command -v python3 >/dev/null 2>&1 && compgen -G "$OUT/runs/*/timings.csv" >/dev/null; then
    SWEEPS=("$OUT"/runs/*/)
    step peers $([[ $QUICK == 1 ]] && echo 60 || echo 150) python3 ci/peers.py --sqa-bench "$BIN" --like "${SWEEPS[@]}" \
        --run-dir "$OUT/runs/peers-torch-$(date -u +%Y%m%d-%H%M%S)"
fi
if compgen -G "$OUT/runs/*/timings.csv" >/dev/null; then
    awk 'FNR == 1 && NR != 1 { next } { print }' "$OUT"/runs/*/timings.csv >"$OUT/combined.csv" &&
        echo "== combined: $(($(wc -l <"$OUT/combined.csv") - 1)) rows in $OUT/combined.csv"
fi

# 7. Charts of every run together (each run folder also has its own after `run`).
if want plot && "$BIN" plot --help >/dev/null 2>&1 && compgen -G "$OUT/runs/*/timings.csv" >/dev/null; then
    step plot 20 "$BIN" plot "$OUT"/runs/*/ --out "$OUT/combined"
fi

echo "== gpu-check finished in $((SECONDS - START))s; results in $OUT"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    printf '== FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "== all steps passed"
