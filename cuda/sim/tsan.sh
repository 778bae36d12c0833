#!/usr/bin/env bash
# ThreadSanitizer check of the simulator's threads mode (not part of `cargo test`:
# TSan cannot follow the fibers of the default mode, and takes tens of seconds).
#
# Builds cuda/sim/sim.cpp, cuda/attention_simple.cu and its barrier mutant (the same
# mutation as build.rs) with -fsanitize=thread, moves the kernels' .bss into the
# shared-memory section as build.rs does, then runs
#   * the simple kernel: must finish with no race report;
#   * the barrier mutant: ThreadSanitizer must report a data race.
# Usage: cuda/sim/tsan.sh   (needs g++ with libtsan, objdump, objcopy)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${TMPDIR:-/tmp}/sqa_sim_tsan.$$"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
cxx="${CXX:-g++}"
flags=(-std=c++17 -O1 -g -fsanitize=thread -include cuda/sim/sim.h -DSQA_SIM -I cuda -I cuda/sim)

barrier='block_sync();  // the tile is complete before anyone reads it'
grep -qF "$barrier" cuda/attention_simple.cu || { echo "mutation target not found" >&2; exit 1; }
sed -e "s|$barrier|/* mutant: barrier removed */|" -e 's/attention_simple_/attention_simple_mutant_barrier_/g' \
    cuda/attention_simple.cu >"$out/mutant.cu"

for src in cuda/attention_simple.cu "$out/mutant.cu"; do
    obj="$out/$(basename "$src" .cu).o"
    "$cxx" "${flags[@]}" -x c++ -c "$src" -o "$obj"
    renames=()
    for s in $(objdump -h "$obj" | awk '$2 == ".bss" || $2 ~ /^\.bss\./ { print $2 }'); do
        renames+=(--rename-section "$s=sqa_sim_shared")
    done
    objcopy "${renames[@]}" "$obj"
done
"$cxx" "${flags[@]}" cuda/sim/sim.cpp cuda/sim/tests/tsan_main.cpp "$out"/*.o -o "$out/tsan_main" -lpthread

echo "== simple kernel (expect no race)"
TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$out/tsan_main" simple
echo "== barrier mutant (expect a data race)"
if TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$out/tsan_main" mutant >"$out/mutant.log" 2>&1; then
    echo "FAIL: ThreadSanitizer did not report the missing barrier" >&2
    exit 1
fi
grep -q "WARNING: ThreadSanitizer: data race" "$out/mutant.log" || { cat "$out/mutant.log" >&2; exit 1; }
echo "ok: race reported for the mutant"
