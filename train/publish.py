"""Ship a training run's best weights as a checkpoints/ folder (a Hub model repo layout).

    python train/publish.py runs/sr-quality-x2 rdn-light-x2

Copies config.json, model.safetensors and the trainer's card (README.md, when the run
finished and rendered one) of RUN/best atomically into checkpoints/NAME; then run
benchmarks/bench_sr.py (or the flare benchmark) to add speed and an example image to
the card and to refresh BENCHMARKS.md.
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightsr  # noqa: E402
import lightsr.cards  # noqa: E402
from lightsr.training import atomic_replace_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("name")
    args = p.parse_args()
    best = args.run / "best"
    model = lightsr.load(best)  # refuses anything that is not a complete, consistent model folder

    def fill(tmp: Path) -> None:
        for f in ("config.json", "model.safetensors"):
            shutil.copy2(best / f, tmp / f)
        if (best / "README.md").is_file():  # the card the trainer measured and rendered at the end of the run
            shutil.copy2(best / "README.md", tmp / "README.md")
        else:  # interim weights: a card without numbers until the benchmark renders the measured one
            lightsr.cards.write_card(tmp, model)

    atomic_replace_dir(ROOT / "checkpoints" / args.name, fill)
    print(f"{best} -> checkpoints/{args.name}")


if __name__ == "__main__":
    try:
        main()
    except lightsr.LightSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
