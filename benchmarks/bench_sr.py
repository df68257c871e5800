"""Super-resolution quality and speed of the shipped checkpoints; refreshes their model cards.

    python benchmarks/bench_sr.py [--threads 2] [--frames 10]

For each super-resolution folder in checkpoints/: Set5/Set14 PSNR/SSIM (Y channel, the
standard protocol) against bicubic, parameters, GFLOPs per input megapixel, and model
speed on a 640x360 frame (fp32, channels_last, batch 1, median of --frames runs). The
card of each checkpoint is re-rendered with these numbers and its training record from
the run folder named in RUNS. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _report import ROOT, machine, write_section

import lightsr
from lightsr import zoo
from lightsr.cards import example_image, sr_card_context, write_card
from lightsr.evaluate import evaluate_sr

BENCH = ROOT.parent / "shared" / "data" / "sr-bench"
# checkpoint folder -> the training run that produced it (runs/<name>/args.json, last/training_state.json)
RUNS = {
    "rdn-light-x2": "runs/sr-quality-x2",
    "rdn-light-x4": "runs/sr-quality-x4",
    "ecbsr-x2": "runs/sr-fast-x2",
    "ecbsr-x4": "runs/sr-fast-x4",
}


@torch.inference_mode()
def frame_speed(model, runs: int) -> float:
    """Median seconds for one 640x360 frame through the model alone."""
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 360, 640).contiguous(memory_format=torch.channels_last)
    model(x)  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for entry in zoo.available("super-resolution"):
        folder = zoo.CHECKPOINTS / entry.name
        model = lightsr.load(folder)
        d = lightsr.describe(model)
        sec = frame_speed(model, args.frames)
        scores = {n: evaluate_sr(model, BENCH / n) for n in ("Set5", "Set14")}
        speed = f"{sec * 1000:.0f} ms per 640x360 frame ({1 / sec:.1f} frames/s, model only, {args.threads} threads)"
        run = ROOT / RUNS[entry.name] if entry.name in RUNS and (ROOT / RUNS[entry.name] / "args.json").exists() \
            else None
        example_image(model, lightsr.open_image(ROOT / "examples" / "street-sign.png")).save(folder / "example.png")
        examples = [{"path": "example.png", "caption": f"Left to right: bicubic x{model.scale}, this model, the "
                     "original (a region of examples/street-sign.png, drawn for lightsr, CC0), enlarged 2x."}]
        write_card(folder, model, **sr_card_context(model, bench_dir=BENCH, run_dir=run, speed=speed),
                   repo_id=f"lightsr/{entry.name}", examples=examples)
        rows.append((entry, d, sec, scores))
        print(entry.name, f"{1 / sec:.1f} fps", {n: round(s.psnr, 2) for n, s in scores.items()})
    lines = [
        "## Super-resolution: quality and speed (`benchmarks/bench_sr.py`)",
        "",
        "Set5/Set14 in the standard protocol (Y channel, `scale` pixels shaved, LR by Pillow bicubic); "
        "speed is the model alone on one 640x360 frame, fp32, channels_last. Machine: " + machine() + ".",
        "",
        "| checkpoint | params | GFLOPs/MP | Set5 PSNR / SSIM | Set14 PSNR / SSIM | bicubic Set5 / Set14 | "
        "640x360 frame |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e, d, sec, s in rows:
        lines.append(f"| {e.name} | {d['parameters']:,} | {d['gflops_per_megapixel']:.0f} | "
                     f"{s['Set5'].psnr:.2f} / {s['Set5'].ssim:.4f} | {s['Set14'].psnr:.2f} / {s['Set14'].ssim:.4f} | "
                     f"{s['Set5'].bicubic_psnr:.2f} / {s['Set14'].bicubic_psnr:.2f} | "
                     f"{sec * 1000:.0f} ms ({1 / sec:.1f} fps) |")
    if not rows:
        lines.append("| (no super-resolution checkpoint shipped yet) | | | | | | |")
    lines += ["", "Reproduce: `python benchmarks/bench_sr.py`; the model cards are re-rendered from the same run."]
    write_section("sr", "\n".join(lines))


if __name__ == "__main__":
    main()
