"""Flare removal at a lower strength: what taking out only part of the flare found gives up and gives back.

    python benchmarks/bench_flare_strength.py [--threads 2] [--count 16]

The default flare removal (``lightsr.zoo.default_names``: an ensemble, the lowres method) at each
of STRENGTHS (``remove_flare(..., strength=)``, the app's slider: that share of the flare layer the
models find, in linear light, taken out; the lamps kept at any strength) on bench_flare.py's four
validation sets (its seed, the held-out photos, the first --count frames of each) and on its
flare-free photos: gain / background PSNR / worst gain per set, and the flare-free photos' mean /
worst PSNR to the input. Strength 1 is the default, so its row repeats bench_flare.py's.
"""

from __future__ import annotations

import argparse

import torch
from _report import machine, write_section
from bench_flare import SEED, flare_free, flare_free_photos, held_out_photos, validation_sets

from lightsr import zoo
from lightsr.evaluate import evaluate_flare
from lightsr.flare import remove_flare

STRENGTHS = (1.0, 0.75, 0.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--holdout", type=int, default=8)
    p.add_argument("--count", type=int, default=16,
                   help="frames per set, the first of bench_flare.py's 48 (three strengths of the default ensemble "
                        "over 48 took over an hour here)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    held = held_out_photos(args.holdout)
    sets = validation_sets(held, args.count, SEED)
    photos, _names = flare_free_photos(held, args.holdout)
    noop = {g: evaluate_flare(v, [a for a, *_ in v]).psnr for g, v in sets.items()}
    names = zoo.default_names("flare-removal")
    model, *more = [zoo.resolve(name) for name in names]
    rows = []
    for strength in STRENGTHS:
        cells = []
        for g, v in sets.items():
            s = evaluate_flare(v, [remove_flare(model, a, ensemble=more, strength=strength) for a, *_ in v])
            cells.append(f"{s.psnr - noop[g]:+.2f} / {s.background_psnr:.2f} / {s.worst_gain:+.2f}")
        mean, worst, _at = flare_free(model, photos, ensemble=more, strength=strength)
        rows.append(f"| {strength:g}{' (default)' if strength == 1 else ''} | " + " | ".join(cells)
                    + f" | {mean:.2f} / {worst:.2f} |")
        print(rows[-1], flush=True)
    lines = [
        "## Flare removal at a lower strength (`benchmarks/bench_flare_strength.py`)",
        "",
        f"The default ({' + '.join(names)}, lowres) taking out only part of the flare it finds "
        "(`remove_flare(..., strength=)`, `lightsr deflare --strength`, the app's slider: that share of the flare "
        "layer, in linear light; the lamps kept at any strength), on the first "
        f"{args.count} frames of each of bench_flare.py's four sets (its seed and held-out photos) and its "
        f"{len(photos)} flare-free photos. Per set: gain over the no-op / background PSNR / worst image's gain, dB; "
        "flare-free: mean / worst PSNR of the output to the input (a photo returned exactly counts as 99). The "
        "models take some light where there is no flare (sunlit highlights, bright flowers): a lower strength "
        "gives those photos back nearer to how they were, at the cost of flare left in the rest (a clipped glare "
        "disc is filled only part of the way). Machine: " + machine() + ".",
        "",
        "| strength | " + " | ".join(sets) + " | flare-free |",
        "| --- |" + " --- |" * (len(sets) + 1),
        *rows,
        "",
        "Reproduce: `python -m lightsr.data.optics` (the PSF bank, once), then "
        "`python benchmarks/bench_flare_strength.py`.",
    ]
    write_section("flare_strength", "\n".join(lines))


if __name__ == "__main__":
    main()
