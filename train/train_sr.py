"""Train a lightsr super-resolution model on HR photos (or video frames), resumably.

    python train/train_sr.py --model rdn-light --scale 2 --out runs/rdn-light-x2 --steps 20000
    python train/train_sr.py --out runs/rdn-light-x2 --resume          # continue after a stop
    torchrun --standalone --nproc-per-node 2 train/train_sr.py ...        # DDP (gloo on CPU, NCCL on GPUs)

One procedure: parse_args() then main(args). LR patches are made on the fly from random
HR crops with lightsr.bicubic_downscale, exactly the benchmark degradation. Every
--val-every steps the model is validated on the last --holdout training photos, which it
never trains on (or on --val DIR, where all photos train), and --out/best keeps the best
weights: no public benchmark selects them, so the card's Set5/Set14 numbers are not tuned to.
--out/last is the resumable checkpoint; both are Hub model folders. See lightsr/training.py
for the checkpoint format, the NaN guard and the schedule.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import lightsr  # noqa: E402
from lightsr.hub import push_folder  # noqa: E402
from lightsr.cards import sr_card_context, write_card  # noqa: E402
from lightsr.evaluate import evaluate_sr  # noqa: E402
from lightsr.imaging import image_files, to_unit_range  # noqa: E402
from lightsr.models.ecbsr import LUMA  # noqa: E402
from lightsr.training import (  # noqa: E402
    AMP_HELP, all_finite, autocast, batches, Bookkeeping, check_training_folders, command_line, cpu_layout, CSVLog,
    keep_if_best, initial_weights, learning_rate, make_ema, model_colours, NaNGuard, parse_overrides, planned_steps,
    resume_or_start, save_last, split_holdout, start_run, write_run_record,
)

log = logging.getLogger("train_sr")
DATA = ROOT / "data"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="*", default=[str(DATA / "sr-train")],
                   help="folders of HR images (give --data alone to train on --video frames only)")
    g.add_argument("--video", nargs="*", default=[], help="videos to sample at --fps frames/s as HR images")
    g.add_argument("--fps", type=float, default=1.0)
    g.add_argument("--scale", type=int, default=2)
    g.add_argument("--lr-patch", type=int, default=32, help="LR patch side; the HR patch is scale times it")
    g.add_argument("--batch", type=int, default=16, help="patches per step (per process)")
    g.add_argument("--multiscale", type=float, nargs="*", default=[], metavar="F",
                   help="also train on every photo downscaled by these factors (Lanczos, e.g. 0.75 0.5), as "
                        "Real-ESRGAN's multi-scale DF2K: denser detail per pixel and more distinct crops from few "
                        "photos; the held-out photos stay as they are")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="rdn-light", help=f"one of {', '.join(lightsr.list_models())}")
    g.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="config overrides, e.g. upsampler=transpose features=48")
    g.add_argument("--init", metavar="MODEL_DIR",
                   help="start from this model's weights where names and shapes match (e.g. the x2 model for x4)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=20000)
    g.add_argument("--minutes", type=float, default=0,
                   help="fit the schedule to this wall-clock budget: --steps is replaced by what the measured "
                        "step rate allows (a resume keeps the total planned then; one stopped before the plan "
                        "plans with what is left of the budget)")
    g.add_argument("--loss", choices=["l1", "mse"], default="l1")
    g.add_argument("--lr", type=float, default=5e-4)
    g.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    g.add_argument("--warmup", type=int, default=200)
    g.add_argument("--decay-every", type=int, default=5000, help="for --schedule step")
    g.add_argument("--ema", type=float, default=0.999, help="EMA decay of the weights; 0 disables")
    g.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip; 0 disables")
    g.add_argument("--nan-patience", type=int, default=3)
    g.add_argument("--inject-nan-at", type=int, nargs="*", default=[], help="testing: make these steps' loss NaN")
    g = p.add_argument_group("validation and checkpoints")
    g.add_argument("--holdout", type=int, default=8,
                   help="the last N photos (sorted, of the last --data folder) are never trained on and select "
                        "the best weights (without --val), as train_flare.py holds them out")
    g.add_argument("--val", metavar="DIR",
                   help="validate on the images in DIR instead, training on every photo (runs before 2026-11-26 "
                        "validated on data/sr-bench/Set5)")
    g.add_argument("--bench", default=str(DATA / "sr-bench"), help="Set5/Set14 parent, for the final card")
    g.add_argument("--val-every", type=int, default=500)
    g.add_argument("--save-every-min", type=float, default=5.0)
    g.add_argument("--log-every", type=int, default=20, help="steps between loss rows in log.csv")
    g.add_argument("--out", required=True, help="run folder: last/, best/, log.csv, args.json")
    g.add_argument("--resume", action="store_true", help="continue from --out/last")
    g.add_argument("--stop-at", type=int, default=0,
                   help="stop cleanly (checkpoint saved) at this step, e.g. to fit a session; resume later")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps the default")
    g.add_argument("--workers", type=int, default=0,
                   help="processes that cut and downscale patches ahead (0: in this process, bit-exact on resume)")
    g.add_argument("--amp", action="store_true", help=AMP_HELP)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--push-to-hub", metavar="REPO_ID", help="push --out/best with its card at the end")
    g.add_argument("--card-extra", default="", help="text added to the card's training section")
    return p.parse_args(argv)


# the flags a card's reproduce command repeats (the rest are runtime choices: threads, workers, device)
COMMAND_KEYS = ["model", "set", "scale", "init", "lr_patch", "batch", "multiscale", "steps", "loss", "lr", "schedule",
                "warmup", "decay_every", "ema", "grad_clip", "amp", "holdout", "val", "val_every", "data", "video",
                "fps", "out"]


def command_args(args) -> dict:
    """``args`` for the reproduce command: paths inside the checkout made relative to it, and
    --data and --holdout left out where they are the defaults, --holdout where --val replaces it."""
    a = dict(vars(args))
    a["data"] = [_relative(d) for d in a["data"]]
    if a["val"]:
        a["val"] = _relative(a["val"])
    if a["val"] or a["holdout"] == 8:
        a["holdout"] = None  # --val replaces it; 8 is the default
    if a["data"] == ["data/sr-train"]:
        a["data"] = None
    if not a["video"]:
        a["fps"] = None  # only video frames read it
    if a["schedule"] != "step":
        a["decay_every"] = None  # only the step schedule reads it
    if a["grad_clip"] == 1.0:
        a["grad_clip"] = None  # the default
    if not a.get("multiscale"):
        a["multiscale"] = None
    return a


def _relative(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def run_record(args, model, images: int, initialisation: str | None) -> dict:
    """What this run does, in words a card prints (lightsr.training.write_run_record)."""
    crops = args.lr_patch * args.scale
    sources = ", ".join(f"{Path(d).name} ({len(image_files(d))} images)" for d in args.data)
    if args.video:
        sources += f" + {len(args.video)} video(s) at {args.fps:g} frame(s) per second"
    if args.multiscale:
        sources += ", each also downscaled by " + " and ".join(f"{f:g}" for f in args.multiscale) + " (Lanczos)"
    loss = args.loss.upper() + (" on BT.601 luma" if is_luma_model(model) else "")
    extras = (", bf16 autocast" if args.amp else "") + (
        f", gradient norm clipped at {args.grad_clip:g}" if args.grad_clip > 0 else "")
    record = {
        "script": "train_sr.py",
        "data": f"{sources}: {images} images used{' (with the copies)' if args.multiscale else ''} (short side at "
                f"least {(args.lr_patch + 4) * args.scale}px), "
                f"random {crops}px HR crops with flips and 90-degree rotations, LR made on the fly by bicubic "
                "downscaling",
        "objective": f"{loss} loss, Adam (lr {args.lr}, betas 0.9/0.99, {args.schedule} schedule, {args.warmup} "
                     f"warm-up steps), EMA {args.ema}, batch {args.batch}{extras}",
        "recipe": f"{crops}px HR crops, batch {args.batch}, {loss}, lr {args.lr} {args.schedule}",
        "architecture": f"{args.model} x{args.scale}: {sum(p.numel() for p in model.parameters()):,} parameters, "
                        f"config {json.dumps(model.hub_config(), sort_keys=True)}",
        "lines": {"validation": (f"{Path(args.val).name}" if args.val else f"the last {args.holdout} photos of "
                                 f"{Path(args.data[-1]).name}, never trained on,") +
                  f" every {args.val_every:,} steps; the best EMA weights are kept"},
    }
    if initialisation:
        record["initialisation"] = initialisation
    return record


def validation_split(args) -> tuple[list[Path], str | list[Path]]:
    """The photos to train on, and what validates: --val's folder (every photo trains), else the
    last --holdout photos (lightsr.training.split_holdout, as train_flare.py holds them out)."""
    check_training_folders(args.data, "super-resolution")
    files = [f for folder in args.data for f in image_files(folder)]
    if args.val:
        return files, args.val
    if args.holdout < 1 or not files:
        raise lightsr.LightSRError("nothing to validate on: give --holdout N (of the --data photos) or --val DIR")
    return split_holdout(files, args.holdout)


def load_hr_images(args, paths: list[Path]) -> list[np.ndarray]:
    """Decode the training photos ``paths`` and the --video frames once into memory (uint8 RGB arrays),
    each also at the --multiscale factors."""
    photos = [lightsr.open_image(path).convert("RGB") for path in paths]
    for video in args.video:
        from lightsr.video import sample_frames  # the video module's reader

        photos.extend(f.convert("RGB") for f in sample_frames(video, every_seconds=1 / args.fps))
    if any(not 0 < f < 1 for f in args.multiscale):
        raise lightsr.LightSRError(f"--multiscale factors must lie between 0 and 1, got {args.multiscale}")
    smaller = [im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
               for f in args.multiscale for im in photos]
    images = [np.asarray(im) for im in photos + smaller]
    min_side = (args.lr_patch + 4) * args.scale
    images = [im for im in images if min(im.shape[:2]) >= min_side]
    if not images:
        raise lightsr.LightSRError(f"no training image is at least {min_side} px on its short side")
    return images


def sample_batch(images, rng: np.random.Generator, batch: int, *, args) -> tuple[torch.Tensor, torch.Tensor]:
    """Random HR crops with flips/90-degree rotations; LR by bicubic downscaling on the fly.

    The HR crop carries a margin of 2 LR pixels (the bicubic kernel's reach) that is
    dropped after downscaling, so each LR patch equals that region of the whole image's
    bicubic downscale: the degradation the benchmark uses.
    """
    s, p, m = args.scale, args.lr_patch, 2
    lrs, hrs = [], []
    for _ in range(batch):
        img = images[rng.integers(len(images))]
        side = (p + 2 * m) * s
        y = rng.integers(img.shape[0] - side + 1)
        x = rng.integers(img.shape[1] - side + 1)
        crop = img[y : y + side, x : x + side]
        k = rng.integers(8)  # the 8 symmetries of the square
        crop = np.rot90(crop[:, ::-1] if k >= 4 else crop, k % 4)
        crop = np.ascontiguousarray(crop)
        lr = np.asarray(Image.fromarray(crop).resize((p + 2 * m, p + 2 * m), Image.BICUBIC))
        lrs.append(lr[m : m + p, m : m + p])
        hrs.append(crop[m * s : (m + p) * s, m * s : (m + p) * s])

    return to_unit_range(np.stack(lrs)), to_unit_range(np.stack(hrs))


def is_luma_model(model) -> bool:
    """A model that super-resolves luma alone (ECBSR with colors=1), its colour upsampled bicubically."""
    return model_colours(model) == 1


def training_loss(model, kind: str):
    """``loss(pred, target)`` on (N, 3, H, W) RGB batches: L1 or MSE over RGB, or, for a luma model,
    over BT.601 luma. A luma model's colour is the fixed bicubic path, so an RGB loss would pull its
    luma towards whatever balances that path's colour errors (for L1, their median over R, G, B)
    rather than towards the target's luma, which is what the SR protocol measures."""
    base = F.l1_loss if kind == "l1" else F.mse_loss
    if not is_luma_model(model):
        return base
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)

    def luma_loss(pred, target):
        w = weights.to(pred.device, pred.dtype)
        return base((pred * w).sum(dim=1), (target * w).sum(dim=1))

    return luma_loss


def main(args: argparse.Namespace) -> dict:
    dist, out, rng = start_run(args)
    planned_steps(args, out, dist)  # --minutes: a resume keeps the schedule planned at the start

    overrides = parse_overrides(args.set)
    model = lightsr.create_model(args.model, scale=args.scale, **overrides).to(dist.device)
    model = cpu_layout(model, dist.device)
    initialisation = initial_weights(model, args, out)  # a warm start from --init, or the first sitting's
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    ema = None
    if args.ema > 0:
        ema = make_ema(model, args.ema, warmup=not args.init)
    guard = NaNGuard(patience=args.nan_patience)
    state = resume_or_start(args, dist, out, model=model, optimizer=optimizer, ema=ema, rng=rng, guard=guard,
                            lr=args.lr)

    record: dict = {}  # run.json: filled once the data is loaded

    def write_args() -> None:
        (out / "args.json").write_text(json.dumps(vars(args), indent=1))
        if record:  # the command repeats the planned schedule (--minutes rewrites --steps)
            write_run_record(out, {**record, "command": command_line("train_sr.py", command_args(args), COMMAND_KEYS)})

    if dist.is_main:
        write_args()
    net = model
    if dist.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if dist.device.type ==
                                                        "cuda" else None)

    train_files, val_images = validation_split(args)
    images = load_hr_images(args, train_files)
    log.info("%d training images, model %s with %d parameters", len(images), args.model,
             sum(p.numel() for p in model.parameters()))
    record.update(run_record(args, model, len(images), initialisation))
    if dist.is_main:
        write_args()
    curve = CSVLog(out / "log.csv", ["step", "loss", "lr", "val_psnr", "val_ssim", "skipped", "elapsed_s"])
    loss_fn = training_loss(model, args.loss)

    def checkpoint():
        save_last(out, state, model=model, optimizer=optimizer, ema=ema, rng=rng, guard=guard)

    def validate() -> float:
        scored = ema.module if ema is not None else model
        scores = evaluate_sr(scored, val_images, scale=args.scale)
        curve.write(step=state["step"], val_psnr=f"{scores.psnr:.3f}", val_ssim=f"{scores.ssim:.4f}",
                    elapsed_s=f"{state['elapsed_s']:.0f}")
        keep_if_best(out, state, scores.psnr, scored)
        return scores.psnr

    stream = batches(partial(sample_batch, images, args=args), rng, args.batch, workers=args.workers,
                     seed=[args.seed, dist.rank, state["step"]], pin_memory=dist.device.type == "cuda")
    bar = tqdm(total=args.steps, initial=state["step"], disable=not dist.is_main, dynamic_ncols=True)
    with Bookkeeping(args, dist, out, state, model=model, net=net, optimizer=optimizer, ema=ema, guard=guard,
                         validate=validate, checkpoint=checkpoint, write_args=write_args, bar=bar) as book:
        while book.running:
            step = state["step"]
            lr = learning_rate(step, base=args.lr, total=args.steps, schedule=args.schedule, warmup=args.warmup,
                               decay_every=args.decay_every) * guard.lr_scale
            for group in optimizer.param_groups:
                group["lr"] = lr
            lr_img, hr_img = next(stream)
            lr_img = lr_img.to(dist.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            hr_img = hr_img.to(dist.device, non_blocking=True)
            net.train()
            with autocast(dist.device, args.amp):
                loss = loss_fn(net(lr_img).float(), hr_img)  # (N, 3, sH, sW) both
            if step in args.inject_nan_at:
                loss = loss * float("nan")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = args.grad_clip if args.grad_clip > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            finite = all_finite(torch.stack([loss.detach(), grad_norm.detach()]), dist)
            book.optimizer_step(step, finite)
            book.after_step(curve, lambda: {"loss": f"{loss.item():.5f}", "lr": f"{lr:.3g}"}, loss=f"{loss.item():.4f}")
        if book.finish():
            log.info("done: %d steps, %d skipped, best validation PSNR %.3f dB, %.2f h", state["step"], guard.skipped,
                     state["best_psnr"], state["elapsed_s"] / 3600)
            # The card of the best weights, measured on Set5 and Set14 now (evaluation only).
            best = lightsr.load(out / "best")
            write_card(out / "best", best, **sr_card_context(best, bench_dir=args.bench, run_dir=out),
                       notes=args.card_extra or None)
            if args.push_to_hub:
                message = f"{args.model} x{args.scale}: {state['step']} steps, validation {state['best_psnr']:.2f} dB"
                push_folder(out / "best", args.push_to_hub, message=message)
                log.info("pushed %s to %s", out / "best", args.push_to_hub)
    return {"step": state["step"], "skipped": guard.skipped, "best_psnr": state["best_psnr"]}


if __name__ == "__main__":
    try:
        main(parse_args())
    except lightsr.LightSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
