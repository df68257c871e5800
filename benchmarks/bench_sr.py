"""Super-resolution quality and speed of the shipped checkpoints.

    python benchmarks/bench_sr.py [--threads 2] [--frames 10]

For each super-resolution folder in checkpoints/: Set5/Set14 PSNR/SSIM (Y channel, the
standard protocol, PyTorch fp32: the reference) against bicubic, parameters, and model speed
on one video frame whose output is 1280x720 (640x360 in at x2, 320x180 at x4; batch 1, median
of --frames runs) through the default backend (``backend="auto"``: whichever of PyTorch and
OpenVINO fp32 / bf16 / int8 it picks on this machine, named in the table; what each costs in
PSNR is bench_backends.py's table), with Pillow bicubic timed on the same frames. Speed is set
against what this CPU can do in fp32: a stack of eight 3x3 convolutions (64 -> 64 channels on a
640x360 map) is timed first in PyTorch (channels_last) and in OpenVINO, and each model's GFLOPs per
frame divided by its time is given as a fraction of the faster (int8 can pass 100%). Then the
x8 self-ensemble of each (``enhance(..., self_ensemble=8)``: eight flipped and transposed passes
averaged): its Set5/Set14 scores (PyTorch fp32) and its time on the same frame (median of
ENSEMBLE_RUNS). Writes its BENCHMARKS.md section and the numbers the cards print
(benchmarks/results/sr.json); ``python benchmarks/render_cards.py`` then renders each
checkpoint's card from them and from the run folders named in RUNS. Run it on an otherwise
idle machine.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import torch
from _report import ROOT, conv_rooflines, machine, median_time, write_results, write_section

import lightsr
from lightsr import backends, zoo
from lightsr.evaluate import evaluate_sr
from lightsr.imaging import bicubic_upscale
from lightsr.inference import self_ensemble
from PIL import Image

BENCH = ROOT / "data" / "sr-bench"
# checkpoint folder -> the training runs that produced it, in order (runs/<name>/args.json and
# last/training_state.json); a later run is a fine-tune warm-started from the one before
RUNS = {
    "rdn-light-x2": ("runs/sr-quality-x2", "runs/sr-quality-x2-ft"),
    "rdn-light-x4": ("runs/sr-quality-x4",),
    "ecbsr-x2": ("runs/ecbsr-y-x2", "runs/ecbsr-y-x2-b", "runs/ecbsr-y-x2-l2", "runs/ecbsr-y6-x2",
                 "runs/ecbsr-y6-x2-l2"),
    "ecbsr-x4": ("runs/ecbsr-y6-x4", "runs/ecbsr-y6-x4-l2"),
    "span-s-x2": ("runs/span-s-x2", "runs/span-s-x2-b", "runs/span-s-x2-c"),
    "span-s-x4": ("runs/span-s-x4", "runs/span-s-x4-d", "runs/span-s-x4-l2"),
}


OUTPUT = (1280, 720)  # every speed is for one 720p output frame
ENSEMBLE_RUNS = 3  # timed runs of the x8 self-ensemble (8 passes each)


def frame_size(scale: int) -> tuple[int, int]:
    """(width, height) of the input frame that the model turns into 1280x720."""
    return OUTPUT[0] // scale, OUTPUT[1] // scale


@torch.inference_mode()
def frame_speed(model, runs: int, size: tuple[int, int] = (640, 360), ensemble: int = 1) -> tuple[float, str]:
    """Median seconds for one (width, height) frame through the model alone (``ensemble`` passes
    averaged: ``self_ensemble``), on the backend auto picks (PyTorch channels_last, as enhance
    runs it), and that backend's name."""
    picked = backends.runner(model.eval(), "auto")
    net = self_ensemble(picked, ensemble)
    x = torch.rand(1, 3, size[1], size[0])
    if picked is model:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return median_time(lambda: net(x), runs), backends.LABELS[backends.choice_of(model, picked)]


def bicubic_speed(scale: int, runs: int) -> float:
    """Median seconds of Pillow bicubic (the baseline's own resize) on one frame."""
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*frame_size(scale)[::-1], 3), np.uint8))
    return median_time(lambda: bicubic_upscale(frame, scale), runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rooflines = conv_rooflines(args.frames)
    roofline = max(rooflines.values())
    print("3x3 conv roofline, GFLOP/s:", {k: round(v) for k, v in rooflines.items()})
    rows, ensembles = [], []
    results = {}
    for entry in zoo.available("super-resolution"):
        folder = zoo.CHECKPOINTS / entry.name
        model = lightsr.load(folder)
        d = lightsr.describe(model)
        w, h = frame_size(model.scale)
        sec, backend = frame_speed(model, args.frames, (w, h))
        gflops = d["gflops_per_megapixel"] * w * h / 1e6
        scores = {n: evaluate_sr(model, BENCH / n) for n in ("Set5", "Set14")}
        speed = (f"{sec * 1000:.0f} ms per {w}x{h} frame to 1280x720 ({1 / sec:.1f} frames/s, model only, "
                 f"{args.threads} threads, {backend} as backend='auto' picked")
        if backend != backends.LABELS["torch"]:  # what that backend gives, beside the reference's scores
            picked = {n: evaluate_sr(model, BENCH / n, backend="auto").psnr for n in ("Set5", "Set14")}
            speed += f"; Set5 / Set14 on it {picked['Set5']:.2f} / {picked['Set14']:.2f} dB"
        speed += ")"
        ensembled = {n: evaluate_sr(model, BENCH / n, net=self_ensemble(backends.runner(model, "torch"), 8))
                     for n in ("Set5", "Set14")}
        ensemble_sec, _ = frame_speed(model, ENSEMBLE_RUNS, (w, h), ensemble=8)
        ensembles.append((entry.name, scores, ensembled, ensemble_sec))
        results[entry.name] = {"scores": {n: asdict(v) for n, v in scores.items()}, "speed": speed,
                               "self_ensemble": {"scores": {n: asdict(v) for n, v in ensembled.items()},
                                                 "seconds_per_frame": ensemble_sec}}
        params = f"{d['inference_parameters']:,}" + (
            f" ({d['parameters']:,} stored)" if d["parameters"] != d["inference_parameters"] else "")
        rows.append((entry.name, params, gflops, scores, (w, h), sec, backend))
        print(entry.name, f"{1 / sec:.1f} fps", backend, {n: round(s.psnr, 2) for n, s in scores.items()})
    rows.sort(key=lambda r: (r[4][0] < 600, r[5]))  # x2 then x4, slowest first within a scale
    lines = [
        "## Super-resolution: quality and speed (`benchmarks/bench_sr.py`)",
        "",
        "Set5/Set14 in the standard protocol (Y channel, `scale` pixels shaved, LR by Pillow bicubic), PyTorch "
        "fp32 (the reference; what a lower precision changes: the backends table). Speed is the model alone on one "
        "frame whose output is 1280x720 (640x360 in at x2, 320x180 at x4), batch 1, through the default backend "
        "(`backend=\"auto\"`, its pick named). Roofline: a stack of eight 3x3 convs (64 -> 64 channels, "
        "640x360) runs at "
        f"{rooflines['torch']:.0f} GFLOP/s in PyTorch fp32 (channels_last) and {rooflines['fp32']:.0f} in "
        f"OpenVINO fp32 here; \"of roofline\" is a model's GFLOPs per frame over its time, as a fraction of "
        f"the faster, **{roofline:.0f} GFLOP/s** (int8 can pass 100%). Machine: " + machine() + ".",
        "",
        "| checkpoint | params at inference | Set5 PSNR / SSIM | Set14 PSNR / SSIM | bicubic Set5 / Set14 | "
        "input frame | "
        "GFLOPs / frame | backend (auto) | ms / frame (fps) | of fp32 roofline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, params, gflops, s, (w, h), sec, backend in rows:
        lines.append(f"| {name} | {params} | {s['Set5'].psnr:.2f} / {s['Set5'].ssim:.4f} | "
                     f"{s['Set14'].psnr:.2f} / {s['Set14'].ssim:.4f} | "
                     f"{s['Set5'].bicubic_psnr:.2f} / {s['Set14'].bicubic_psnr:.2f} | {w}x{h} | {gflops:.1f} | "
                     f"{backend} | "
                     f"{sec * 1000:.0f} ms ({1 / sec:.1f}) | {gflops / sec / roofline:.0%} |")
    if not rows:
        lines.append("| (no super-resolution checkpoint shipped yet) | | | | | | | | | |")
    for scale in (2, 4):
        w, h = frame_size(scale)
        sec = bicubic_speed(scale, args.frames)
        lines.append(f"| bicubic x{scale} (Pillow) | 0 | | | | {w}x{h} | | | {sec * 1000:.1f} ms ({1 / sec:.0f}) | |")
    order = [r[0] for r in rows]
    lines += [
        "",
        "The x8 self-ensemble (`lightsr.enhance(..., self_ensemble=8)`, `lightsr upscale --self-ensemble 8`; Lim et "
        "al. 2017's EDSR+): every tile run eight times, flipped and transposed, each result turned back and the eight "
        "averaged. Scores in PyTorch fp32 as above; time on the same frame through the same backend, median of "
        f"{ENSEMBLE_RUNS} runs. For stills where a little more fidelity is worth the time; video and the app keep one "
        "pass.",
        "",
        "| checkpoint | Set5 PSNR / SSIM, x8 | Set14 PSNR / SSIM, x8 | gain over one pass, Set5 / Set14 | "
        "ms / frame, x8 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s, e, sec in sorted(ensembles, key=lambda r: order.index(r[0])):
        lines.append(f"| {name} | {e['Set5'].psnr:.2f} / {e['Set5'].ssim:.4f} | {e['Set14'].psnr:.2f} / "
                     f"{e['Set14'].ssim:.4f} | {e['Set5'].psnr - s['Set5'].psnr:+.2f} / "
                     f"{e['Set14'].psnr - s['Set14'].psnr:+.2f} dB | {sec * 1000:.0f} ms |")
    lines += ["", "Reproduce: `python benchmarks/bench_sr.py`; the model cards are re-rendered from the same run."]
    write_section("sr", "\n".join(lines))
    write_results("sr", results)

if __name__ == "__main__":
    main()
