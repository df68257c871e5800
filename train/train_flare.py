"""Train a lens-flare removal model (Pix2Pix or NF-ResUNet) on synthetic flare, resumably.

    python -m lightsr.data.optics          # once: the PSF bank (cached outside git)
    python train/train_flare.py --model nf-resunet --out runs/flare-nf --steps 5000 --lr 5e-4
    python train/train_flare.py --model pix2pix-light --out runs/flare-pix2pix --steps 20000
    python train/train_flare.py --out runs/flare-nf --resume

One procedure: parse_args() then main(args). Every step gets fresh synthetic flare on
whole frames (--frame px square, most of a photo, so a streak is seen whole): from the
optics generator (lightsr.data.optics, wave-optics PSFs and ghosts) with probability
--optics-prob, else from the hand-drawn one (lightsr.data.flare). --frame 0 trains on
--patch crops instead. The last --holdout photos are never trained on and give two fixed,
seeded validation sets, one per generator; the score that selects the best weights is
their mean PSNR. --pairs DIR mixes real pairs (DIR/input, DIR/target) into training at
--pairs-prob; benchmarks/bench_flare.py --pairs measures on real pairs.

Loss: L1 on the image plus --flare-weight x L1 on the flare layer in linear light (what
the model predicts with output="flare", as Flare7K++ does), plus --lamp-weight x L1 over
the lamps alone (target pixels at the sensor's white: a few hundred of a frame's pixels,
which a whole-image mean would let the model grey out), plus --background-weight x the squared
error over the background alone (what bench_flare's background PSNR measures). Pix2Pix adds the GAN loss of
a 70x70 PatchGAN to lambda times that (Isola et al., Adam 2e-4, beta1 0.5). NF-ResUNet
uses Adaptive Gradient Clipping on every step. Both: the NaN guard, atomic pickle-free
checkpoints, --resume, --stop-at, CUDA/DDP like train_sr.py (see lightsr/training.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightsr  # noqa: E402
from lightsr.hub import push_folder, read_config  # noqa: E402
from lightsr.cards import flare_card_context, write_card  # noqa: E402
from lightsr.data.flare import (  # noqa: E402
    GENERATORS, FlareConfig, FlarePairs, FrameFlarePairs, PairFolder, exposure_gain, overexpose, validation_frames)
from lightsr.evaluate import GLARE_LEVEL, STREAK_LEVEL, evaluate_flare  # noqa: E402
from lightsr.flare import SATURATED, remove_flare  # noqa: E402
from lightsr.data.optics import OpticsConfig, psf_bank  # noqa: E402
from lightsr.models._common import to_linear  # noqa: E402
from lightsr.imaging import fit_long_side, image_files, to_unit_range  # noqa: E402
from lightsr.metrics import psnr, ssim  # noqa: E402
from lightsr.models.nf_resunet import adaptive_gradient_clip  # noqa: E402
from lightsr.models.pix2pix import PatchDiscriminator  # noqa: E402
from lightsr.training import (  # noqa: E402
    AMP_HELP, all_finite, autocast, batches, Bookkeeping, check_training_folders, command_line, cpu_layout, CSVLog,
    keep_if_best, initial_weights, learning_rate, make_ema, NaNGuard, parse_overrides, planned_steps, resume_or_start,
    save_last, split_holdout, start_run, write_run_record,
)

log = logging.getLogger("train_flare")
SMALL_BATCH = 8  # a fine-tune of a BatchNorm model below this batch is warned to use --freeze-bn (see its help)
DATA = ROOT / "data"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", default=[str(DATA / "sr-train")], help="folders of clean photos")
    g.add_argument("--holdout", type=int, default=8, help="last N photos (sorted) kept for validation only")
    g.add_argument("--val-count", type=int, default=12, help="validation frames per generator (seeded, fixed)")
    g.add_argument("--val-size", type=int, default=512, help="validation frames: long side in px")
    g.add_argument("--frame", type=int, default=384, help="whole-frame training size; 0: --patch crops")
    g.add_argument("--optics-prob", type=float, default=0.7,
                   help="share of training pairs from the optics generator (the rest hand-drawn)")
    g.add_argument("--streaks-prob", type=float, default=0.0,
                   help="share of flare pairs from the streak generator (lightsr.data.streaks: Moffat glow, long "
                        "thin streaks, iris ghosts); the rest split by --optics-prob. Above 0 it also gets a "
                        "validation set of its own in the score that picks the best weights")
    g.add_argument("--clean-prob", type=float, default=0.0,
                   help="share of synthetic training frames left without flare (target = input), so the model "
                        "learns to leave flare-free photos, clipped daylight included, alone")
    g.add_argument("--clean-gain", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="with --clean-prob: over-expose each flare-free sample by a gain drawn log-uniformly "
                        "from LO to HI (linear light, clipped at white), so the model also learns to leave "
                        "blown skies and highlights alone; the held-out photos join the selection so exposed too")
    g.add_argument("--line-prob", type=float, default=0.0,
                   help="hand-drawn generator: share of sources that also get a long thin streak through them")
    g.add_argument("--glow-gain", type=float, nargs=2, default=list(FlareConfig.glow_gain), metavar=("LO", "HI"),
                   help="hand-drawn generator: the glow's peak over the sensor's white (above about 1 it clips)")
    g.add_argument("--tail-prob", type=float, default=0.0,
                   help="hand-drawn generator: share of glows with a power-law tail that reaches across the frame")
    g.add_argument("--rim-prob", type=float, default=0.0,
                   help="hand-drawn generator: share of sources whose ghosts have a bright rim and lateral colour")
    g.add_argument("--exposure", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="both generators: the scene's brightness scale before flare is added (default: each "
                        f"generator's own, optics {OpticsConfig.exposure[0]:g}-{OpticsConfig.exposure[1]:g}, "
                        f"hand-drawn {FlareConfig.exposure[0]:g}-{FlareConfig.exposure[1]:g}); up to 1 keeps "
                        "daylit scenes, clipped sky and texture included, under the flare")
    g.add_argument("--pairs", metavar="DIR",
                   help="real flare pairs (DIR/input/NAME and DIR/target/NAME) mixed into the whole-frame training")
    g.add_argument("--pairs-prob", type=float, default=None,
                   help="with --pairs: the share of samples that are real (default 0.3)")
    g.add_argument("--psf-scale", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="optics generator: the PSF's magnification, drawn in pixels of the training frame (default "
                        f"{OpticsConfig.psf_scale[0]:g}-{OpticsConfig.psf_scale[1]:g}); smaller draws flare that is "
                        "smaller against the frame, as on a photo with more pixels (BENCHMARKS.md's 1024 px frames)")
    g.add_argument("--psf-bank", type=int, default=OpticsConfig.bank_size,
                   help="PSFs in the optics generator's bank (seeded, cached; python -m lightsr.data.optics)")
    g.add_argument("--patch", type=int, default=128, help="with --frame 0: patch size")
    g.add_argument("--batch", type=int, default=4)
    g = p.add_argument_group("model")
    g.add_argument("--model", default="nf-resunet", help="nf-resunet, pix2pix, pix2pix-light or a -test variant")
    g.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config overrides")
    g.add_argument("--init", metavar="MODEL_DIR",
                   help="start from this model's weights where names and shapes match (a fine-tune)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=20000)
    g.add_argument("--minutes", type=float, default=0,
                   help="fit the schedule to this wall-clock budget: --steps is replaced by what the measured "
                        "step rate allows (a resume keeps the total planned then; one stopped before the plan "
                        "plans with what is left of the budget)")
    g.add_argument("--echo", type=int, default=1,
                   help="use each synthesised batch this many times, each under a fresh flip/rotation (data "
                        "echoing, Choi et al. 2019): for when synthesis, not the model, is the bottleneck")
    g.add_argument("--lr", type=float, default=None, help="default: 2e-4 for Pix2Pix, 5e-4 for NF-ResUNet")
    g.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    g.add_argument("--warmup", type=int, default=200)
    g.add_argument("--lambda-l1", type=float, default=100.0, help="Pix2Pix: weight of L1 against the GAN loss")
    g.add_argument("--flare-weight", type=float, default=1.0, help="weight of the linear flare-layer L1")
    g.add_argument("--lamp-weight", type=float, default=0.0,
                   help="weight of an L1 over the lamps alone (pixels saturated in the target), so a lamp inside "
                        "its saturated glare disc stays a lamp instead of being averaged into a grey blob")
    g.add_argument("--lamp-per-frame", action="store_true",
                   help="the lamp term is the mean of each flare frame's own lamp L1 (frames without flare left "
                        "out), not pooled over the batch, where the blown skies of --clean-gain frames outnumber "
                        "the lamps 30 to 1")
    g.add_argument("--background-weight", type=float, default=0.0,
                   help="weight of a squared error over the background alone (pixels where input and target "
                        "differ by under 1/255 and the target is not saturated): what bench_flare's background "
                        "PSNR measures, so any change the model makes outside the flare costs. NF-ResUNet takes "
                        "100; Pix2Pix collapsed to returning its input at 100 (a validation warning says so)")
    g.add_argument("--streak-weight", type=float, default=1.0,
                   help="weight of the image and flare-layer L1 where the flare is faint (4/255 to 64/255 of "
                        "input over target: the thin rays, streaks, ghosts and haze of bench_flare's S region), "
                        "which a per-pixel mean otherwise weighs by their small area")
    g.add_argument("--clipped-weight", type=float, default=1.0,
                   help="weight of the image and flare-layer L1 where the input is clipped and the target is not "
                        "(the scene under a saturated glare disc, which inference fills from around it)")
    g.add_argument("--freeze-bn", action="store_true",
                   help="keep the model's BatchNorm layers on their running statistics, not updated (fine-tuning at a "
                        "small batch: batch statistics of a few frames differ from the ones the model is used with; "
                        "measured on Pix2Pix fine-tunes at batch 4 with one recipe, runs/flare-pix2pix-streaks without "
                        "it and runs/flare-pix2pix-frozen with it: validation PSNR at step 1,000 "
                        "22.71 against 23.31 dB)")
    g.add_argument("--agc", type=float, default=0.01, help="NF-ResUNet: AGC clipping threshold lambda")
    g.add_argument("--ema", type=float, default=0.999)
    g.add_argument("--amp", action="store_true", help=AMP_HELP)
    g.add_argument("--nan-patience", type=int, default=3)
    g.add_argument("--inject-nan-at", type=int, nargs="*", default=[], help="testing: make these steps' loss NaN")
    g = p.add_argument_group("validation and checkpoints")
    g.add_argument("--val-every", type=int, default=500)
    g.add_argument("--save-every-min", type=float, default=5.0)
    g.add_argument("--log-every", type=int, default=20)
    g.add_argument("--out", required=True)
    g.add_argument("--resume", action="store_true")
    g.add_argument("--stop-at", type=int, default=0, help="stop cleanly at this step; resume later")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int, default=0)
    g.add_argument("--workers", type=int, default=0,
                   help="processes that synthesise batches ahead (0: in this process, bit-exact on resume)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--push-to-hub", metavar="REPO_ID")
    return p.parse_args(argv)


# the flags a card's reproduce command repeats (the rest are runtime choices: threads, workers, device)
COMMAND_KEYS = ["model", "set", "init", "frame", "optics_prob", "streaks_prob", "clean_prob", "clean_gain", "exposure",
                "psf_scale", "line_prob", "glow_gain", "tail_prob", "rim_prob", "pairs", "pairs_prob", "patch", "batch",
                "echo", "steps", "lr", "schedule", "warmup", "lambda_l1", "flare_weight", "lamp_weight",
                "lamp_per_frame", "background_weight", "clipped_weight", "streak_weight", "freeze_bn", "agc", "ema",
                "amp", "val_every", "val_count", "val_size", "psf_bank", "data", "holdout", "out"]
DEFAULTS = {"data": [str(DATA / "sr-train")], "holdout": 8, "schedule": "cosine", "lambda_l1": 100.0, "agc": 0.01,
            "ema": 0.999, "echo": 1, "lamp_weight": 0.0, "lamp_per_frame": False, "background_weight": 0.0,
            "clipped_weight": 1.0, "streak_weight": 1.0, "freeze_bn": False, "amp": False, "streaks_prob": 0.0,
            "clean_prob": 0.0,
            "clean_gain": None,
            "line_prob": 0.0, "glow_gain": list(FlareConfig.glow_gain), "tail_prob": 0.0, "rim_prob": 0.0,
            "exposure": None, "psf_scale": None, "val_count": 12, "val_size": 512, "psf_bank": OpticsConfig.bank_size}


def command_args(args, lr: float) -> dict:
    """``args`` for the reproduce command: defaults that every shipped run used left out, the
    learning rate as used, the options of the other architecture and data mode dropped."""
    a = {**vars(args), "lr": lr}
    for k, v in DEFAULTS.items():
        if a.get(k) == v:
            a[k] = None
    if a["model"].startswith("nf-resunet"):
        a["lambda_l1"] = None  # a Pix2Pix option
    else:
        a["agc"] = None  # an NF-ResUNet option
    if a["frame"]:
        a["patch"] = None
    return a


def trained_generators(args) -> tuple[str, ...]:
    """The flare generators this run trains on, each of which gets a validation set (the streak
    generator with --streaks-prob, which main allows on whole frames only)."""
    return tuple(g for g in GENERATORS if g != "streaks" or args.streaks_prob)


def batch_norm_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """``model``'s BatchNorm layers (none in NF-ResUNet)."""
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def freeze_batch_norm(model: torch.nn.Module) -> None:
    """Put ``model``'s BatchNorm layers in eval mode: they normalise with their running statistics
    and do not update them (their affine weights still train)."""
    for m in batch_norm_layers(model):
        m.eval()


def _exposure(args) -> dict:
    """--exposure as a config override (none without it: each generator keeps its own range)."""
    return {"exposure": tuple(args.exposure)} if args.exposure else {}


def drawn_config(args) -> FlareConfig:
    """The hand-drawn generator's settings from the command line."""
    return FlareConfig(line_prob=args.line_prob, glow_gain=tuple(args.glow_gain), tail_prob=args.tail_prob,
                       rim_prob=args.rim_prob, **_exposure(args))


def optics_config(args) -> OpticsConfig:
    """The optics generator's settings from the command line."""
    scale = {"psf_scale": tuple(args.psf_scale)} if args.psf_scale else {}
    return replace(OpticsConfig(), bank_size=args.psf_bank, **_exposure(args), **scale)


def run_record(args, model, lr: float, photos: int, initialisation: str | None) -> dict:
    """What this run does, in words a card prints (lightsr.training.write_run_record)."""
    folders = ", ".join(Path(d).name for d in args.data)
    held = f"{folders} photos ({photos} trained on), the last {args.holdout} held out for validation"
    if args.frame:
        data = (f"synthetic flare on {held}; whole {args.frame}px frames (each most of a photo) with "
                f"flips/rotations; flare from the optics generator (lightsr.data.optics, {args.psf_bank}-PSF "
                f"wave-optics bank) for {args.optics_prob:.0%} of "
                + (f"the pairs left after {args.streaks_prob:.0%} from the streak generator (lightsr.data.streaks)"
                   if args.streaks_prob else "pairs")
                + ", the hand-drawn one (lightsr.data.flare) for the rest")
        drawn = drawn_config(args)
        extras = []
        if drawn.line_prob:
            extras.append(f"{drawn.line_prob:.0%} of its sources with a long thin streak through them")
        if drawn.glow_gain != FlareConfig.glow_gain:
            extras.append(f"glow peaks {drawn.glow_gain[0]:g} to {drawn.glow_gain[1]:g} x white")
        if drawn.tail_prob:
            extras.append(f"{drawn.tail_prob:.0%} of glows with a power-law tail")
        if drawn.rim_prob:
            extras.append(f"{drawn.rim_prob:.0%} of sources with rimmed, colour-fringed ghosts")
        if extras:
            data += f" ({'; '.join(extras)})"
        if args.psf_scale:
            data += f"; optics PSFs magnified {args.psf_scale[0]:g} to {args.psf_scale[1]:g} times"
        if args.exposure:
            data += f"; scenes scaled by {args.exposure[0]:g} to {args.exposure[1]:g} before flare (both generators)"
        if args.clean_prob:
            data += f"; {args.clean_prob:.0%} of synthetic samples without flare (target = input)"
            if args.clean_gain:
                data += (f", each over-exposed {args.clean_gain[0]:g} to {args.clean_gain[1]:g} times "
                         "(log-uniform, linear light, clipped at white)")
        if args.pairs:
            share = 0.3 if args.pairs_prob is None else args.pairs_prob
            data += (f"; real pairs from {args.pairs} for {share:.0%} of samples, the synthetic shares applying "
                     "to the rest")
    else:
        data = (f"synthetic flare (lightsr.data.flare, hand-drawn) on {held}; {args.patch}px patches with "
                "flips/rotations")
    if args.echo > 1:
        data += f"; each batch used {args.echo} times under fresh flips (data echoing)"
    config = f"; config {' '.join(args.set)}" if args.set else ""
    per_frame = ", each flare frame's own mean, averaged" if args.lamp_per_frame else ""
    terms = "L1" + (f" + {args.flare_weight:g} x linear flare-layer L1" if args.flare_weight else "") + (
        f" + {args.lamp_weight:g} x lamp L1 (target pixels at white{per_frame})" if args.lamp_weight else "") + (
        f" + {args.background_weight:g} x background MSE (input = target within 1/255)"
        if args.background_weight else "") + (
        f", the L1s weighted {args.clipped_weight:g} where the input is clipped and the target is not"
        if args.clipped_weight != 1 else "") + (
        f", the L1s weighted {args.streak_weight:g} where the flare is 4/255 to 64/255 (streaks, ghosts, haze)"
        if args.streak_weight != 1 else "")
    if model.architecture == "pix2pix":
        layers = getattr(model.config, "disc_layers", None)
        disc = f"PatchGAN, {layers} layers" if layers else "PatchGAN"
        objective = f"GAN ({disc}) + {args.lambda_l1:g} x ({terms}), Adam({lr:g}, beta1 0.5){config}"
        if args.freeze_bn:
            objective += "; BatchNorm frozen (running statistics, not updated)"
    else:
        objective = f"{terms}, Adam (lr {lr:g}, {args.schedule}), AGC lambda {args.agc} every step{config}"
    if args.amp:
        objective += "; bf16 autocast (weights, losses and optimizer state fp32)"
    record = {
        "script": "train_flare.py", "data": data, "objective": objective,
        "recipe": f"batch {args.batch}, {objective}", "steps_detail": f", batch {args.batch}",
        "architecture": f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, "
                        f"config {json.dumps(model.hub_config(), sort_keys=True)}",
        "lines": {"validation": f"{args.val_count} frame{'s' if args.val_count != 1 else ''} per generator at "
                                f"{args.val_size}px every {args.val_every:,} steps; the best EMA weights (mean PSNR "
                                + ("of both sets) are kept" if not args.clean_prob else
                                   f"of both sets, two thirds, and of the {args.holdout} held-out photos without "
                                   f"flare against themselves{CLEAN_EXPOSED if args.clean_gain else ''}, capped at "
                                   f"{CLEAN_CAP:g} dB, one third) are kept")},
    }
    if initialisation:
        record["initialisation"] = initialisation
    return record


def load_photos(args) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode every photo once; split off the last --holdout as validation-only."""
    check_training_folders(args.data, "flare-removal")
    train, held = split_holdout([f for folder in args.data for f in image_files(folder)], args.holdout)
    return [[np.asarray(lightsr.open_image(f).convert("RGB")) for f in files] for files in (train, held)]


class FlareForward(torch.nn.Module):
    """``model.forward_with_flare`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_with_flare(x)


@torch.inference_mode()
def validate(model, pairs, device) -> tuple[float, float, float]:
    """Mean RGB PSNR/SSIM of the model's output against the targets, and mean RGB PSNR of the
    output against its input (capped at CLEAN_CAP: how little the model changes; see IDENTITY)."""
    was = model.training
    model.eval()
    scores = []
    for inp, target, *_ in pairs:
        out = model(to_unit_range(inp, device))[0].permute(1, 2, 0).cpu().numpy()
        if not np.isfinite(out).all():  # scored as NaN, so such weights never become "best"
            log.warning("validation: the model's output is not finite")
            scores.append((math.nan, math.nan, math.nan))
            continue
        out = np.round(out * 255).astype(np.uint8)
        scores.append((psnr(out, target, y_channel=False), ssim(out, target, y_channel=False),
                       min(psnr(out, inp, y_channel=False), CLEAN_CAP)))
    model.train(was)
    return tuple(float(x) for x in np.mean(scores, axis=0))


IDENTITY = (0.5, 35.0)  # dB: under this gain over the no-op, with the output this close to its input, the model
# has collapsed to returning its input. Measured on 12 optics and hand-drawn frames at 512 px (held-out photos,
# no-op 17.62 dB): Pix2Pix fine-tuned with --background-weight 100 (runs/flare-pix2pix-drawn, discriminator loss
# 0.05) scored 17.79 dB, its output 45.8 dB from the input; the shipped Pix2Pix and NF-ResUNet, and the other
# fine-tunes of session 21, scored 22.1 to 24.8 dB with their output 19.2 to 22.1 dB from the input


def collapse_warning(v_psnr: float, to_input: float, noop_psnr: float) -> str | None:
    """One line if the validation scores say the model returns its input (see IDENTITY), else None."""
    if v_psnr - noop_psnr < IDENTITY[0] and to_input >= IDENTITY[1]:
        return (f"validation: the model returns its input nearly unchanged ({to_input:.1f} dB from it, "
                f"{v_psnr - noop_psnr:+.2f} dB over the no-op): it has collapsed to the identity. With Pix2Pix a "
                "large --background-weight does this (100 did, measured); lower it or leave it at 0")
    return None


CLEAN_CAP = 50.0  # dB: past this a photo without flare is left alone for any purpose (PSNR is inf when exact)


CLEAN_EXPOSED = ", as they are and each once more over-exposed by a seeded gain from the --clean-gain range"


def clean_validation(photos: list[np.ndarray], long_side: int, gain: list[float] | None) -> list[tuple]:
    """The held-out photos without flare as (input, target) pairs with target = input, at
    ``long_side`` px; with a --clean-gain range each photo also a second time, over-exposed by a
    gain drawn (seeded, log-uniform) from it, so blown skies weigh in the choice of weights."""
    frames = [fit_long_side(p, long_side) for p in photos]
    if gain:
        rng = np.random.default_rng(4321)
        frames += [overexpose(f, exposure_gain(rng, gain)) for f in frames]
    return [(f, f) for f in frames]


def selection_score(flare_psnr: float, clean_psnr: float | None) -> float:
    """The score that picks the best weights: the validation frames' mean PSNR, and with a set of
    photos without flare (--clean-prob) a third part for their PSNR against themselves, capped at
    CLEAN_CAP (the two flare sets weigh two thirds). A model that greys out clear skies to gain
    a little on flare then loses: leaving photos alone is half of the job."""
    if clean_psnr is None:
        return flare_psnr
    return (2 * flare_psnr + min(clean_psnr, CLEAN_CAP)) / 3


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the square, applied to an (N, C, H, W) batch."""
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))


def clipped_weights(inp: torch.Tensor, target: torch.Tensor, weight: float,
                    streak: float = 1.0) -> torch.Tensor | None:
    """(N, 1, H, W) per-pixel loss weights: ``weight`` where the input is clipped by the sensor and the
    target is not (glare over the scene: what lies there is lost, remove_flare fills it from around
    it, and an L1 there only teaches the average scene), ``streak`` where the flare (input over
    target, brightest channel) is faint, STREAK_LEVEL to GLARE_LEVEL of 255 (thin rays, streaks,
    ghosts, haze), 1 elsewhere; None when both are 1."""
    if weight == 1 and streak == 1:
        return None
    lost = (inp.amax(dim=1, keepdim=True) >= SATURATED) & (target.amax(dim=1, keepdim=True) < SATURATED)
    w = torch.where(lost, weight, 1.0).to(inp.dtype)
    if streak != 1:
        flare = (inp - target).abs().amax(dim=1, keepdim=True) * 255
        w = torch.where((flare >= STREAK_LEVEL) & (flare < GLARE_LEVEL) & ~lost, streak, w)
    return w


def weighted_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean absolute error, each pixel counted ``weight`` times (all once for None)."""
    if weight is None:
        return F.l1_loss(x, y)
    return ((x - y).abs() * weight).sum() / (weight.sum() * x.shape[1]).clamp(min=1e-8)


def lamp_loss(fake: torch.Tensor, target: torch.Tensor, inp: torch.Tensor | None = None) -> torch.Tensor:
    """L1 over the lamps alone: the pixels whose target reaches the sensor's white in any channel
    (SATURATED, as remove_flare's blend-back reads them); 0 for a batch without lamps.

    Without ``inp`` the lamp pixels of the whole batch are pooled. With it (--lamp-per-frame)
    each frame that has flare (input differs from target) and lamps gives its own mean, and the
    term is the mean over those frames: the blown skies of flare-free frames (--clean-gain), which
    the plain L1 already keeps, and one big lamp no longer outweigh the small lamps in glare."""
    lamp = (target.amax(dim=1, keepdim=True) >= SATURATED).to(fake.dtype)
    err = (fake - target).abs() * lamp
    if inp is None:
        return err.sum() / (lamp.sum() * fake.shape[1]).clamp(min=1)
    count = lamp.sum(dim=(1, 2, 3))
    counted = (count > 0) & ((inp - target).abs().amax(dim=(1, 2, 3)) > 0)
    per_frame = err.sum(dim=(1, 2, 3)) / (count * fake.shape[1]).clamp(min=1)
    return (per_frame * counted).sum() / counted.sum().clamp(min=1)


def background_loss(fake: torch.Tensor, inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the background alone: the pixels no flare reaches (input and target
    within 1/255 in every channel; the synthesis adds the same noise and JPEG to both) that are not
    lamps (target below SATURATED). Squared, as the background PSNR that bench_flare reports is:
    a few badly dimmed lamp rims or a spill past the flare's edge cost far more than many
    pixels off by a level. 0 for a batch with no background."""
    bg = (((inp - target).abs().amax(dim=1, keepdim=True) < 1 / 255)
          & (target.amax(dim=1, keepdim=True) < SATURATED)).to(fake.dtype)
    return ((fake - target).square() * bg).sum() / (bg.sum() * fake.shape[1]).clamp(min=1)


def main(args: argparse.Namespace) -> dict:
    if args.clean_gain and not args.clean_prob:
        raise lightsr.LightSRError("--clean-gain over-exposes the flare-free samples: give --clean-prob too")
    dist, out, rng = start_run(args)
    planned_steps(args, out, dist)  # --minutes: a resume keeps the schedule planned at the start

    model = lightsr.create_model(args.model, **parse_overrides(args.set)).to(dist.device)
    model = cpu_layout(model, dist.device)
    if model.task != "flare-removal":
        raise lightsr.LightSRError(f"{args.model} is a {model.task} model, not flare removal")
    initialisation = initial_weights(model, args, out)  # a warm start from --init, or the first sitting's
    if args.init and not args.resume and not args.freeze_bn and args.batch < SMALL_BATCH and batch_norm_layers(model):
        log.warning("fine-tuning BatchNorm at batch %d: its statistics will follow %d frames at a time; "
                    "--freeze-bn keeps them (see its help)", args.batch, args.batch)
    gan = model.architecture == "pix2pix"
    lr = args.lr if args.lr is not None else (2e-4 if gan else 5e-4)  # 0 is a rate (evaluate, BN frozen)
    betas = (0.5, 0.999) if gan else (0.9, 0.99)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    extras: dict = {}
    disc = disc_opt = None
    if args.init and not args.resume and hasattr(model, "reset_weight_scale"):
        model.reset_weight_scale()  # NF weights saved at std 1 would otherwise learn ~24x slower (same outputs)
    if args.init and not args.resume and getattr(model.config, "output", "image") == "flare" \
            and read_config(args.init).get("output", "image") != "flare":
        # a warm start from an image-output model: its head meant something else, so start it at "no flare"
        torch.nn.init.zeros_(model.final_layer().weight)
        torch.nn.init.zeros_(model.final_layer().bias)
        initialisation += "; the head then set to zero (the source predicted an image, this model predicts flare)"
    if gan:
        disc = cpu_layout(PatchDiscriminator(model.config).to(dist.device), dist.device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
        extras = {"disc": disc, "disc_optimizer": disc_opt}
    ema = make_ema(model, args.ema, warmup=not args.init) if args.ema > 0 else None
    guard = NaNGuard(patience=args.nan_patience)
    state = resume_or_start(args, dist, out, model=model, optimizer=optimizer, ema=ema, rng=rng, guard=guard,
                            lr=lr, extras=extras)

    record: dict = {}  # run.json: filled once the data is loaded

    def write_args() -> None:
        (out / "args.json").write_text(json.dumps({**vars(args), "lr": lr}, indent=1))
        if record:  # the command repeats the planned schedule (--minutes rewrites --steps)
            write_run_record(out, {**record, "command": command_line("train_flare.py", command_args(args, lr),
                                                                     COMMAND_KEYS)})

    if dist.is_main:
        write_args()
    net, dnet = FlareForward(model), disc
    if dist.world_size > 1:
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        if gan:
            dnet = torch.nn.parallel.DistributedDataParallel(disc, device_ids=ids)

    train_photos, val_photos = load_photos(args)
    optics = optics_config(args)
    bank = psf_bank(optics)
    if args.frame:
        real = PairFolder(args.pairs) if args.pairs else None
        real_prob = (0.3 if args.pairs_prob is None else args.pairs_prob) if real else 0.0
        pairs = FrameFlarePairs(train_photos, args.frame, bank=bank, optics_prob=args.optics_prob,
                                cfg=drawn_config(args), optics_cfg=optics, pairs=real,
                                pairs_prob=real_prob, clean_prob=args.clean_prob,
                                clean_gain=tuple(args.clean_gain) if args.clean_gain else None,
                                streaks_prob=args.streaks_prob)
    elif args.pairs or args.clean_prob or args.streaks_prob:
        raise lightsr.LightSRError("--pairs, --clean-prob and --streaks-prob train on whole frames: give --frame")
    else:
        pairs = FlarePairs(train_photos, args.patch)
    val_sets = {g: validation_frames(val_photos, g, count=args.val_count, long_side=args.val_size, bank=bank)
                for g in trained_generators(args)}
    val = [p for v in val_sets.values() for p in v]
    # with --clean-prob the model is also taught to leave photos without flare alone, so the held-out
    # photos as they are (target = input) join the score that picks the best weights
    clean_val = clean_validation(val_photos, args.val_size, args.clean_gain) if args.clean_prob else []
    noop_psnr = float(np.mean([psnr(a, b, y_channel=False) for a, b, *_ in val]))
    log.info("%d training photos, %d validation pairs (no-op PSNR %.2f dB), %s with %d parameters",
             len(train_photos), len(val), noop_psnr, args.model, sum(p.numel() for p in model.parameters()))
    record.update(run_record(args, model, lr, len(train_photos), initialisation))
    if dist.is_main:
        write_args()
    curve = CSVLog(out / "log.csv", ["step", "loss", "l1", "flare_l1", "d_loss", "lr", "val_psnr", "val_ssim",
                                     "skipped", "elapsed_s", "lamp_l1", "bg_mse", "val_clean_psnr"])

    def checkpoint():
        save_last(out, state, model=model, optimizer=optimizer, ema=ema, rng=rng, guard=guard, extras=extras)

    def run_validation() -> float:
        scored = ema.module if ema is not None else model
        v_psnr, v_ssim, to_input = validate(scored, val, dist.device)
        if dist.is_main and (warning := collapse_warning(v_psnr, to_input, noop_psnr)):
            log.warning(warning)
        clean_psnr = validate(scored, clean_val, dist.device)[0] if clean_val else None
        curve.write(step=state["step"], val_psnr=f"{v_psnr:.3f}", val_ssim=f"{v_ssim:.4f}",
                    elapsed_s=f"{state['elapsed_s']:.0f}",
                    val_clean_psnr="" if clean_psnr is None else f"{clean_psnr:.3f}")
        keep_if_best(out, state, selection_score(v_psnr, clean_psnr), scored)
        return v_psnr

    stream = batches(pairs.sample, rng, args.batch, workers=args.workers, seed=[args.seed, dist.rank, state["step"]],
                     pin_memory=dist.device.type == "cuda")
    echo_left = 0
    d_loss = torch.zeros(())
    bar = tqdm(total=args.steps, initial=state["step"], disable=not dist.is_main, dynamic_ncols=True)
    with Bookkeeping(args, dist, out, state, model=model, net=net, optimizer=optimizer, ema=ema, guard=guard,
                         validate=run_validation, checkpoint=checkpoint, write_args=write_args, bar=bar) as book:
        while book.running:
            step = state["step"]
            cur_lr = learning_rate(step, base=lr, total=args.steps, schedule=args.schedule,
                                   warmup=args.warmup) * guard.lr_scale
            for opt in (optimizer, disc_opt):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = cur_lr
            if echo_left == 0:
                fresh = [to_unit_range(b, dist.device) for b in next(stream)]
                echo_left = args.echo
            k = int(rng.integers(8)) if echo_left < args.echo else 0  # a fresh batch is used as synthesised
            inp, target = (dihedral(t, k).contiguous(memory_format=torch.channels_last) for t in fresh)
            echo_left -= 1
            net.train()
            if args.freeze_bn:
                freeze_batch_norm(model)
            with autocast(dist.device, args.amp):
                fake, flare = net(inp)
            fake, flare = fake.float(), flare.float()
            # the true flare layer, in the linear light the model predicts it in
            weight = clipped_weights(inp, target, args.clipped_weight, args.streak_weight)
            flare_l1 = weighted_l1(flare, to_linear(inp) - to_linear(target), weight)
            lamp_l1 = lamp_loss(fake, target, inp if args.lamp_per_frame else None)
            bg_mse = background_loss(fake, inp, target)
            if gan:
                # discriminator: real pairs -> 1, generated pairs -> 0 (halved, as in pix2pix)
                with autocast(dist.device, args.amp):
                    real_logits, fake_logits = dnet(inp, target).float(), dnet(inp, fake.detach()).float()
                d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
                disc_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                if all_finite(d_loss.detach(), dist):
                    disc_opt.step()
            l1 = weighted_l1(fake, target, weight)
            reconstruction = (l1 + args.flare_weight * flare_l1 + args.lamp_weight * lamp_l1
                              + args.background_weight * bg_mse)
            if gan:
                with autocast(dist.device, args.amp):
                    logits = dnet(inp, fake).float()
                loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) \
                    + args.lambda_l1 * reconstruction
            else:
                loss = reconstruction
            if step in args.inject_nan_at:
                loss = loss * float("nan")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not gan:
                adaptive_gradient_clip(model.agc_parameters(), clip=args.agc)
            # max_norm=inf clips nothing (NF-ResUNet's clipping is AGC's, above; Pix2Pix's Adam needs none):
            # it is the one fused call that gives the global gradient norm, whose finiteness the NaN guard
            # checks together with the loss
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            finite = all_finite(torch.stack([loss.detach(), grad_norm.detach()]), dist)
            book.optimizer_step(step, finite)
            book.after_step(curve, lambda: {
                "loss": f"{loss.item():.5f}", "l1": f"{l1.item():.5f}", "flare_l1": f"{flare_l1.item():.5f}",
                "lamp_l1": f"{lamp_l1.item():.5f}",
                "bg_mse": f"{bg_mse.item():.3g}", "d_loss": f"{d_loss.item():.4f}" if gan else "",
                "lr": f"{cur_lr:.3g}"},
                l1=f"{l1.item():.4f}")
        if book.finish():
            log.info("done: %d steps, %d non-finite skipped, best selection score %.2f dB (no-op PSNR %.2f), %.2f h",
                     state["step"], guard.skipped, state["best_psnr"], noop_psnr, state["elapsed_s"] / 3600)
            best = lightsr.load(out / "best").to(dist.device)  # on a GPU sitting, measured there: minutes on its CPU
            # the trainer's card is measured on PyTorch, the reference (bench_flare measures the default backend)
            scores = {g: evaluate_flare(v, [remove_flare(best, a, backend="torch") for a, *_ in v])
                      for g, v in val_sets.items()}
            noop = {g: evaluate_flare(v, [a for a, *_ in v]) for g, v in val_sets.items()}
            write_card(out / "best", best, **flare_card_context(best, scores, noop, long_side=args.val_size,
                                                                    run_dir=out))
            if args.push_to_hub:
                push_folder(out / "best", args.push_to_hub, message=f"{args.model}: {state['step']} steps")
                log.info("pushed %s to %s", out / "best", args.push_to_hub)
    return {"step": state["step"], "skipped": guard.skipped, "best_psnr": state["best_psnr"],
            "noop_psnr": noop_psnr}


if __name__ == "__main__":
    try:
        main(parse_args())
    except lightsr.LightSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
