"""Round-robin timing of convkit against torch and ONNX Runtime, with roofline fractions.

    python -m benchmarks                       # forward suite, markdown + PNG in results/
    python -m benchmarks --mode backward       # conv2d_backward against torch autograd
    python -m benchmarks --mode coldstart      # import + first calls, fresh processes
    python -m benchmarks --mode memory         # peak extra resident memory of one call
    python -m benchmarks --mode dtypes         # convkit float64 against float32
    python -m benchmarks --cases dw3x3,stem --repeat 21 --dtype float64
    python -m benchmarks --runs 3              # the whole suite 3 times: ratio ranges

Each repeat runs the contenders back to back in a rotating order and the table
reports medians; ratios from one run are what to read on a shared machine.  Where the
machine's other tenants come and go, even those move between runs (up to 40% on the
dense layers here): ``--runs N`` repeats the whole suite and reports each case's median
ratio with its range over the runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

# Before NumPy (and its BLAS) load: every library gets the same 2 threads whatever the
# machine, and every thread pool waits passively -- a pool that spins after its call takes
# the cores from whoever runs next in the round robin.
THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402  (after the thread settings above)

RESULTS = Path(__file__).resolve().parent / "results"


def measure_roofline(dtype) -> tuple[float, float]:
    """(matrix-product FLOP/s, copy bytes/s) of this machine, now, in ``dtype``."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
    peak = max(2 * 2048 ** 3 / _best(lambda: a @ a, 3), 1.0)
    src = np.ones(32 << 20, dtype=np.float64)  # 256 MiB
    dst = np.empty_like(src)
    bandwidth = 2 * src.nbytes / _best(lambda: np.copyto(dst, src), 3)  # read + write
    return peak, bandwidth


def _best(call, repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def round_robin(contenders: dict, repeat: int, prepare: dict | None = None) -> dict:
    """Median seconds of each contender, run back to back in a rotating order."""
    names = list(contenders)
    times = {name: [] for name in names}
    for r in range(repeat + 1):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if prepare and name in prepare:
                prepare[name]()
            start = time.perf_counter()
            contenders[name]()
            elapsed = time.perf_counter() - start
            if r:  # the first round warms up
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


def check_close(name, actual, expected, tol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err = np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30)
    if not err <= tol:
        raise SystemExit(f"{name}: output differs from torch by {err:.2e} (> {tol:.0e}); "
                         f"not timing a wrong answer")


def case_arrays(case, dtype, grad_output=False):
    """Input, weight and bias of a case (and an output gradient), from a fixed seed."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(case.input_shape), rng.standard_normal(case.weight_shape),
              rng.standard_normal(case.c_out)]
    if grad_output:
        arrays.append(rng.standard_normal(case.cost().output_shape))
    return [a.astype(dtype) for a in arrays]


def forward_rows(cases, dtype, repeat, roofline):
    import convkit

    from . import peers

    rows = []
    for case in cases:
        x, w, b = case_arrays(case, dtype)
        contenders = {
            "convkit": partial(convkit.conv2d, x, w, b, **case.settings),
            "torch": peers.torch_conv(case, x, w, b),
        }
        if dtype == np.float32:  # ONNX Runtime's CPU provider has no float64 Conv
            contenders["onnxruntime"] = peers.onnx_conv(case, x, w, b)
        expected = contenders["torch"]().numpy()
        tol = 2e-5 if dtype == np.float32 else 1e-10
        for name in contenders.keys() - {"torch"}:
            check_close(f"{case.name} {name}", contenders[name](), expected, tol)
        rows.append(_row(case, round_robin(contenders, repeat), dtype, roofline))
        print(_format_row(rows[-1]), flush=True)
    return rows


def backward_rows(cases, dtype, repeat, roofline):
    import convkit

    from . import peers

    rows = []
    for case in cases:
        x, w, b, g = case_arrays(case, dtype, grad_output=True)
        prepare, torch_call = peers.torch_backward(case, x, w, b, g)
        contenders = {"convkit": partial(convkit.conv2d_backward, g, x, w, **case.settings),
                      "torch": torch_call}
        prepare()
        expected = [t.numpy() for t in torch_call()]
        tol = 2e-5 if dtype == np.float32 else 1e-10
        for part, got, want in zip(("grad_input", "grad_weight", "grad_bias"),
                                   contenders["convkit"](), expected):
            check_close(f"{case.name} {part}", got, want, tol)
        times = round_robin(contenders, repeat, prepare={"torch": prepare})
        rows.append(_row(case, times, dtype, roofline, backward=True))
        print(_format_row(rows[-1]), flush=True)
    return rows


def _row(case, times, dtype, roofline, backward=False):
    """Ratio to the best peer and roofline fraction.  Backward: twice the forward FLOPs (input
    and weight gradients), traffic = output gradient, input and weight read, their gradients
    written."""
    peak, bandwidth = roofline
    peers = {k: v for k, v in times.items() if k != "convkit"}
    best = times["torch"] if case.tiny else min(peers.values())
    itemsize = np.dtype(dtype).itemsize
    traffic = case.backward_bytes(itemsize) if backward else case.min_bytes(itemsize)
    bound = max((2 if backward else 1) * case.flops() / peak, traffic / bandwidth)
    return {"case": case, "times": times, "best": best, "ratio": times["convkit"] / best,
                "roofline": bound / times["convkit"]}


def combine_runs(runs):
    """One row per case from several runs of the suite (lists of rows in the same case
    order): each contender's median time, the median of the runs' ratios and roofline
    fractions, and ``run_ratios``, each run's ratio in run order."""
    rows = []
    for same_case in zip(*runs):
        first = same_case[0]
        times = {k: statistics.median(r["times"][k] for r in same_case) for k in first["times"]}
        ratios = [r["ratio"] for r in same_case]
        rows.append({**first, "times": times, "ratio": statistics.median(ratios),
                     "run_ratios": ratios,
                     "best": statistics.median(r["best"] for r in same_case),
                     "roofline": statistics.median(r["roofline"] for r in same_case)})
    return rows


def _spread(row) -> str:
    """' (low-high)': the case's ratio range over several runs; '' for one run."""
    ratios = row.get("run_ratios", [])
    return f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def _format_row(row):
    t = row["times"]
    peers = "  ".join(f"{k} {v * 1e3:8.3f}" for k, v in t.items() if k != "convkit")
    return (f"{row['case'].name:18s} convkit {t['convkit'] * 1e3:8.3f}  {peers}  "
            f"ratio {row['ratio']:5.2f}{_spread(row)}  roofline {row['roofline']:6.1%}")


def summary_lines(rows, depthwise_target, grouped_target=None):
    large = [r for r in rows if not r["case"].tiny]
    lines = []
    if large:
        geo = math.exp(sum(math.log(r["ratio"]) for r in large) / len(large))
        worst = max(large, key=lambda r: r["ratio"])
        lines.append(f"geometric mean ratio of {len(large)} large cases: {geo:.2f}"
                     f"{_run_means(large)} (target <= 1.0); worst {worst['case'].name} "
                     f"{worst['ratio']:.2f}{_spread(worst)} (target <= 1.5)")
    for r in rows:
        kind = r["case"].kind
        target = depthwise_target if kind == "depthwise" else (
            grouped_target if kind == "grouped" else None)
        if target is not None and not r["case"].tiny:
            verdict = "met" if r["ratio"] <= target else "NOT met"
            lines.append(f"{r['case'].name}: ratio {r['ratio']:.2f}{_spread(r)}, "
                         f"target <= {target} {verdict}")
    tiny = [r for r in rows if r["case"].tiny]
    for r in tiny:
        verdict = "met" if r["ratio"] <= 1.0 else "NOT met"
        lines.append(f"{r['case'].name} (vs torch's functional call): {r['ratio']:.2f}"
                     f"{_spread(r)}, target <= 1.0 {verdict}")
    return lines


def _run_means(rows) -> str:
    """' (runs: a, b, c)': the geometric mean ratio of each run, when there were several."""
    runs = len(rows[0].get("run_ratios", []))
    if runs < 2:
        return ""
    means = [math.exp(sum(math.log(r["run_ratios"][k]) for r in rows) / len(rows))
             for k in range(runs)]
    return " (runs: " + ", ".join(f"{m:.2f}" for m in means) + ")"


def grid_summary(rows):
    """The depthwise grid's spread: geometric mean, and which layers lead (<= 0.7, the suite's
    depthwise target) and which trail (> 1.0) the best peer."""
    geo = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows))
    ahead = [r["case"].name for r in rows if r["ratio"] <= 0.7]
    behind = [f"{r['case'].name} {r['ratio']:.2f}{_spread(r)}" for r in rows if r["ratio"] > 1.0]
    return [f"geometric mean ratio of {len(rows)} depthwise layers: {geo:.2f}{_run_means(rows)}",
            f"{len(ahead)} at or below 0.7: " + (", ".join(ahead) or "none"),
            f"{len(behind)} above 1.0: " + (", ".join(behind) or "none")]


def write_report(results, mode, rows, header, summary, dtype_name):
    results.mkdir(parents=True, exist_ok=True)
    peers = [k for k in rows[0]["times"] if k != "convkit"]
    lines = [f"# convkit {mode} benchmark", "", *header, "",
             "| case | convkit ms | " + " | ".join(f"{p} ms" for p in peers)
             + " | ratio | roofline |", "|---" * (len(peers) + 4) + "|"]
    for r in rows:
        t = r["times"]
        lines.append(f"| {r['case'].name} | {t['convkit'] * 1e3:.3f} | "
                     + " | ".join(f"{t[p] * 1e3:.3f}" for p in peers)
                     + f" | {r['ratio']:.2f}{_spread(r)} | {r['roofline']:.1%} |")
    lines += ["", *(f"- {s}" for s in summary), ""]
    (results / f"{mode}.md").write_text("\n".join(lines))
    _chart(results, mode, rows, peers, dtype_name)


def _chart(results, mode, rows, peers, dtype_name):
    """Each contender's time over the ratio's reference (the best peer; torch for seed cases)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    names = [r["case"].name for r in rows]
    contenders = ["convkit", *peers]
    fig, ax = plt.subplots(figsize=(12, 4.8))
    width = 0.8 / len(contenders)
    for k, who in enumerate(contenders):
        rel = [r["times"][who] / r["best"] for r in rows]
        xs = np.arange(len(rows)) + (k - (len(contenders) - 1) / 2) * width
        ax.bar(xs, rel, width, label=who)
        if who == "convkit":
            for x, v in zip(xs, rel):
                ax.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FormatStrFormatter("%.2g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("time / reference time (lower is faster)")
    ax.set_xticks(np.arange(len(rows)), names, rotation=30, ha="right")
    reference = "best peer" + (" (seed cases: torch)" if any(r["case"].tiny for r in rows) else "")
    ax.set_title(f"convkit {mode}, {dtype_name}, {THREADS} threads; reference = {reference}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / f"{mode}.png", dpi=110)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("forward", "backward", "coldstart", "memory",
                                           "dtypes", "depthwise"),
                        default="forward")
    parser.add_argument("--cases", default="", help="comma-separated substrings of case names")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    parser.add_argument("--runs", type=int, default=1,
                        help="run the whole suite this many times (forward, backward, "
                             "depthwise): median ratios and their range over the runs")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--batch", type=int, default=0,
                        help="every large case at this batch size instead of the suite's "
                             "(forward, backward): e.g. 1 for one image at a time; writes "
                             "<mode>-batch<N>.md, leaving the suite's tables")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for <mode>.md and .png (default: benchmarks/results; point "
                             "quick or partial runs elsewhere to keep the full run's files)")
    return parser.parse_args(argv)


def header_lines(mode, dtype_name, repeat, roofline, load_before, runs=1):
    import torch

    ort = (f"ONNX Runtime ({THREADS} intra-op threads, sequential)" if dtype_name == "float32"
           else "no ONNX Runtime (its CPU provider has no float64 Conv)")
    peers = (f"torch {torch.__version__} ({THREADS} threads), {ort}" if mode == "forward" else
             f"torch {torch.__version__} autograd ({THREADS} threads), `out.backward` only")
    traffic = ("input + weight + output bytes" if mode == "forward" else
               "output gradient + 2 x (input + weight) bytes; FLOPs x 2")
    ratio = ("convkit / best peer (seed cases: / torch's functional call)" if mode == "forward"
             else "convkit / torch")
    lines = [
        (f"machine: {cpu()}, load average {load_before:.2f} at the start; "
         f"measured now: matrix product {roofline[0] / 1e9:.0f} GFLOP/s ({dtype_name}), "
         f"copy {roofline[1] / 1e9:.1f} GB/s (bytes read + written)"),
        (f"{dtype_name}, NCHW, median of {repeat} round-robin repeats"
         + (f", the median of {runs} runs of the suite (ratios: the range over the runs in "
            f"brackets)" if runs > 1 else "")
         + f"; {peers}; convkit: Numba and BLAS at {THREADS} threads"),
        (f"ratio = {ratio}; roofline = max(FLOPs / matmul peak, ({traffic}) / copy "
         f"bandwidth) / convkit's time"),
    ]
    if load_before > BUSY_LOAD:
        lines.append(f"WARNING: load average {load_before:.2f} before the run -- another process "
                     f"is using the cores, so these times are not comparable with an idle run")
    return lines


def cpu() -> str:
    """The cores the kernels ran on, and the vector width they were compiled for: tables from
    different machines (this one has been an AMD Zen 4 and an Intel Emerald Rapids) differ
    beyond noise."""
    import llvmlite.binding as llvm

    import convkit.kernels  # noqa: F401  (sets Numba's target features: kernels/vectors.py)

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    features = (os.environ.get("NUMBA_CPU_FEATURES")
                or llvm.get_host_cpu_features().flatten()).split(",")
    vectors = ("AVX-512" + (", 256-bit preference lifted" if "-prefer-256-bit" in features
                            else "") if "+avx512f" in features else "no AVX-512")
    return f"{os.cpu_count()} cores of {model} (LLVM: {llvm.get_host_cpu_name()}, {vectors})"


BUSY_LOAD = 0.5  # 1-minute load average above which another process is taking a core


def main(argv=None) -> int:
    args = parse_args(argv)
    from .suite import DEPTHWISE_GRID, SUITE

    pool = DEPTHWISE_GRID if args.mode == "depthwise" else SUITE
    wanted = [s for s in args.cases.split(",") if s]
    cases = [c for c in pool if not wanted or any(s in c.name for s in wanted)]
    if not cases:
        raise SystemExit(f"--cases {args.cases!r} matches none of: "
                         + ", ".join(c.name for c in pool))
    if args.batch < 0:
        raise SystemExit(f"--batch must be a positive batch size, got {args.batch}")
    if args.batch:
        if args.mode not in ("forward", "backward"):
            raise SystemExit("--batch applies to the forward and backward modes")
        cases = [dataclasses.replace(c, n=args.batch) for c in cases if not c.tiny]
        if not cases:
            raise SystemExit("--batch times the large cases only; --cases kept none")
    if args.mode in ("coldstart", "memory"):
        from . import process
        return process.main(args.mode, cases, args.results)
    if args.mode == "dtypes":
        return dtype_report([c for c in cases if not c.tiny], args)
    import torch

    import convkit

    if args.mode == "backward":
        if not hasattr(convkit, "conv2d_backward"):
            raise SystemExit("convkit.conv2d_backward is not available: no backward numbers "
                             "for this version")
        cases = [c for c in cases if not c.tiny]
        if not cases:
            raise SystemExit("backward mode times the 11 large cases only; --cases kept none")
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()[0]
    dtype = np.dtype(args.dtype).type
    repeat = 5 if args.quick else args.repeat
    roofline = measure_roofline(dtype)
    n_runs = max(1, args.runs)
    header = header_lines("backward" if args.mode == "backward" else "forward", args.dtype,
                          repeat, roofline, load_before, n_runs)
    if args.batch:
        header.append(f"batch {args.batch}: every case's N replaced (the targets are the "
                      f"suite's, set for its batches of 8)")
    print("\n".join(header), flush=True)
    timed = backward_rows if args.mode == "backward" else forward_rows
    if n_runs == 1:
        rows = timed(cases, dtype, repeat, roofline)
    else:
        runs = []
        for run in range(n_runs):
            print(f"run {run + 1} of {n_runs}", flush=True)
            runs.append(timed(cases, dtype, repeat, roofline))
        rows = combine_runs(runs)
        print("median of the runs (range over the runs):")
        for row in rows:
            print(_format_row(row))
    if args.mode == "forward":
        summary = summary_lines(rows, depthwise_target=0.7)
    elif args.mode == "depthwise":
        summary = grid_summary(rows)
    else:
        summary = summary_lines(rows, depthwise_target=0.8, grouped_target=0.8)
    summary.append(f"load average at the end: {os.getloadavg()[0]:.2f} "
                   f"(this run itself adds up to {THREADS})")
    print("\n".join(summary))
    name = args.mode + (f"-batch{args.batch}" if args.batch else "")
    write_report(args.results, name, rows, header, summary, args.dtype)
    print(f"wrote {args.results / (name + '.md')} and .png")
    return 0


def dtype_report(cases, args) -> int:
    """convkit's float64 time over its float32 time, per large case, interleaved in one
    process (the target: float64 within 2x); once as plain calls and once into outputs
    allocated before (``out=``), which leaves out the OS's zeroing of fresh pages for a
    result past glibc's 32 MiB reuse limit."""
    import convkit

    repeat = 5 if args.quick else args.repeat
    load_before = os.getloadavg()[0]
    peak, bandwidth = measure_roofline(np.float32)
    # float64's compute roof: half float32's, as a vector holds half the elements (numpy's
    # dgemm against its sgemm is no measure of that: OpenBLAS's two differ in tuning)
    peaks = {"float32": peak, "float64": peak / 2}
    lines = [f"machine: {cpu()}, load average {load_before:.2f} at the start; "
             f"convkit float32 and float64 round robin, median of {repeat}; measured now: "
             f"matrix product {peak / 1e9:.0f} GFLOP/s (float32), copy {bandwidth / 1e9:.1f} GB/s",
             "roofline = max(FLOPs / peak, minimal bytes / copy bandwidth) / convkit's time, "
             "float64's peak half float32's (half the lanes a vector): at the same fraction in "
             "both dtypes, float64 takes twice float32's time", "",
             "| case | float32 ms | float64 ms | float64 / float32 | roofline float32, "
             "float64 | with out=: float32 ms | float64 ms | float64 / float32 |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = {"": [], " out=": []}
    for case in cases:
        calls, bounds = {}, {}
        for dtype in (np.float32, np.float64):
            x, w, b = case_arrays(case, dtype)
            call = partial(convkit.conv2d, x, w, b, **case.settings)
            calls[dtype.__name__] = call
            calls[dtype.__name__ + " out="] = partial(call, out=call())
            bounds[dtype.__name__] = max(case.flops() / peaks[dtype.__name__],
                                         case.min_bytes(np.dtype(dtype).itemsize) / bandwidth)
        times = round_robin(calls, repeat)
        cells = [case.name]
        for kind, kept in ratios.items():
            ratio = times["float64" + kind] / times["float32" + kind]
            fractions = ", ".join(f"{bounds[name] / times[name + kind]:.0%}"
                                  for name in ("float32", "float64"))
            kept.append((ratio, case.name, fractions))
            cells += [f"{times[name + kind] * 1e3:.3f}" for name in ("float32", "float64")]
            cells.append(f"{ratio:.2f}")
            if not kind:
                cells.append(fractions)
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines.append("")
    for kind, kept in ratios.items():
        over = [f"{name} {r:.2f} (roofline {fractions})" for r, name, fractions in kept
                if r > 2.0]
        summary = (f"float64 within 2x of float32{' with out=' if kind else ''} in "
                   f"{len(kept) - len(over)} of {len(kept)} cases"
                   + (f"; over: {', '.join(over)}" if over else ""))
        lines.append(f"- {summary}")
        print(summary)
    lines.append(f"- load average at the end: {os.getloadavg()[0]:.2f}")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "dtypes.md").write_text("# convkit float64 against float32\n\n"
                                             + "\n".join(lines) + "\n")
    print(f"wrote {args.results / 'dtypes.md'}")
    return 0


if __name__ == "__main__":  # python benchmarks/run.py: run as the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import runpy
    runpy.run_module("benchmarks", run_name="__main__")
