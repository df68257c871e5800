"""The seed's question: sub-pixel convolution or a transposed-conv upsampler ("RDTN")?

    python benchmarks/bench_upsampler.py [--steps 1500] [--train-only] [--retrain]

Trains the same RDN body (G0=32, G=16, D=4 blocks of C=4 convs, 169K parameters: the
size the SR issue measured) twice at x2 with train/train_sr.py, identical in everything
but ``upsampler`` (same seed, data order, steps, schedule and patches), then measures
both on Set5/Set14 and times a 640x360 frame. Runs go to runs/upsampler-<kind>/ and are
reused when complete (``--retrain`` starts them over), so the slow training can be done
in the background with ``--train-only`` and the timing later on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from _report import ROOT, machine, write_section
from bench_sr import BENCH, frame_speed

import lightsr
from lightsr.evaluate import evaluate_sr

sys.path.insert(0, str(ROOT / "train"))
import train_sr  # noqa: E402

BODY = ["features=32", "growth=16", "num_blocks=4", "num_layers=4", "image_residual=true"]
KINDS = ("subpixel", "transpose")


def train(kind: str, steps: int, threads: int, retrain: bool) -> None:
    out = ROOT / "runs" / f"upsampler-{kind}"
    state = out / "last" / "training_state.json"
    if not retrain and state.exists():
        planned = json.loads((out / "args.json").read_text())["steps"]
        done = json.loads(state.read_text())["step"]
        if planned != steps:  # never stretch a finished cosine schedule into a different budget
            raise SystemExit(f"error: {out.name} was run with a {planned}-step schedule; pass --steps {planned} "
                             "to measure it, or --retrain to train both again")
        if done >= steps:
            print(f"{out.name}: complete, reused")
            return
    resume = not retrain and state.exists()
    train_sr.main(train_sr.parse_args([
        "--model", "rdn", "--set", *BODY, f"upsampler={kind}", "--scale", "2", "--steps", str(steps),
        "--lr", "5e-4", "--val-every", "500", "--threads", str(threads), "--out", str(out),
        *(["--resume"] if resume else [])]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    for kind in KINDS:
        train(kind, args.steps, args.threads, args.retrain)
    if args.train_only:
        return
    torch.set_num_threads(args.threads)
    rows = []
    for kind in KINDS:
        run = ROOT / "runs" / f"upsampler-{kind}"
        model = lightsr.load(run / "best")
        scores = {n: evaluate_sr(model, BENCH / n) for n in ("Set5", "Set14")}
        d = lightsr.describe(model)
        rows.append((kind, d, scores, frame_speed(model, args.frames)))
        print(kind, {n: round(s.psnr, 2) for n, s in scores.items()})
    lines = [
        "## Sub-pixel against transposed-conv upsampler (`benchmarks/bench_upsampler.py`)",
        "",
        f"The seed's \"RDTN\" question. One RDN body (G0=32, G=16, D=4, C=4) trained twice at x2 by "
        f"`train/train_sr.py` with everything equal but the upsampler: {args.steps} steps of 16 LR patches "
        "of 32 px from sr-train, L1, Adam 5e-4 with cosine decay, EMA 0.999, seed 0. Sub-pixel: conv to "
        "4x the channels, then PixelShuffle (ICNR init). Transposed: one ConvTranspose2d initialised as a "
        "bilinear upsampler. Best-on-Set5 EMA weights; Set5/Set14 x2 in the standard protocol (Y "
        f"channel); speed is the model alone on a 640x360 frame. Machine: {machine()}.",
        "",
        "| upsampler | params | GFLOPs/MP | Set5 PSNR / SSIM | Set14 PSNR / SSIM | 640x360 frame |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, d, s, sec in rows:
        lines.append(f"| {kind} | {d['parameters']:,} | {d['gflops_per_megapixel']:.0f} | "
                     f"{s['Set5'].psnr:.2f} / {s['Set5'].ssim:.4f} | {s['Set14'].psnr:.2f} / {s['Set14'].ssim:.4f} | "
                     f"{sec * 1000:.0f} ms |")
    (_, _, a, _), (_, _, b, _) = rows
    lines += ["", f"Transposed minus sub-pixel: Set5 {b['Set5'].psnr - a['Set5'].psnr:+.2f} dB, "
              f"Set14 {b['Set14'].psnr - a['Set14'].psnr:+.2f} dB.",
              "", f"Reproduce: `python benchmarks/bench_upsampler.py --steps {args.steps}` "
              "(add `--retrain` to train both again)."]
    write_section("upsampler", "\n".join(lines))


if __name__ == "__main__":
    main()
