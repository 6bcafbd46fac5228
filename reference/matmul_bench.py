"""x @ w.T in PyTorch (float32, 2 threads) at the shapes of the Go benchmark BenchmarkDenseLayout
(models/layers/layout_bench_test.go): the matmul throughput the Go side is compared with in
docs/BENCHMARKS.md.

    /usr/bin/python3 reference/matmul_bench.py
"""
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)
for m, k, n in [(800, 1152, 4304), (800, 4304, 1152), (800, 896, 4864), (800, 4864, 896)]:
    x, w = torch.randn(m, k), torch.randn(n, k)
    for _ in range(3):
        x @ w.t()
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        x @ w.t()
    dt = (time.perf_counter() - t) / reps
    print(f"M{m}_K{k}_N{n}: {dt * 1e3:.1f} ms, {2 * m * k * n / dt / 1e9:.0f} GFLOP/s")
