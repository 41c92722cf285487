"""Measurements that need a fresh process: cold start and peak memory of one call."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

# import + a first dense, grouped and depthwise call, timed inside a fresh interpreter
COLD = r"""
import time, json
start = time.perf_counter()
import numpy as np
{imports}
x = np.ones((2, 16, 32, 32), np.float32)
calls = [((32, 16, 3, 3), 1), ((32, 4, 3, 3), 4), ((16, 1, 3, 3), 16)]
for shape, groups in calls:
    {call}
print(json.dumps(time.perf_counter() - start))
"""
CONVKIT = {"imports": "import convkit",
               "call": "convkit.conv2d(x, np.ones(shape, np.float32), padding=1, groups=groups)"}
TORCH = {"imports": "import torch; torch.set_num_threads(2)",
             "call": "torch.nn.functional.conv2d(torch.from_numpy(x), "
                  "torch.ones(shape), padding=1, groups=groups)"}

MEMORY = r"""
import json, resource, numpy as np, convkit


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


def ru_maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


shape, wshape, settings = {shape}, {wshape}, {settings}
small = (1, shape[1], 16, 16)
convkit.conv2d(np.ones(small, np.float32), np.ones(wshape, np.float32), **settings)  # load kernels
x = np.ones(shape, np.float32); w = np.ones(wshape, np.float32)
x += 0; w += 0  # touch the pages
try:  # Linux: reset the peak, so no earlier high-water mark can hide the call's growth
    open("/proc/self/clear_refs", "w").write("5")
    before, peak = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    before, peak = ru_maxrss(), ru_maxrss
out = convkit.conv2d(x, w, **settings)
print(json.dumps([peak() - before, x.nbytes, out.nbytes]))
"""


def _run(code: str, env=None) -> object:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if done.returncode:
        raise SystemExit(f"the measuring subprocess failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def coldstart() -> list[str]:
    _run(COLD.format(**CONVKIT))  # fills the compile cache
    warm = min(_run(COLD.format(**CONVKIT)) for _ in range(3))
    torch_time = min(_run(COLD.format(**TORCH)) for _ in range(3))
    with tempfile.TemporaryDirectory() as cache:
        cold = _run(COLD.format(**CONVKIT), env={"NUMBA_CACHE_DIR": cache})
    verdict = "met" if warm <= torch_time else "NOT met"
    return [
        ("import + first dense, grouped and depthwise call (2x16x32x32, 3x3, groups 1, 4, 16), "
         "fresh process, best of 3:"),
        f"  convkit, compile cache warm  {warm:6.2f} s",
        (f"  torch                        {torch_time:6.2f} s   ratio {warm / torch_time:.2f} "
         f"(target <= 1.0) {verdict}"),
        (f"  convkit, compile cache cold  {cold:6.2f} s   (first use on a machine: empty "
         f"NUMBA_CACHE_DIR, one run)"),
    ]


MEMORY_CASES = [("resnet-stem N=16", (16, 3, 224, 224), (64, 3, 7, 7),
                 {"stride": 2, "padding": 3}),
                ("depthwise 16x144x112x112", (16, 144, 112, 112), (144, 1, 3, 3),
                 {"padding": 1, "groups": 144})]


def memory(cases) -> list[str]:
    rows = MEMORY_CASES + [(c.name, c.input_shape, c.weight_shape, c.settings)
                           for c in cases if not c.tiny]
    lines = ["peak resident growth of one convkit.conv2d call, fresh process per case, float32",
             f"{'case':26s} {'extra MiB':>10s} {'limit MiB':>10s}  (input + output + 64 MiB)"]
    print("\n".join(lines), flush=True)
    for name, shape, wshape, settings in rows:
        code = MEMORY.format(shape=shape, wshape=wshape, settings=settings)
        _run(code)  # compile cache
        extra, inp, out = _run(code)
        limit = inp + out + (64 << 20)
        verdict = "pass" if extra <= limit else "FAIL"
        lines.append(f"{name:26s} {extra / 2**20:10.1f} {limit / 2**20:10.1f}  {verdict}")
        print(lines[-1], flush=True)
    return lines


def main(mode: str, cases, results) -> int:
    """Run ``mode`` ("coldstart" or "memory"); print it and write ``results/<mode>.md``."""
    if mode == "coldstart":
        lines = coldstart()
        print("\n".join(lines))
    else:
        lines = memory(cases)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{mode}.md").write_text(f"# convkit {mode}\n\n```\n" + "\n".join(lines)
                                        + "\n```\n")
    print(f"wrote {results / (mode + '.md')}")
    return 0
