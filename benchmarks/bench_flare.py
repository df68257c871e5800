"""Flare removal: quality on four synthetic validation sets, harm outside the flare, time per 12 MP photo.

    python benchmarks/bench_flare.py [--threads 2]
    python benchmarks/bench_flare.py --screen runs/A/best runs/B/best checkpoints/pix2pix-flare+runs/B/best \
        --seed 7 --count 16

Four validation sets of whole frames (512 px on the long side) from the last 8 sr-train
photos, which the flare trainer never sees: flare from the optics generator
(lightsr.data.optics: wave-optics PSFs of dirty, scratched apertures, ghosts, lamps 30 to
5,000 times the sensor's white), from the hand-drawn generator (lightsr.data.flare), from
the streak generator (lightsr.data.streaks: Moffat glow, long thin streaks through the
lamps, iris ghosts with lateral colour), which a run trains on only with --streaks-prob, and
from the shimmer generator (lightsr.data.shimmer: three-Gaussian bloom, hair-thin rays, ring
ghosts), which no trainer uses, so how a model does on flare drawn some other way shows.
Their seed differs from the trainer's validation seed, so the weights were not selected on
these pairs.

Per model and inference method of ``lightsr.flare.remove_flare`` ("lowres", the default:
the whole frame at 512 px; "tiled": full-resolution tiles): PSNR/SSIM, glare-, streak- and
background-region PSNR (``lightsr.evaluate.evaluate_flare``), the worst image's gain, a
checkerboard/block measure, how far it moves photos without flare (the held-out photos and
data/debian-photos, which no flare model trains on; PSNR of the output against the input),
and seconds and peak memory for one 4000x3000 photo (with a lamp drawn in: a photo without a
light source is returned at once). The default also on frames and flare-free photos at the
held-out photos' own 1024 px (LARGE), where the model still works at 512 px. Writes its
BENCHMARKS.md section and the numbers the cards print (benchmarks/results/flare.json);
``python benchmarks/render_cards.py`` renders the cards from them.

``--screen DIR ...`` compares candidate model folders (a training run's best/, a shipped
checkpoint) with the default method on a draw of their own (``--seed``, not the
benchmark's, so choosing among candidates does not tune to the published numbers), and
on the photos without flare (how far the output moves from the input:
where there is no flare, nothing should change), prints a table and writes nothing;
``--long-side 1024`` screens on frames and photos at that size.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from _report import ROOT, machine, training_runs, write_results, write_section

from lightsr import backends, zoo
from lightsr.models.base import LightSRModel
from lightsr.data.flare import MEASURED_GENERATORS, PairFolder, real_frames, validation_frames
from lightsr.data.optics import psf_bank
from lightsr.evaluate import LAMP_MARGIN, evaluate_flare
from lightsr.imaging import image_files
from lightsr.flare import METHODS, remove_flare
from lightsr.imaging import fit_long_side, open_image
from lightsr.metrics import psnr
from lightsr.cards import trained_on_streaks
from lightsr.training import cpu_name

DATA = ROOT / "data" / "sr-train"
FREE = ROOT / "data" / "debian-photos"  # photos no flare model trains on: with the held-out ones, the flare-free set
SEED = 2026  # not the trainer's validation seed (1234): no weights were selected on these pairs
SHOWN = (0, 5)  # validation frames shown before/after in docs/flare-before-after.png
LARGE = (1024, 16)  # the default method also on frames at the held-out photos' own size (px), this many per set
# checkpoint folder -> the training runs that produced it, in order (a later run fine-tunes the one before; a last
# folder with merge.json averages earlier stages' weights, train/average_weights.py)
RUNS = {"nf-resunet-flare": ("runs/flare-nf", "runs/flare-nf-bilinear", "runs/flare-nf-optics", "runs/flare-nf-gpu",
                             "runs/flare-nf-lamp", "runs/flare-nf-bg", "runs/flare-nf-lampf-gpu-b",
                             "runs/flare-nf-wise", "runs/flare-nf-mix", "runs/flare-nf-drawn2"),
        "pix2pix-flare": ("runs/flare-pix2pix", "runs/flare-pix2pix-optics", "runs/flare-pix2pix-gpu",
                          "runs/flare-pix2pix-lamp", "runs/flare-pix2pix-clean", "runs/flare-pix2pix-clean-gpu")}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
from PIL import Image
from lightsr import zoo
from lightsr.backends import choice_of, runner
from lightsr.flare import remove_flare
torch.set_num_threads({threads})
models = [zoo.resolve(name) for name in {names!r}]  # a model, or an ensemble's members
nets = [runner(m, None) for m in models]  # start-up: compiled and chosen once
backend = choice_of(models[0], nets[0])
photo = np.asarray(Image.open({photo!r}).convert("RGB").resize((4000, 3000))).copy()
photo[1480:1520, 1980:2020] = 255  # a lamp: a photo without one is returned at once, unprocessed
t = time.perf_counter()
remove_flare(models[0], photo, method={method!r}, ensemble=models[1:])
sec = time.perf_counter() - t
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
print(json.dumps(dict(seconds=sec, peak_mb=peak, backend=backend)))
"""


def grid_ratio(pairs, outs, period: int) -> float:
    """Blockiness of the correction (output minus input): its mean gradient across the lines of a
    ``period``-pixel grid over its mean gradient elsewhere; 1.00 means no grid. Period 16: the
    blocks a nearest-upsampling decoder from a 1/16 level leaves; period 2: the checkerboard of
    stride-2 transposed convolutions."""
    on, off = [], []
    for (a, *_), o in zip(pairs, outs):
        r = o.astype(np.float32).mean(2) - a.astype(np.float32).mean(2)
        for d in (np.abs(np.diff(r, axis=1)), np.abs(np.diff(r, axis=0)).T):
            edge = np.arange(d.shape[1]) % period == period - 1
            on.append(d[:, edge].mean())
            off.append(d[:, ~edge].mean())
    return float(np.mean(on) / np.mean(off))


def held_out_photos(holdout: int) -> list[np.ndarray]:
    """The last ``holdout`` sr-train photos, which the flare trainer never sees, as RGB arrays."""
    return [np.asarray(open_image(f).convert("RGB")) for f in image_files(DATA)[-holdout:]]


def validation_sets(held: list[np.ndarray], count: int, seed: int, long_side: int = 512) -> dict[str, list]:
    """``count`` whole frames (``long_side`` px) per measured generator, drawn from ``held`` by ``seed``."""
    bank = psf_bank()
    return {g: validation_frames(held, g, count=count, long_side=long_side, seed=seed, bank=bank)
            for g in MEASURED_GENERATORS}


def flare_free_photos(held: list[np.ndarray], holdout: int, long_side: int = 512) -> tuple[list[np.ndarray], list[str]]:
    """The photos no flare model trains on, as they are: the held-out ones and the Debian set (daylight close-ups,
    bright skies), at ``long_side`` px, and their file names."""
    debian = image_files(FREE)
    photos = [fit_long_side(im, long_side) for im in held]
    photos += [fit_long_side(np.asarray(open_image(f).convert("RGB")), long_side) for f in debian]
    return photos, [f.name for f in image_files(DATA)[-holdout:] + debian]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--holdout", type=int, default=8)
    p.add_argument("--count", type=int, default=48,
                   help="pairs per validation set (at 24 the pooled background PSNR swung by 5 dB between draws)")
    p.add_argument("--pairs", metavar="DIR", help="also measure on real pairs: DIR/input/NAME and DIR/target/NAME "
                                                  "(e.g. Flare7K++'s real test set); they are not shipped here")
    p.add_argument("--screen", nargs="+", metavar="MODEL_DIR",
                   help="compare these model folders (A+B: the two as an ensemble) on a draw of --seed and print "
                        "the table; writes nothing")
    p.add_argument("--seed", type=int, default=SEED, help="with --screen: the draw (the benchmark's is %(default)s)")
    p.add_argument("--long-side", type=int, default=512,
                   help="with --screen: the frames' and flare-free photos' long side in px (the benchmark's main "
                        "table: %(default)s; the held-out photos are 1024)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    held = held_out_photos(args.holdout)
    seed = args.seed if args.screen else SEED
    side = args.long_side if args.screen else 512
    sets = validation_sets(held, args.count, seed, side)
    photos, names = flare_free_photos(held, args.holdout, side)  # as they are, no flare to remove
    if args.screen:
        return screen(args.screen, sets, seed, photos, names)
    if args.pairs:
        sets["real"] = real_frames(PairFolder(args.pairs), long_side=512)
    noop = {g: evaluate_flare(v, [a for a, *_ in v]) for g, v in sets.items()}
    rows, shown, results = [], {}, {}
    # each shipped model with both methods, and each ensemble of them (lowres only)
    candidates = [(e, (e.name,), [zoo.get_model(e)], METHODS) for e in zoo.available("flare-removal")]
    candidates += [(zoo.Entry("+".join(x.names), x.task, x.label), x.names, zoo.get_models(x), ("lowres",))
                   for x in zoo.available_ensembles("flare-removal")]
    # the default on larger frames: the same generators on the held-out photos at their own size, where the model
    # still sees the frame at 512 px and the flare it finds is subtracted at full resolution
    wanted = zoo.default_names("flare-removal")
    default = next(((e, models) for e, names, models, _m in candidates if list(names) == wanted), None)
    large = {}
    if default:
        (model, *more), (large_side, large_count) = default[1], LARGE
        big = validation_sets(held, large_count, SEED, large_side)
        for g, v in big.items():
            large[g] = (evaluate_flare(v, [a for a, *_ in v]),
                        evaluate_flare(v, [remove_flare(model, a, ensemble=more) for a, *_ in v]))
        large_free = flare_free(model, flare_free_photos(held, args.holdout, large_side)[0], ensemble=more)
        print("large", {g: round(b.psnr - a.psnr, 2) for g, (a, b) in large.items()}, large_free, flush=True)

    for entry, names, (model, *more), methods in candidates:
        scores, grids, free = {}, {}, {}
        for method in methods:
            free[method] = flare_free(model, photos, method, ensemble=more)
            for g, v in sets.items():
                outs = [remove_flare(model, a, method=method, ensemble=more) for a, *_ in v]
                scores[method, g] = evaluate_flare(v, outs)
                grids[method, g] = (grid_ratio(v, outs, 16), grid_ratio(v, outs, 2))
                if method == "lowres":
                    shown.setdefault(entry.label, {})[g] = [outs[i % len(outs)] for i in SHOWN]
        speed = {}
        for method in methods:
            code = CHILD.format(root=str(ROOT), threads=args.threads, names=list(names), method=method,
                                photo=str(image_files(DATA)[0]))
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            speed[method] = json.loads(res.stdout.strip().splitlines()[-1])
        tiled = f", {speed['tiled']['seconds']:.0f} s tiled at full resolution" if "tiled" in speed else ""
        text = (f"{speed['lowres']['seconds']:.1f} s per 12 MP photo with the default whole-frame method{tiled} "
                f"({cpu_name()}, {args.threads} threads, "
                f"{backends.LABELS[speed['lowres']['backend']]} as backend='auto' picked)")
        results[entry.name] = {"scores": {g: asdict(scores["lowres", g]) for g in MEASURED_GENERATORS},
                               "noop": {g: asdict(noop[g]) for g in MEASURED_GENERATORS}, "speed": text,
                               "flare_free": {**dict(zip(("mean", "worst"), free["lowres"])),
                                              "photos": len(photos)}}
        params = sum(x.numel() for m in (model, *more) for x in m.parameters())
        rows.append((entry, params, scores, grids, speed, free))
        print(entry.name, {k: (round(v.psnr, 2), round(v.background_psnr, 2), round(v.worst_gain, 2))
                           for k, v in scores.items()}, speed)

    def cells(s, base):
        return (f"{s.psnr:.2f} / {s.ssim:.4f} | **{s.psnr - base.psnr:+.2f}** | {s.glare_psnr:.2f} | "
                f"{s.streak_psnr:.2f} | {s.background_psnr:.2f} | {s.worst_gain:+.2f} | {s.lamps_kept:.0%}")

    lines = [
        "## Flare removal (`benchmarks/bench_flare.py`)",
        "",
        f"Four sets of {args.count} whole frames (512 px on the long side) from the last {args.holdout} sr-train "
        "photos, which the flare trainer never sees, seeded apart from its validation set: flare from the **optics** "
        "generator (`lightsr.data.optics`) and the **hand-drawn** one (`lightsr.data.flare`), which every model "
        "trains on; from the **streaks** generator (`lightsr.data.streaks`: Moffat glow, long thin streaks "
        "through the lamps, iris ghosts with lateral colour), which a model trains on only where its card says so "
        f"({streak_note(rows)}); and from the **shimmer** generator (`lightsr.data.shimmer`: three-Gaussian bloom, "
        "hair-thin rays of many lengths and hues, hollow ring ghosts, an S-shaped tone curve), which no trainer "
        "uses. RGB PSNR / SSIM "
        "of the whole image (mean over images) and its gain over returning the input; G: glare region (noise-free "
        "flare layer >= 64/255), S: streaks, ghosts and haze (4/255 to 64/255), BG: background (flare layer "
        f"under 1/255, not saturated in the target and not within {LAMP_MARGIN} px of a pixel that is, the "
        "lamp's soft edge: any change there is harm; since 2026-12-06, before which that edge counted and was most "
        "of the optics "
        "set's background error), each PSNR pooled over the "
        "region's pixels in the set; worst: the lowest per-image gain; lamps: the share of lamp pixels (clipped in "
        "the target and in the input) the output keeps clipped, pooled (the lamp stays, its glare goes; since "
        "2026-12-07, before which a small lamp's rim that noise and JPEG had brought below the clip in the input "
        "counted too, so that returning the input kept 75% to 93%). Methods of `remove_flare`: "
        "**lowres** "
        "(the default; the whole frame at up to 512 px, the flare found there and the veil the models leave (read "
        "from the darkest pixels in bands of distance from the lamps, where the models saw flare over most of the "
        "frame) subtracted at full resolution, then the thin "
        "straight streaks through the lamps filled from beside them, the spikes of starbursts, the ghosts on "
        "the lamps' lines through the centre and the bloom round disc-shaped lamps taken out, `lightsr.rays`, "
        "`lightsr.ghosts` and `lightsr.glow`) and **tiled** "
        "(full-resolution tiles, no streak fill). Lamps are blended back in both. "
        "The streak fill was built looking at frames of the streaks set (the held-out set with such lines), so "
        "for it that set is no longer blind; the starburst step was built looking at hand-drawn frames (how far out "
        "a spike may start round a glaring lamp, and how faint its traced end, at all four sets; since 2026-12-07 "
        "the faint hair-thin spikes round a glaring lamp at shimmer frames), the ghost "
        "step at optics, streak and shimmer frames (its ring test at shimmer and streak frames), the bloom step at "
        "shimmer and streak frames and the flare-free photos, all chosen on "
        "screening draws of their own seeds (other frames than these); the veil step was chosen on screening "
        "draws (seeds 7 and 11) of all four generators, other frames than these, and its share of the frame (since "
        "2026-12-07) on the same draws and the flare-free photos; shimmer is otherwise unseen. "
        "Grid 16 / 2: the correction's mean gradient across a 16-px / 2-px grid over "
        "elsewhere (1.00: no blocks, no checkerboard), on the optics set. Speed: one 4000x3000 photo, fresh "
        "process (the backend compiled and chosen before the clock starts, as a server does once), peak RSS. "
        "Machine: " + machine() + "."
        + (f" **real**: {len(sets['real'])} real pairs from `{args.pairs}` at 512 px, their flare layer estimated "
           "as input minus target (noise and misalignment included, so G/S/BG are approximate)." if args.pairs else ""),
        "",
        "| model | method | set | PSNR / SSIM | gain | G-PSNR | S-PSNR | BG-PSNR | worst | lamps | grid 16 / 2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in sets:
        n = noop[g]
        lines.append(f"| no-op (input as is) | | {g} | {n.psnr:.2f} / {n.ssim:.4f} | | {n.glare_psnr:.2f} | "
                     f"{n.streak_psnr:.2f} | {n.background_psnr:.2f} | | {n.lamps_kept:.0%} | |")
    for e, _n, s, gr, _sp, _f in rows:
        for method in (m for m in METHODS if (m, "optics") in s):
            for g in sets:
                grid = f"{gr[method, 'optics'][0]:.2f} / {gr[method, 'optics'][1]:.2f}" if g == "optics" else ""
                lines.append(f"| {e.label} | {method} | {g} | {cells(s[method, g], noop[g])} | {grid} |")
    lines += ["", f"Flare-free: {len(photos)} photos no flare model trained on, as they are (512 px, no flare added): "
              f"the {args.holdout} held-out sr-train photos and the {len(photos) - args.holdout} of data/debian-photos "
              "(daylight close-ups, bright and backlit skies, lamps). PSNR of the "
              "output against the input, mean (a photo returned unchanged counts as 99) / worst, dB: where there is "
              "no flare, nothing should change, and clipped daylight (sky, highlights) must not be taken for glare.",
              "", "| model | lowres (default) | tiled |", "| --- | --- | --- |"]
    for e, _n, _s, _gr, _sp, f in rows:
        tiled = f"{f['tiled'][0]:.2f} / {f['tiled'][1]:.2f}" if "tiled" in f else "–"
        lines.append(f"| {e.label} | {f['lowres'][0]:.2f} / {f['lowres'][1]:.2f} | {tiled} |")
    if large:
        lines += ["", f"Larger frames: {large_count} frames per set drawn on the same held-out photos at their own "
                  f"size ({large_side} px on the long side; the same seed, so other frames than the 512 px sets), "
                  f"with the default ({default[0].label}, lowres: the model still sees the frame at 512 px, and the "
                  "flare it finds is subtracted at full resolution). The generators draw lamps, glow, streaks and "
                  "ghosts in proportion to the frame, except the optics generator's scattering PSF, which is drawn in "
                  "pixels, so on these frames its flare is half as large against the frame: a lens whose flare is "
                  "smaller in the photo, or a photo with more pixels. Flare-free: the same photos as above at this "
                  "size.", "",
                  "| set | PSNR / SSIM | gain | BG-PSNR | worst | lamps |", "| --- | --- | --- | --- | --- | --- |"]
        for g in MEASURED_GENERATORS:
            a, b = large[g]
            bg = f"{b.background_psnr:.2f}" if np.isfinite(b.background_psnr) else "–"  # no pixel is background
            lines.append(f"| {g} | {b.psnr:.2f} / {b.ssim:.4f} | **{b.psnr - a.psnr:+.2f}** | {bg} | "
                         f"{b.worst_gain:+.2f} | {b.lamps_kept:.0%} |")
        mean, worst, _at = large_free
        lines.append(f"| flare-free (mean / worst PSNR to the input) | {mean:.2f} / {worst:.2f} | | | | |")
    lines += ["", "| model | params | 12 MP lowres (default) | 12 MP tiled | backend (auto's pick) |",
              "| --- | --- | --- | --- | --- |"]
    for e, n, _s, _gr, sp, _f in rows:
        tiled = f"{sp['tiled']['seconds']:.0f} s, {sp['tiled']['peak_mb']:.0f} MB" if "tiled" in sp else "–"
        lines.append(f"| {e.label} | {n:,} | {sp['lowres']['seconds']:.1f} s, {sp['lowres']['peak_mb']:.0f} MB | "
                     f"{tiled} | {backends.LABELS[sp['lowres']['backend']]} |")
    if not rows:
        lines.append("| (no flare model shipped yet) | | | | |")
    lines += ["", "Before / after on validation frames (`docs/flare-before-after.png`): input, each model's output "
              "(default method), target; two frames from each set: optics, hand-drawn, streaks, then the held-out "
              "shimmer generator.", "",
              "![Flare removal before and after](docs/flare-before-after.png)",
              "", "Reproduce: `python -m lightsr.data.optics` (the PSF bank, once), then "
              "`python benchmarks/bench_flare.py`."]
    write_section("flare", "\n".join(lines))
    write_results("flare", results)
    if shown:
        before_after(sets, shown).save(ROOT / "docs" / "flare-before-after.png", optimize=True)


def streak_note(rows) -> str:
    """Which shipped models trained on the streak generator, in words (their recipes' run records)."""
    trained = {e.label: trained_on_streaks(training_runs(RUNS, e.name)) for e, *_ in rows if e.name in RUNS}
    parts = []
    for verdict, word in ((True, "trained on it"), (False, "never trained on it")):
        labels = [label for label, t in trained.items() if t == verdict]
        if labels:
            parts.append(f"{word}: {', '.join(labels)}")
    return "; ".join(parts) or "no model"


def flare_free(model, photos: list[np.ndarray], method: str = "lowres", ensemble=(),
               strength: float = 1.0) -> tuple[float, float, int]:
    """How far ``remove_flare`` (with ``ensemble``, at ``strength``) moves photos that have no flare: mean (inf
    capped at 99) and worst PSNR of the output against the input, in dB (where there is no flare, nothing should
    change), and the worst photo's index."""
    moved = [psnr(remove_flare(model, p, method=method, ensemble=ensemble, strength=strength), p, y_channel=False)
             for p in photos]
    return float(np.mean(np.minimum(moved, 99))), float(min(moved)), int(np.argmin(moved))


def screen(folders: list[str], sets: dict, seed: int, photos: list[np.ndarray], names: list[str]) -> None:
    """Print gain / background PSNR / worst gain of each model folder on each set (default method; "A+B"
    is the ensemble of folders A and B, as ``remove_flare(A, ensemble=[B])`` runs it),
    and how far it moves flare-free ``photos`` (as they are: mean / worst PSNR
    of the output against the input; inf where nothing changed; the worst photo named from ``names``),
    which no synthetic set measures."""
    noop = {g: evaluate_flare(v, [a for a, *_ in v]) for g, v in sets.items()}
    print(f"draw: seed {seed}, {len(next(iter(sets.values())))} frames per set; cells: gain / BG-PSNR / worst (dB) / "
          "lamp pixels kept clipped; "
          f"flare-free: {len(photos)} photos never trained on, PSNR of the output to the input, mean / worst (dB) "
          "(the worst photo)")
    print("| model | " + " | ".join(sets) + " | flare-free |")
    print("| --- |" + " --- |" * (len(sets) + 1))
    for folder in folders:
        model, *more = [LightSRModel.from_pretrained(f) for f in folder.split("+")]
        cells = []
        for g, v in sets.items():
            s = evaluate_flare(v, [remove_flare(model, a, ensemble=more) for a, *_ in v])
            cells.append(f"{s.psnr - noop[g].psnr:+.2f} / {s.background_psnr:.2f} / {s.worst_gain:+.2f} / "
                         f"{s.lamps_kept:.0%}")
        mean, worst, at = flare_free(model, photos, ensemble=more)
        cells.append(f"{mean:.2f} / {worst:.2f} ({names[at]})")
        print(f"| {folder} | " + " | ".join(cells) + " |", flush=True)


def before_after(sets, shown) -> Image.Image:
    """Rows of input | each model's output | target for the SHOWN frames of each set, labelled."""
    rows = []
    for g, v in sets.items():
        for k, i in enumerate(SHOWN):
            inp, target, _ = v[i % len(v)]
            tiles = [inp] + [shown[label][g][k] for label in shown] + [target]
            rows.append(np.concatenate([np.pad(t, ((0, 4), (0, 4), (0, 0)), constant_values=255) for t in tiles], 1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    header = Image.new("RGB", (grid.shape[1], 22), "white")
    draw = ImageDraw.Draw(header)
    step = sets["optics"][0][0].shape[1] + 4
    for j, text in enumerate(["input", *shown, "target"]):
        draw.text((j * step + 6, 4), text, fill=(0, 0, 0), font=ImageFont.load_default(size=14))
    out = Image.new("RGB", (grid.shape[1], grid.shape[0] + 22), "white")
    out.paste(header, (0, 0))
    out.paste(Image.fromarray(grid), (0, 22))
    return out.resize((out.width // 2, out.height // 2), Image.LANCZOS)


if __name__ == "__main__":
    main()
