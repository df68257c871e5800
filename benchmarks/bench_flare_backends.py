"""Flare removal on each inference backend: the flare validation PSNR per shipped model and backend.

    python benchmarks/bench_flare_backends.py [--threads 2] [--count 16]

For every shipped flare checkpoint, ``remove_flare`` (default method) with ``backend="torch"``
(the reference), ``"openvino"`` (fp32; bf16 too where the CPU reports it) and ``"auto"`` (the
default; its pick is named) on the first --count frames of each of bench_flare.py's four
validation sets (the benchmark's seed, held-out photos): the mean PSNR gain over the no-op per
set, and each backend's largest per-pixel difference from PyTorch's output over all frames.
Quality only; the speed of the flare models is bench_flare.py's table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _report import ROOT, machine, write_section
from bench_flare import SEED, held_out_photos, validation_sets

from lightsr import backends, zoo
from lightsr.data.flare import MEASURED_GENERATORS
from lightsr.evaluate import evaluate_flare
from lightsr.flare import remove_flare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--holdout", type=int, default=8)
    p.add_argument("--count", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sets = validation_sets(held_out_photos(args.holdout), args.count, SEED)
    noop = {g: evaluate_flare(v, [a for a, *_ in v]).psnr for g, v in sets.items()}
    rows = []
    labels = {"torch": "PyTorch (reference)", "fp32": "OpenVINO fp32", "bf16": "OpenVINO bf16"}
    runs = {"torch": ("torch", None), "fp32": ("openvino", None)}  # keys: backends.choice_of's names
    if backends.bf16_supported():
        runs["bf16"] = ("openvino", "bf16")
    for entry in zoo.available("flare-removal"):
        model = zoo.get_model(entry)
        outputs = {}
        for key, (backend, precision) in runs.items():
            outputs[key] = {g: [remove_flare(model, a, backend=backend, precision=precision) for a, *_ in v]
                            for g, v in sets.items()}
        # auto runs one of the above (the same compiled model): its row is that one's outputs, not a rerun
        picked = backends.choice_of(model, backends.runner(model, "auto"))
        if picked not in outputs:
            outputs[picked] = {g: [remove_flare(model, a, backend="auto") for a, *_ in v] for g, v in sets.items()}
        for key, label in [*((k, labels[k]) for k in runs), (picked, f"auto: {backends.LABELS[picked]}")]:
            gains = [evaluate_flare(sets[g], outputs[key][g]).psnr - noop[g] for g in sets]
            diff = max(int(np.abs(o.astype(int) - r.astype(int)).max())
                       for g in sets for o, r in zip(outputs[key][g], outputs["torch"][g]))
            rows.append(f"| {entry.name} | {label} | " + " | ".join(f"{x:+.2f}" for x in gains) + f" | {diff} |")
            print(rows[-1], flush=True)
    lines = [
        "## Flare removal per backend (`benchmarks/bench_flare_backends.py`)",
        "",
        f"`remove_flare` (default method) on the first {args.count} frames of each of bench_flare's four "
        "validation sets (its seed and held-out photos), per shipped flare model and backend: mean PSNR gain "
        "over the no-op per set (dB), and the largest per-pixel difference from PyTorch's output over all "
        "frames (0..255). bf16: OpenVINO at `precision=\"bf16\"`, which auto never takes for a flare model "
        "(it weighs lower precisions for super-resolution only; see the backends section). "
        "auto: what `backend=\"auto\"`, the default, runs the model with here. "
        f"Machine: {machine()}.",
        "",
        "| model | backend | " + " | ".join(MEASURED_GENERATORS) + " | max difference from PyTorch |",
        "| --- | --- | " + " | ".join("---" for _ in MEASURED_GENERATORS) + " | --- |",
        *rows,
        "",
        "Reproduce: `python -m lightsr.data.optics` (the PSF bank, once), then "
        "`python benchmarks/bench_flare_backends.py`.",
    ]
    write_section("flare_backends", "\n".join(lines))
    print(f"wrote the flare_backends section of {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
