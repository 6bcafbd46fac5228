#!/bin/bash
# Runs switchkd's benchmarks and the PyTorch references alternately (Go, then PyTorch, N times),
# as docs/BENCHMARKS.md's side-by-side tables were measured. Needs /tmp/bench05 (written by
# `/usr/bin/python3 reference/tinyllava_ref.py bench --out /tmp/bench05`) for the prefill and
# Debian's python3-torch with OpenBLAS selected. Run it on an otherwise idle machine.
#
#   reference/side_by_side.sh [prefill|step|small|all] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
n=${2:-3}
bin=/tmp/switchkd-side-by-side
GOEXPERIMENT=simd go build -o "$bin" ./cmd/switchkd
py=/usr/bin/python3
one() { tr -d '\n'; echo; }
if [[ $what == prefill || $what == all ]]; then
  for i in $(seq "$n"); do
    echo "== $(date +%T) go prefill $i"
    /usr/bin/time -f "maxrss_kb=%M" "$bin" bench --model /tmp/bench05 --repeat 1 2>&1 |
      grep -E "load_s|prefill_s|prefill_cpu|decode_tokens_per|peak_rss|maxrss" | one
    echo "== $(date +%T) torch prefill $i"
    $py reference/tinyllava_ref.py bench --out /tmp/bench05 --skip-write --time 2>&1 |
      grep -E '"load_s"|"prefill_s"|"prefill_cpu_s"|"decode_tokens_per_s"|vision_connector_s|llm_prefill_s' | one
  done
fi
if [[ $what == step || $what == all ]]; then
  for i in $(seq "$n"); do
    echo "== $(date +%T) go step qwen05 $i"
    "$bin" bench-step --preset qwen05 --layers 2 --steps 3 2>&1 |
      grep -E "step_s_best|step_s_mean|losses_share|optimizer_s_mean|peak_rss" | one
    echo "== $(date +%T) torch step qwen05 $i"
    $py reference/step_bench.py --preset qwen05 --layers 2 --steps 3 --threads 2 2>&1 |
      grep -E '"step_s_best"|"step_s_mean"|losses_share|peak_rss' | one
  done
fi
if [[ $what == small || $what == all ]]; then
  for i in $(seq "$n"); do
    echo "== $(date +%T) go step small $i"
    "$bin" bench-step --preset small --steps 100 2>&1 | grep -E "step_s_best|step_s_mean|losses_share|peak_rss" | one
    # PyTorch with 2 threads and with 1 (at these sizes one thread is often as fast and
    # steadier); the comparison takes its better run.
    for th in 2 1; do
      echo "== $(date +%T) torch step small $i, $th thread(s)"
      $py reference/step_bench.py --preset small --steps 100 --threads $th 2>&1 | grep -E '"step_s_best"|"step_s_mean"|losses_share' | one
    done
  done
fi
echo "== $(date +%T) done"
