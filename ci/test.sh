#!/usr/bin/env bash
# The README's test command: formatting, lints, the PTX/ptxas check of every CUDA kernel
# for sm_80 and sm_90 (no GPU needed), and every test (simulator tests included).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned NVIDIA wheels: NVRTC (+ builtins), ptxas, NVVM, headers. Installed once into the
# git-ignored .toolchain/py and reused while the pinned versions are there. The CUDA
# backend finds NVRTC there by itself (see README, "Finding CUDA").
WHEELS=(
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
)
wheels_present() {
    local w
    for w in "${WHEELS[@]}"; do
        local name=${w%%==*} version=${w##*==}
        [[ -d .toolchain/py/${name//-/_}-${version}.dist-info ]] || return 1
    done
}
if ! wheels_present; then
    echo "installing the pinned NVIDIA wheels into .toolchain/py"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target .toolchain/py "${WHEELS[@]}"
fi
wheels_present || { echo "error: the pinned NVIDIA wheels are not in .toolchain/py" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo build --release

# Every kernel compiled by the real NVRTC for A100 and H100/H200, assembled by ptxas;
# the resource table is printed here. Spills are enforced by tests/cuda_compile.rs.
target/release/sqa-bench kernels --arch sm_80,sm_90 --require-ptxas --allow-spills \
    --out target/kernels

# CI=true (set by CI) turns a missing NVRTC or ptxas into a test failure.
cargo test --release
