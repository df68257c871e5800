"""Tiled against untiled inference at photo size: time and peak memory of lightsr.enhance.

    python benchmarks/bench_enhance.py [--models ecbsr-x2 rdn-light-x2] [--backends torch auto] [--size 4000x3000]

Each case runs in a fresh subprocess so its peak resident memory (VmHWM) is its own.
Models are the shipped checkpoints when present (checkpoints/<name>), else random
weights of the registered variant: speed and memory do not depend on the weights.
Untiled runs (``tile=None``, the whole image in one forward pass) get an address-space
limit of --limit-gb so that one that would exhaust the machine fails cleanly instead;
such a run is reported as out of memory at that limit. Tiled runs go through each of --backends
(``auto`` reports what it picked; the backend is compiled and chosen before the clock starts,
as a server does once); the untiled run through the first only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _report import ROOT, machine, write_section

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
sys.path.insert(0, {root!r})
import lightsr
from lightsr.zoo import resolve as resolve_model
torch.set_num_threads({threads})
name, w, h, tile, limit, backend = {name!r}, {w}, {h}, {tile!r}, {limit!r}, {backend!r}
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    model = resolve_model(name)
    source = "shipped weights"
except lightsr.LightSRError:
    model = lightsr.create_model(name).eval()
    source = "random weights"
from lightsr import backends
net = backends.runner(model, backend)  # compiled (int8: quantized) and chosen once, before the clock
picked = backends.LABELS[backends.choice_of(model, net)]
# a real photo, resized to the benchmark size: realistic memory layout and data
from PIL import Image
photo = Image.open(sorted(__import__("pathlib").Path({data!r}).glob("*.jpg"))[0]).convert("RGB").resize((w, h))
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
base = hwm()
t = time.perf_counter()
try:
    out = lightsr.enhance(model, photo, tile=tile, backend=backend).size
except (RuntimeError, MemoryError) as err:  # torch: "DefaultCPUAllocator: can't allocate memory"
    out = None
sec = time.perf_counter() - t
print(json.dumps(dict(source=source, backend=picked, seconds=sec, peak_mb=hwm(), base_mb=base, out=out,
                      tile=tile if tile != "auto" else lightsr.inference.default_tile(model, model.tile_overlap()),
                      overlap=model.tile_overlap(), params=sum(p.numel() for p in model.parameters()))))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["ecbsr-x2", "rdn-light-x2"],
                   help="shipped checkpoint names or registered variants (random weights)")
    p.add_argument("--backends", nargs="+", default=["torch", "auto"], choices=["torch", "openvino", "auto"])
    p.add_argument("--size", default="4000x3000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-gb", type=float, default=20.0, help="address-space limit of the untiled runs")
    args = p.parse_args()
    w, h = map(int, args.size.split("x"))
    rows = []
    limit = int(args.limit_gb * 2**30)
    for name in args.models:
        for tile, backend in [("auto", b) for b in args.backends] + [(None, args.backends[0])]:
            code = CHILD.format(root=str(ROOT), threads=args.threads, name=name, w=w, h=h, tile=tile,
                                limit=None if tile else limit, data=str(ROOT / "data" / "sr-train"), backend=backend)
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(name, r, f"(wall {time.perf_counter() - t:.0f} s)")
            rows.append((name, r))
    lines = [
        "## Tiled inference on a large photo (`benchmarks/bench_enhance.py`)",
        "",
        f"`lightsr.enhance` on a {w}x{h} RGB photo ({w * h / 1e6:.0f} MP), {args.threads} threads: the "
        f"default tile on each backend ({', '.join(args.backends)}; auto: what `backend=\"auto\"`, the default, "
        "picked, compiled before the clock starts) against the whole image in one pass (untiled runs limited to "
        f"{args.limit_gb:.0f} GB of address space). Machine: {machine()}.",
        "Peak RSS is the whole process (Python, torch, the input and the uint8 output image included).",
        "",
        "| model | weights | params | backend | tile / overlap | output | time | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        tiling = f"{r['tile']} / {r['overlap']}" if r["tile"] else "untiled"
        if r["out"] is None:
            result = f"out of memory at {args.limit_gb:.0f} GB | {r['seconds']:.1f} s until it failed"
        else:
            result = f"{r['out'][0]}x{r['out'][1]} | {r['seconds']:.1f} s"
        lines.append(f"| {name} | {r['source']} | {r['params']:,} | {r['backend']} | {tiling} | {result} | "
                     f"{r['peak_mb']:.0f} MB |")
    lines += ["", "Reproduce: `python benchmarks/bench_enhance.py --size " + args.size + "`."]
    write_section("enhance", "\n".join(lines))


if __name__ == "__main__":
    main()
