"""Render every shipped checkpoint's model card from measurements already made; measures nothing.

    python benchmarks/render_cards.py [NAME ...]

A card (checkpoints/NAME/README.md, with its example images) is the model's own
description (architecture, parameters), the numbers the benchmarks wrote
(benchmarks/results/sr.json from bench_sr.py, flare.json from bench_flare.py) and the
records of the training runs that made it (each run's run.json, args.json and
last/training_state.json; the runs of each checkpoint, in order, are the benchmark's RUNS).
Run it after a benchmark or a publish; a checkpoint with no measurement yet is named and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# the example images come from the PyTorch reference, so they are the same pixels on every machine (auto may pick
# OpenVINO int8, whose output depends on the CPU and differs from fp32 by a few levels)
os.environ["LIGHTSR_BACKEND"] = "torch"

from _report import RESULTS, ROOT, training_runs
from bench_flare import RUNS as FLARE_RUNS
from bench_sr import BENCH
from bench_sr import RUNS as SR_RUNS

import lightsr
from lightsr import zoo
from lightsr.cards import example_image, flare_card_context, sr_card_context, write_card
from lightsr.evaluate import FlareScores, SRScores


def _results(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["models"] if path.is_file() else {}


def render_sr(name: str, measured: dict) -> None:
    folder = zoo.CHECKPOINTS / name
    model = lightsr.load(folder)
    scores = {k: SRScores(**v) for k, v in measured["scores"].items()}
    ensembled = {k: SRScores(**v) for k, v in measured.get("self_ensemble", {}).get("scores", {}).items()}
    example_image(model, lightsr.open_image(ROOT / "examples" / "street-sign.png")).save(folder / "example.png")
    examples = [{"path": "example.png", "caption": f"Left to right: bicubic x{model.scale}, this model, the "
                 "original (a region of examples/street-sign.png, drawn for lightsr, CC0), enlarged 2x."}]
    context = sr_card_context(model, bench_dir=BENCH, run_dir=training_runs(SR_RUNS, name), speed=measured["speed"],
                              scores=scores, ensembled=ensembled or None)
    write_card(folder, model, **context, repo_id=f"lightsr/{name}", examples=examples)


def render_flare(name: str, measured: dict) -> None:
    folder = zoo.CHECKPOINTS / name
    model = lightsr.load(folder)
    scores = {g: FlareScores(**v) for g, v in measured["scores"].items()}
    noop = {g: FlareScores(**v) for g, v in measured["noop"].items()}
    examples = []
    for image, caption in (("night-lamps.png", "flare from the optics generator"),
                           ("night-street.png", "flare from the hand-drawn generator")):
        example_image(model, lightsr.open_image(ROOT / "examples" / "flare" / image)).save(folder / f"example-{image}")
        examples.append({"path": f"example-{image}", "caption": f"Left: a made night scene with {caption} "
                         f"(examples/flare/{image}, CC0); right: this model's output, lamps kept."})
    context = flare_card_context(model, scores, noop, run_dir=training_runs(FLARE_RUNS, name), speed=measured["speed"],
                                 flare_free=measured.get("flare_free"))
    write_card(folder, model, **context, repo_id=f"lightsr/{name}", examples=examples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="checkpoints to render (default: every shipped one)")
    args = p.parse_args()
    measured = {"super-resolution": _results("sr"), "flare-removal": _results("flare")}
    render = {"super-resolution": render_sr, "flare-removal": render_flare}
    for entry in zoo.available():
        if args.names and entry.name not in args.names:
            continue
        m = measured.get(entry.task, {}).get(entry.name)
        if m is None:
            print(f"{entry.name}: no measurement in benchmarks/results/ yet; run its benchmark first", file=sys.stderr)
            continue
        render[entry.task](entry.name, m)
        print(f"rendered checkpoints/{entry.name}/README.md")


if __name__ == "__main__":
    main()
