"""Average the weights of fine-tunes of one model (weight-space ensembling), as a new model folder.

    python train/average_weights.py runs/flare-pix2pix-clean-gpu/best runs/flare-pix2pix-lampf-gpu-b/best \
        --out runs/flare-pix2pix-wise

One procedure: parse_args() then main(args). Every floating-point tensor of the result is
the weighted mean of the sources' tensors of that name (--weights, default equal; they sum
to 1); integer tensors (BatchNorm's batch counter) come from the last source. This is WiSE-FT
(Wortsman et al., CVPR 2022): a model and its fine-tune lie in one low-loss basin, so points
between them are models too, and interpolating trades what the fine-tune gained against what it
lost (here: less harm outside the flare against less flare removed on the optics set). It only
holds for sources fine-tuned from one another: the sources must have the same config.

Writes --out/best (config.json + model.safetensors, a Hub model folder, atomically) and
--out/merge.json (the sources, their weights and this command), from which the model card
says how the weights were made. Safetensors only, like every load in lightsr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightsr  # noqa: E402
from lightsr.cards import MERGE_RECORD  # noqa: E402
from lightsr.errors import LightSRError  # noqa: E402
from lightsr.imaging import write_atomically  # noqa: E402
from lightsr.training import atomic_replace_dir  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="model folders (same architecture and config), e.g. runs/X/best")
    p.add_argument("--weights", nargs="+", type=float, help="one per source, summing to 1 (default: equal)")
    p.add_argument("--out", type=Path, required=True, help="run folder: the result goes to OUT/best")
    return p.parse_args(argv)


def average(models: list[lightsr.LightSRModel], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of ``models``' state dicts (float tensors; others from the last model)."""
    states = [m.state_dict() for m in models]
    mean = {}
    for name, last in states[-1].items():
        if last.is_floating_point():
            mean[name] = sum(w * s[name].double() for w, s in zip(weights, states)).to(last.dtype)
        else:
            mean[name] = last.clone()
    return mean


def main(args: argparse.Namespace) -> None:
    if len(args.sources) < 2:
        raise LightSRError("average_weights needs two or more model folders")
    weights = args.weights or [1 / len(args.sources)] * len(args.sources)
    if len(weights) != len(args.sources) or not all(0 <= w <= 1 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise LightSRError(f"--weights: one non-negative weight per source, summing to 1 (got {weights})")
    models = [lightsr.load(s) for s in args.sources]  # refuses anything that is not a complete model folder
    configs = [m.hub_config() for m in models]
    for source, config in zip(args.sources[1:], configs[1:]):
        if config != configs[0]:
            raise LightSRError(f"{source} is not the same model as {args.sources[0]} (configs differ), "
                               "so its weights cannot be averaged with it")
    result = models[0]
    result.load_state_dict(average(models, weights))
    atomic_replace_dir(args.out / "best", result.save_pretrained)
    record = {"script": "average_weights.py", "sources": args.sources, "weights": weights,
              "command": ["python", "train/average_weights.py", *args.sources,
                          *(["--weights", *map(str, args.weights)] if args.weights else []), "--out", str(args.out)]}
    write_atomically(args.out / MERGE_RECORD, lambda f: f.write(json.dumps(record, indent=1).encode() + b"\n"))
    print(f"{' + '.join(f'{w:g} x {s}' for w, s in zip(weights, args.sources))} -> {args.out / 'best'}")


if __name__ == "__main__":
    try:
        main(parse_args())
    except LightSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
