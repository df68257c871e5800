"""Flare removal: quality on the fixed synthetic validation set and time per 12 MP photo.

    python benchmarks/bench_flare.py [--threads 2]

For each shipped flare model: RGB PSNR/SSIM on the validation pairs that train_flare.py
uses (the last 8 sr-train photos, never trained on; seeded), against the no-op baseline,
for both inference methods of ``lightsr.flare.remove_flare`` ("tiled" at full resolution,
"lowres" with the flare estimated at 1024 px); and seconds and peak memory for one
4000x3000 photo with each method. Each model's card is re-rendered with these numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import torch
from _report import ROOT, machine, training_runs, write_section

from lightsr import zoo
from lightsr.cards import example_image, flare_card_context, write_card
from lightsr.data.flare import validation_pairs
from lightsr.evaluate import image_files
from lightsr.flare import remove_flare
from lightsr.imaging import open_image
from lightsr.metrics import psnr, ssim

DATA = ROOT / "data" / "sr-train"
# checkpoint folder -> the training runs that produced it, in order (a later run fine-tunes the one before)
RUNS = {"nf-resunet-flare": ("runs/flare-nf", "runs/flare-nf-bilinear"), "pix2pix-flare": ("runs/flare-pix2pix",)}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
from PIL import Image
from lightsr import zoo
from lightsr.flare import remove_flare
torch.set_num_threads({threads})
model = zoo.get_model(zoo.find("flare-removal", label={label!r}))
photo = np.asarray(Image.open({photo!r}).convert("RGB").resize((4000, 3000)))
t = time.perf_counter()
remove_flare(model, photo, method={method!r})
sec = time.perf_counter() - t
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
print(json.dumps(dict(seconds=sec, peak_mb=peak)))
"""


def grid_ratio(pairs, outs, period: int = 16) -> float:
    """Blockiness of the correction (output minus input): its mean gradient across the lines of a
    ``period``-pixel grid over its mean gradient elsewhere. 1.0 means no grid; a U-Net whose coarsest
    level is 1/16 and whose decoder upsamples by nearest neighbour leaves 16-px blocks (> 1)."""
    on, off = [], []
    for (a, _), o in zip(pairs, outs):
        r = o.astype(np.float32).mean(2) - a.astype(np.float32).mean(2)
        for d in (np.abs(np.diff(r, axis=1)), np.abs(np.diff(r, axis=0)).T):
            edge = np.arange(d.shape[1]) % period == period - 1
            on.append(d[:, edge].mean())
            off.append(d[:, ~edge].mean())
    return float(np.mean(on) / np.mean(off))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--holdout", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    held = [np.asarray(open_image(f).convert("RGB")) for f in image_files(DATA)[-args.holdout:]]
    val = validation_pairs(held)  # the same seeded set as train/train_flare.py's defaults
    noop = (np.mean([psnr(a, b, y_channel=False) for a, b in val]),
            np.mean([ssim(a, b, y_channel=False) for a, b in val]))
    rows = []
    for entry in zoo.available("flare-removal"):
        model = zoo.get_model(entry)
        quality = {}
        for method in ("tiled", "lowres"):
            outs = [remove_flare(model, a, method=method, work_size=128) for a, _ in val]
            quality[method] = (np.mean([psnr(o, b, y_channel=False) for o, (_, b) in zip(outs, val)]),
                               np.mean([ssim(o, b, y_channel=False) for o, (_, b) in zip(outs, val)]))
            if method == "tiled":
                grid = grid_ratio(val, outs)
        speed = {}
        for method in ("tiled", "lowres"):
            code = CHILD.format(root=str(ROOT), threads=args.threads, label=entry.label, method=method,
                                photo=str(image_files(DATA)[0]))
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            speed[method] = json.loads(res.stdout.strip().splitlines()[-1])
        run = training_runs(RUNS, entry.name)
        text = (f"{speed['tiled']['seconds']:.0f} s per 12 MP photo tiled, {speed['lowres']['seconds']:.0f} s with "
                f"the low-resolution flare estimate ({args.threads} threads)")
        folder = zoo.CHECKPOINTS / entry.name
        example_image(model, open_image(ROOT / "examples" / "flare" / "night-street.png")).save(folder / "example.png")
        examples = [{"path": "example.png", "caption": "Left: a made night scene with synthetic flare "
                     "(examples/flare/night-street.png, CC0); right: this model's output, light sources kept."}]
        write_card(folder, model, **flare_card_context(model, val, run_dir=run, speed=text),
                   repo_id=f"lightsr/{entry.name}", examples=examples)
        params = sum(x.numel() for x in model.parameters())
        rows.append((entry, params, quality, grid, speed))
        print(entry.name, quality, speed)
    lines = [
        "## Flare removal (`benchmarks/bench_flare.py`)",
        "",
        f"{len(val)} fixed synthetic validation pairs (seeded) from the last {args.holdout} sr-train photos, which "
        "the flare trainer never sees; RGB PSNR/SSIM on whole 256x256 images. Light sources are blended back from "
        "the input in both methods. The low-resolution method estimates flare at 128 px here (the validation images "
        "are 256 px) and at 1024 px on photos. Grid: the tiled correction's (output minus input) mean gradient "
        "across the lines of a 16-px grid over its mean gradient elsewhere; 1.00 means no block artefacts. "
        "Speed: one 4000x3000 photo, fresh process, peak RSS of the process. "
        "Machine: " + machine() + ".",
        "",
        f"No-op baseline (input returned as is): **{noop[0]:.2f} dB / {noop[1]:.4f}**.",
        "",
        "| model | params | tiled PSNR / SSIM | low-res PSNR / SSIM | grid | 12 MP tiled | 12 MP low-res |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e, n, q, g, s in rows:
        lines.append(f"| {e.label} | {n:,} | {q['tiled'][0]:.2f} / {q['tiled'][1]:.4f} | "
                     f"{q['lowres'][0]:.2f} / {q['lowres'][1]:.4f} | {g:.2f} | {s['tiled']['seconds']:.0f} s, "
                     f"{s['tiled']['peak_mb']:.0f} MB | {s['lowres']['seconds']:.0f} s, "
                     f"{s['lowres']['peak_mb']:.0f} MB |")
    if not rows:
        lines.append("| (no flare model shipped yet) | | | | | | |")
    lines += ["", "Reproduce: `python benchmarks/bench_flare.py`."]
    write_section("flare", "\n".join(lines))


if __name__ == "__main__":
    main()
