"""Does our timer agree with ``triton.testing.do_bench``? Run on a CUDA machine.

    python benchmarks/timing_agreement.py [--repeats 5]

For a Triton vector add and a Triton row softmax at several sizes, both timers
measure the same call ``--repeats`` times (each a median of many calls, L2
flushed). The table shows the median of each timer's medians, their ratio, the
run-to-run spread ((max - min) / median of the repeats) of each, and whether
they agree: the ranges [min, max] of the two timers' medians overlap, or differ
by less than 2%. Exits 0 with a message where there is no CUDA device.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

TOLERANCE = 0.02


def kernels() -> Any:
    """Return the Triton ``add`` and ``softmax`` kernels (defined late: triton imported here)."""
    import triton
    import triton.language as tl

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)

    @triton.jit
    def softmax_kernel(x_ptr, out_ptr, cols, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        mask = offs < cols
        x = tl.load(x_ptr + row * cols + offs, mask=mask, other=-float("inf"))
        e = tl.exp(x - tl.max(x, axis=0))
        tl.store(out_ptr + row * cols + offs, e / tl.sum(e, axis=0), mask=mask)

    return add_kernel, softmax_kernel


def cases() -> list[tuple[str, str, Callable[[], Any]]]:
    """Return ``(kernel, size, call)`` for every measured case (inputs allocated once per case)."""
    import torch
    import triton

    add_kernel, softmax_kernel = kernels()
    found: list[tuple[str, str, Callable[[], Any]]] = []
    for n in (1 << 16, 1 << 20, 1 << 24, 1 << 27):
        x, y = torch.rand(n, device="cuda"), torch.rand(n, device="cuda")
        out = torch.empty_like(x)
        grid = (triton.cdiv(n, 1024),)
        found.append(("vector add", f"{n:,}", partial(add_kernel[grid], x, y, out, n, BLOCK=1024)))
    for rows, cols in ((1024, 1024), (4096, 4096), (16384, 2048)):
        x = torch.randn(rows, cols, device="cuda")
        out = torch.empty_like(x)
        block = triton.next_power_of_2(cols)
        found.append(("softmax", f"{rows}x{cols}", partial(softmax_kernel[(rows,)], x, out, cols, BLOCK=block)))
    return found


def spread(values: list[float]) -> float:
    """Return (max - min) / median of ``values``."""
    return (max(values) - min(values)) / statistics.median(values)


def compare_case(call: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Return both timers' medians over ``repeats`` runs, their ratio, spreads and agreement."""
    from triton.testing import do_bench

    from pytest_kernelfalcon.child.bench import l2_flush_buffer, measure

    flush = l2_flush_buffer()
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(measure(call, [[]], flush=flush)["median_ms"])
        theirs.append(float(do_bench(call, warmup=25, rep=100, return_mode="median")))
    mine, ref = statistics.median(ours), statistics.median(theirs)
    overlap = min(ours) <= max(theirs) and min(theirs) <= max(ours)
    return {"ours": mine, "do_bench": ref, "ratio": mine / ref, "spread_ours": spread(ours),
            "spread_do_bench": spread(theirs), "agree": overlap or abs(mine / ref - 1) < TOLERANCE}


def main(argv: list[str] | None = None) -> int:
    """Print the agreement table; return 0 when every case agrees (or there is no CUDA), else 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("timing_agreement: no CUDA device here; run it on the GPU machine (nothing measured)")
        return 0
    from tabulate import tabulate

    rows = []
    for kernel, size, call in cases():
        r = compare_case(call, args.repeats)
        rows.append((kernel, size, f"{1000 * r['ours']:.2f}", f"{1000 * r['do_bench']:.2f}", f"{r['ratio']:.3f}",
                     f"{100 * r['spread_ours']:.1f}%", f"{100 * r['spread_do_bench']:.1f}%",
                     "yes" if r["agree"] else "NO"))
    print(f"GPU: {torch.cuda.get_device_name(0)}; {args.repeats} repeats per timer; times are medians in us")
    print(tabulate(rows, headers=["kernel", "size", "ours us", "do_bench us", "ratio", "spread ours",
                                  "spread do_bench", "agree"]))
    return 0 if all(row[-1] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
