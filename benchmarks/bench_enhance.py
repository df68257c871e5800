"""Tiled inference at photo size: time and peak memory of lightsr.enhance.

    python benchmarks/bench_enhance.py [--models rdn-tiny rdn-light] [--size 4000x3000]

Each case runs in a fresh subprocess so its peak resident memory (VmHWM) is its own.
Models are the shipped checkpoints when present (checkpoints/<name>), else random
weights of the registered variant: speed and memory do not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _report import ROOT, machine, write_section

CHILD = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {root!r})
import lightsr
from lightsr.cli import resolve_model
torch.set_num_threads({threads})
name, w, h, tile = {name!r}, {w}, {h}, {tile!r}
try:
    model = resolve_model(name)
    source = "shipped weights"
except lightsr.LightSRError:
    model = lightsr.create_model(name).eval()
    source = "random weights"
rng = np.random.default_rng(0)
# a real photo, resized to the benchmark size: realistic memory layout and data
from PIL import Image
photo = Image.open(sorted(__import__("pathlib").Path({data!r}).glob("*.jpg"))[0]).convert("RGB").resize((w, h))
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
base = hwm()
t = time.perf_counter()
out = lightsr.enhance(model, photo, tile=tile)
sec = time.perf_counter() - t
print(json.dumps(dict(source=source, seconds=sec, peak_mb=hwm(), base_mb=base, out=list(out.size),
                      tile=tile if tile != "auto" else lightsr.inference.default_tile(model, model.tile_overlap()),
                      overlap=model.tile_overlap(), params=sum(p.numel() for p in model.parameters()))))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["ecbsr-m4c16", "rdn-light"],
                   help="shipped checkpoint names or registered variants (random weights)")
    p.add_argument("--size", default="4000x3000")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    w, h = map(int, args.size.split("x"))
    rows = []
    for name in args.models:
        code = CHILD.format(root=str(ROOT), threads=args.threads, name=name, w=w, h=h, tile="auto",
                            data=str(ROOT.parent / "shared" / "data" / "sr-train"))
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(name, r, f"(wall {time.perf_counter() - t:.0f} s)")
        rows.append((name, r))
    lines = [
        "## Tiled inference on a large photo (`benchmarks/bench_enhance.py`)",
        "",
        f"`lightsr.enhance` on a {w}x{h} RGB photo ({w * h / 1e6:.0f} MP), default tile, fp32, "
        f"{args.threads} threads. Machine: {machine()}.",
        "Peak RSS is the whole process (Python, torch, the input and the uint8 output image included).",
        "",
        "| model | weights | params | tile / overlap | output | time | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['source']} | {r['params']:,} | {r['tile']} / {r['overlap']} | "
                     f"{r['out'][0]}x{r['out'][1]} | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB |")
    lines += ["", "Reproduce: `python benchmarks/bench_enhance.py --size " + args.size + "`."]
    write_section("enhance", "\n".join(lines))


if __name__ == "__main__":
    main()
