"""Ship a training run's best weights as a checkpoints/ folder (a Hub model repo layout).

    python train/publish.py runs/sr-quality-x2 rdn-light-x2
    python train/publish.py runs/sr-quality-x2 rdn-light-x2 --last-ema   # interim: EMA of RUN/last

Copies config.json, model.safetensors and the trainer's card (README.md, when the run
finished and rendered one) of RUN/best atomically into checkpoints/NAME; then run
benchmarks/bench_sr.py (or bench_flare.py) to measure it and refresh BENCHMARKS.md, then
benchmarks/render_cards.py to render its card with those numbers and an example image.

``--last-ema`` publishes the EMA weights of the resumable checkpoint RUN/last instead:
interim weights of a run that has not finished (the card, rendered by the benchmark,
says how far its schedule got).
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightsr  # noqa: E402
import lightsr.cards  # noqa: E402
from lightsr import zoo  # noqa: E402
from lightsr.training import atomic_replace_dir, checkpoint_ema  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("--last-ema", action="store_true", help="publish the EMA weights of RUN/last (interim)")
    args = p.parse_args()
    best = args.run / "best"
    if args.last_ema:
        model = checkpoint_ema(args.run / "last")
    else:
        model = lightsr.load(best)  # refuses anything that is not a complete, consistent model folder

    def fill(tmp: Path) -> None:
        if args.last_ema:
            model.save_pretrained(tmp)
            lightsr.cards.write_card(tmp, model)  # no numbers until the benchmark renders the measured card
            return
        for f in ("config.json", "model.safetensors"):
            shutil.copy2(best / f, tmp / f)
        if (best / "README.md").is_file():  # the card the trainer measured and rendered at the end of the run
            shutil.copy2(best / "README.md", tmp / "README.md")
        else:  # interim weights: a card without numbers until the benchmark renders the measured one
            lightsr.cards.write_card(tmp, model)

    target = zoo.CHECKPOINTS / args.name  # checkpoints/, or LIGHTSR_CHECKPOINTS
    atomic_replace_dir(target, fill)
    print(f"{args.run / 'last' if args.last_ema else best} -> {target}")


if __name__ == "__main__":
    try:
        main()
    except lightsr.LightSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
