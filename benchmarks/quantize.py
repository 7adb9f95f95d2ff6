"""Quantize: `vaespec.impl.vq.quantize` against a bare `torch.cdist` + argmin + gather, in float32.

Cases (no gradient is recorded: z_e does not require grad):

- `ours`: `quantize(z_e, codebook, validate=False)`: one `addmm` for ‖e‖² − 2 z·e, argmin, the
  row gather and the straight-through sum `z_e + (e − z_e)`.
- `ours (validated)`: the same with `validate=True` (shape, dtype and finiteness checks).
- `cdist baseline`: `C[torch.cdist(z, C).argmin(1)]`.
- `blocked + min (diagnostic)`, at the main size: a candidate `nearest_code` written here: the
  distances in blocks of rows (2 MiB each, reused from the cache instead of a fresh B×K tensor
  whose pages fault in on first touch) and `min(1).indices`, which returns the same first
  minimal index as `argmin(1)` and runs about twice as fast on CPU. Same indices, ties included.
- `matmul floor`: `z · Cᵀ` alone into a preallocated output.
- `broadcast (O(B·K·D))`, memory only: `((z[:, None] − C[None]) ** 2).sum(-1).argmin(1)`, the
  naive form; it shows the memory method can tell O(B·K·D) from O(B·K).

Memory is the peak growth over the inputs (timing.py explains the method), over a sweep of
B·K at D = 64 and of D at fixed B·K, so the two growth laws can be told apart.
"""

from __future__ import annotations

import torch

from .report import Memory, Ratio, Report
from .timing import compare, cuda_peak_growth, peak_rss_growths

NAME = "quantize"
FULL = {"main": (8192, 1024, 64), "batches": (1024, 4096, 8192), "codes": (256, 1024, 4096), "dims": (16, 64, 256),
            "fixed_bk": (512, 4096)}
# Toy: big enough that the memory figures are whole pages (a 512×128 float32 matrix is 256 KiB).
TOY = {"main": (512, 128, 8), "batches": (512,), "codes": (128,), "dims": (2, 8), "fixed_bk": (512, 128)}
MEMORY_CASES = ("ours", "cdist baseline", "broadcast (O(B·K·D))")


def _inputs(batch: int, codes: int, dim: int, device: str):
    g = torch.Generator(device).manual_seed(0)
    return (torch.randn(batch, dim, device=device, generator=g),
            torch.randn(codes, dim, device=device, generator=g))


def _blocked_quantize(z: torch.Tensor, c: torch.Tensor, elements: int = 1 << 19):
    norms = (c * c).sum(1)
    rows = max(1, elements // c.shape[0])
    indices = torch.empty(z.shape[0], dtype=torch.int64, device=z.device)
    for start in range(0, z.shape[0], rows):
        indices[start:start + rows] = torch.addmm(norms, z[start:start + rows], c.T, alpha=-2.0).min(1).indices
    return z + (c.index_select(0, indices) - z), indices


def operation(case: str, batch: int, codes: int, dim: int, device: str = "cpu"):
    """A zero-argument callable running `case` once on fresh inputs of the given sizes."""
    from vaespec.impl.vq import quantize

    z, c = _inputs(batch, codes, dim, device)
    if case == "ours":
        return lambda: quantize(z, c, validate=False)
    if case == "ours (validated)":
        return lambda: quantize(z, c, validate=True)
    if case == "cdist baseline":
        return lambda: c[torch.cdist(z, c).argmin(1)]
    if case == "blocked + min (diagnostic)":
        return lambda: _blocked_quantize(z, c)
    if case == "matmul floor":
        out = torch.empty(batch, codes, device=device)
        return lambda: torch.mm(z, c.t(), out=out)
    if case == "broadcast (O(B·K·D))":
        return lambda: c[((z[:, None] - c[None]) ** 2).sum(-1).argmin(1)]
    raise ValueError(f"case: unknown quantize case {case!r}")


def run(report: Report, device: str, *, toy: bool, repeats: int, **_) -> None:
    sizes = TOY if toy else FULL
    main = sizes["main"]
    configs = [main] + [(b, k, main[2]) for b in sizes["batches"] for k in sizes["codes"] if (b, k, main[2]) != main]
    for batch, codes, dim in configs:
        config = f"B={batch} K={codes} D={dim}"
        cases = ("ours", "ours (validated)", "cdist baseline", "blocked + min (diagnostic)", "matmul floor") \
            if (batch, codes, dim) == main \
            else ("ours", "cdist baseline", "matmul floor")
        timings = compare({c: operation(c, batch, codes, dim, device) for c in cases}, repeats=repeats,
                          device=device)
        report.add_timings(NAME, device, config, timings)
        report.ratio(NAME, device, config, "ours", "cdist baseline", 1.0)
        if (batch, codes, dim) == main:
            report.ratio(NAME, device, config, "ours (validated)", "cdist baseline")
            report.ratio(NAME, device, config, "blocked + min (diagnostic)", "cdist baseline",
                         note="candidate nearest_code, see docs/performance.md")
            report.ratio(NAME, device, config, "ours", "matmul floor")

    threads = torch.get_num_threads()
    memory_configs = [(b, k, main[2]) for b in sizes["batches"] for k in sizes["codes"]]
    memory_configs += [(*sizes["fixed_bk"], d) for d in sizes["dims"] if (*sizes["fixed_bk"], d) not in memory_configs]
    jobs = []
    for batch, codes, dim in memory_configs:
        for case in MEMORY_CASES:
            if case.startswith("broadcast") and (batch, codes) != sizes["fixed_bk"]:
                continue  # the naive form is only the D sweep's positive control (it needs 4·B·K·D bytes)
            if toy and case == "cdist baseline" and dim != main[2]:
                continue  # toy runs check the harness: one subprocess fewer per D
            jobs.append((case, batch, codes, dim))
    jobs.append(("blocked + min (diagnostic)", max(sizes["batches"]), max(sizes["codes"]), main[2]))
    if device == "cpu":
        # Each configuration in its own process; as many at once as there are torch threads' cores (a toy run:
        # one process for all, since it checks the harness and its figures measure nothing).
        results = peak_rss_growths("benchmarks.quantize", "operation",
                                   [({"case": c, "batch": b, "codes": k, "dim": d},
                                     {"case": c, "batch": 64, "codes": 64, "dim": d}) for c, b, k, d in jobs],
                                   threads=1, parallel=max(1, threads), fresh=not toy)
    else:
        results = [cuda_peak_growth(operation(c, b, k, d, device), device) for c, b, k, d in jobs]
    peaks: dict[tuple, int] = {}
    for (case, batch, codes, dim), result in zip(jobs, results):
        peaks[case, batch, codes, dim] = result["bytes"]
        report.memory.append(Memory(NAME, device, f"B={batch} K={codes} D={dim}", case, result["bytes"],
                                    result["method"]))
    # Growth with D at fixed B·K: O(B·K) stays near 1× (only the B×D output grows), O(B·K·D) grows as D.
    b, k = sizes["fixed_bk"]
    d_lo, d_hi = min(sizes["dims"]), max(sizes["dims"])
    config = f"B={b} K={k} D={d_lo}→{d_hi}"
    for case, target in (("ours", 2.0), ("cdist baseline", None), ("broadcast (O(B·K·D))", None)):
        lo, hi = peaks.get((case, b, k, d_lo)), peaks.get((case, b, k, d_hi))
        value = hi / lo if lo and hi is not None else None
        note = f"O(B·K·D) would give ≈ {d_hi // d_lo}×" if case == "ours" else \
            "positive control" if case.startswith("broadcast") else ""
        report.ratios.append(Ratio(NAME, device, config, f"peak memory {case} (D={d_hi} / D={d_lo})", value, target,
                                   note))
    # Bytes per distance entry at the largest B·K: O(B·K) means a small constant (4 bytes = one float32 matrix).
    b, k = max(sizes["batches"]), max(sizes["codes"])
    for case in ("ours", "cdist baseline", "blocked + min (diagnostic)"):
        peak = peaks.get((case, b, k, main[2]))
        report.ratios.append(Ratio(NAME, device, f"B={b} K={k} D={main[2]}", f"peak memory {case} / (4·B·K bytes)",
                                   None if peak is None else peak / (4 * b * k), None,
                                   "1 = one float32 B×K matrix"))
