"""Training speed on this CPU: seconds per step of the two trainers, fp32 against --amp (bf16 autocast).

    python benchmarks/bench_training.py [--threads 2] [--steps 24]

Runs train/train_flare.py and train/train_sr.py themselves (synthesis, losses, AGC, EMA and
the optimizer included) for ``--steps`` steps of each recipe below, once in fp32 and once with
``--amp``, into a temporary folder, and times the steps after the first ``WARM`` from the
trainers' own curve (log.csv's elapsed_s). The last step's loss is printed beside the
times: bf16 moves it by rounding only. Writes the "training" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import torch
from _report import ROOT, machine, write_section

sys.path.insert(0, str(ROOT / "train"))
import train_flare  # noqa: E402
import train_sr  # noqa: E402

WARM = 4  # steps left out of the timing: oneDNN picks its kernels on the first ones
# (log.csv's times are whole seconds, so the default of 24 steps times 20)
# (trainer, model, arguments): the recipes the shipped models were trained with, at their batch sizes
RECIPES = [
    (train_flare, "nf-resunet", ["--frame", "384", "--batch", "8", "--echo", "2", "--optics-prob", "0.5",
                                 "--flare-weight", "1", "--background-weight", "100"]),
    (train_flare, "pix2pix-light", ["--frame", "384", "--batch", "8", "--echo", "2", "--optics-prob", "0.5",
                                    "--flare-weight", "1"]),
    (train_sr, "span-s", ["--scale", "2", "--batch", "16", "--lr-patch", "64"]),
    (train_sr, "rdn-light", ["--scale", "2", "--batch", "16", "--lr-patch", "48"]),
    (train_sr, "ecbsr-m4c16", ["--scale", "2", "--batch", "16", "--lr-patch", "64"]),
]


def seconds_per_step(trainer, model: str, extra: list[str], steps: int, threads: int, amp: bool,
                     out: Path) -> tuple[float, float]:
    """(seconds per step after WARM, the loss of the last step) of one short run."""
    trainer.main(trainer.parse_args([
        "--model", model, *extra, "--steps", "100000", "--stop-at", str(steps), "--log-every", "1",
        "--val-every", "100000", "--warmup", "0", "--threads", str(threads), "--out", str(out),
        *(["--amp"] if amp else [])]))
    with open(out / "log.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["loss"]]
    t = {int(r["step"]): float(r["elapsed_s"]) for r in rows}
    return (t[steps] - t[WARM]) / (steps - WARM), float(rows[-1]["loss"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=24)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    native = "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trainer, model, extra in RECIPES:
            cells = {}
            for amp in (False, True):
                out = Path(tmp) / f"{model}-{'amp' if amp else 'fp32'}"
                cells[amp] = seconds_per_step(trainer, model, extra, args.steps, args.threads, amp, out)
            batch = extra[extra.index("--batch") + 1]
            size = (f"{extra[extra.index('--frame') + 1]} px frames" if "--frame" in extra
                    else f"{extra[extra.index('--lr-patch') + 1]} px LR patches")
            rows.append(f"| {trainer.__name__}.py | {model} | {batch} x {size} | {cells[False][0]:.2f} s | "
                        f"{cells[True][0]:.2f} s | **{cells[False][0] / cells[True][0]:.1f}x** | "
                        f"{cells[False][1]:.4f} / {cells[True][1]:.4f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "## Training speed: fp32 against `--amp` (`benchmarks/bench_training.py`)",
        "",
        f"Seconds per step of the trainers themselves (batch synthesis, losses, AGC, EMA and the optimizer "
        f"included), steps {WARM + 1} to {args.steps} of a fresh run, {args.threads} threads, in fp32 (channels_last) "
        f"and with `--amp` (bf16 autocast of the forward passes; weights, losses and optimizer state fp32). "
        f"Last loss: step {args.steps}'s training loss in each (same seed, same batches), which bf16 moves by "
        f"rounding only. This CPU {'has' if native else 'lacks'} AMX (amx_bf16); on a CPU without it, time "
        f"`--amp` before using it (not measured here). Machine: {machine()}.",
        "",
        "| trainer | model | batch | fp32 | --amp | speed-up | last loss fp32 / --amp |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Reproduce: `python benchmarks/bench_training.py`.",
    ])
    write_section("training", text)


if __name__ == "__main__":
    main()
