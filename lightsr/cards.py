"""Model cards with measured numbers: what the training scripts and benchmarks/ render.

``sr_card_context`` evaluates a super-resolution model on Set5/Set14 in the standard
protocol (with bicubic measured the same way) and reads the training record of its run
folder; ``write_card`` renders model_cards/template.md into a model folder's README.md.
Every number in a card comes from running this code; published rows are labelled as such.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult

from .evaluate import SRScores, evaluate_sr
from .hub import LightSRModel, render_model_card
from .training import cpu_name

__all__ = ["PUBLISHED_SR", "hardware", "training_record", "base_model", "sr_card_context", "flare_card_context",
           "write_card", "example_image"]

# Published Y-channel PSNR on the bicubic degradation (data/README.md).
PUBLISHED_SR = {
    "FSRCNN (Dong et al. 2016), 12K params": {("Set5", 2): 37.00, ("Set14", 2): 32.63, ("Set5", 4): 30.71,
                                              ("Set14", 4): 27.59},
    "ESPCN (Shi et al. 2016), 21K params": {("Set5", 2): 36.83, ("Set14", 2): 32.40, ("Set5", 4): 30.52,
                                            ("Set14", 4): 27.42},
    "IMDN (Hui et al. 2019), 694K params": {("Set5", 2): 38.00, ("Set14", 2): 33.63, ("Set5", 4): 32.21,
                                            ("Set14", 4): 28.58},
    "RDN (Zhang et al. 2018), 22M params": {("Set5", 2): 38.24, ("Set14", 2): 34.01, ("Set5", 4): 32.47,
                                            ("Set14", 4): 28.81},
}


def hardware(threads: int | str | None = None, cpu: str | None = None) -> str:
    """A machine in words: this one's GPU, or ``cpu`` (default: this machine's CPU model) and
    ``threads`` (default: torch's; "1/2" for a mix)."""
    if cpu is None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    n = threads or torch.get_num_threads()
    return f"{cpu or cpu_name()}, {n} CPU thread{'' if n == 1 else 's'}, no GPU"


def training_record(run_dir: str | Path) -> dict[str, Any]:
    """Steps, hours, data and settings of a training run folder (args.json + last/training_state.json)."""
    run_dir = Path(run_dir)
    args = json.loads((run_dir / "args.json").read_text())
    state = json.loads((run_dir / "last" / "training_state.json").read_text())
    return {"args": args, "step": state["step"], "hours": state["elapsed_s"] / 3600,
            "skipped": state.get("guard", {}).get("skipped", 0), "best_psnr": state.get("best_psnr"),
            "rollbacks": state.get("guard", {}).get("rollbacks", 0), "segments": state.get("segments", [])}


def _sittings(rec: dict[str, Any]) -> dict[str, str]:
    """Card lines on how a resumed run was trained: its sittings, schedule changes and threads."""
    segs, a = rec["segments"], rec["args"]
    gpus = sorted({s["gpu"] for s in segs if s.get("gpu")})
    threads = sorted({s["threads"] for s in segs if not s.get("gpu")})
    if not segs:
        threads = [a.get("threads") or 0]
    cpus = sorted({s["cpu"] for s in segs if s.get("cpu") and not s.get("gpu")})  # recorded since 2026-11-26
    model = " / ".join(cpus) or None  # None: not recorded (older runs), this machine's is said
    cpu = hardware(threads[0] if len(threads) == 1 else "/".join(map(str, threads)), cpu=model) if threads else ""
    parts = [cpu.removesuffix(", no GPU") if gpus else cpu] if cpu else []
    lines = {"hardware": " and ".join(parts + [f"one {g} GPU" for g in gpus])}
    if not segs:
        return lines
    starts = [s["step"] for s in segs if s["step"] > 0]
    text = f"{len(segs)} sitting{'s' if len(segs) > 1 else ''}"
    if starts:
        text += " (resumed from the last checkpoint at step " + ", ".join(f"{x:,}" for x in starts) + ")"
    if segs[0]["step"] > 0:
        text += f"; sittings before step {segs[0]['step']:,} were not recorded"
    changes = [(b["step"], a_["steps"], b["steps"]) for a_, b in zip(segs, segs[1:]) if a_["steps"] != b["steps"]]
    for at, old, new in changes:
        text += f"; the schedule was changed from {old:,} to {new:,} steps at step {at:,}"
    lines["sittings"] = text
    return lines


def _command(script: str, a: dict[str, Any], keys: list[str]) -> str:
    """The training command line that reproduces a run, from its args.json."""
    parts = [f"python train/{script}"]
    for k in keys:
        v = a.get(k)
        if v is None or v is False or v in ("", []):  # 0 is a value (--frame 0), not an absent flag
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:  # a switch (store_true)
            parts.append(flag)
        elif isinstance(v, list):
            parts.append(flag + " " + " ".join(f"'{x}'" if "[" in str(x) else str(x) for x in v))
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)


def _psnr_ssim_results(psnr: float, ssim: float, **dataset: str) -> list[EvalResult]:
    """The model-index entries of one measurement: PSNR (2 decimals) and SSIM (4)."""
    return [EvalResult(task_type="image-to-image", metric_type="psnr", metric_value=round(psnr, 2), **dataset),
            EvalResult(task_type="image-to-image", metric_type="ssim", metric_value=round(ssim, 4), **dataset)]


def sr_card_context(model: LightSRModel, *, bench_dir: str | Path,
                    run_dir: str | Path | Sequence[str | Path] | None = None,
                    speed: str | None = None, scores: dict[str, SRScores] | None = None) -> dict[str, Any]:
    """Evaluate on Set5/Set14 and assemble the card context (results table, model-index, training).

    ``run_dir`` is the training run that made the weights, or the runs of a staged recipe
    in order (e.g. a run, then a fine-tune warm-started from its best weights): the card
    then describes the last run in full, each earlier stage in one line, the total time,
    and a reproduce block with every stage's command.
    ``scores`` ("Set5"/"Set14" -> SRScores of this model) reuses a measurement just made
    with ``evaluate_sr`` instead of running the model over both sets again.
    """
    bench_dir = Path(bench_dir)
    scale = model.scale
    rows, evals = [], []
    measured = {}
    for name in ("Set5", "Set14"):
        r = (scores or {}).get(name) or evaluate_sr(model, bench_dir / name, scale=scale)
        if r.scale != scale:
            raise ValueError(f"scores for {name} were measured at x{r.scale}, the model is x{scale}")
        measured[name] = r
        # The Hub's copies of the benchmark: eugenesiow/Set5 (configs bicubic_x2/x3/x4, split validation).
        evals += _psnr_ssim_results(r.psnr, r.ssim, task_name=f"x{scale} super-resolution", dataset_name=name,
                                    dataset_type=f"eugenesiow/{name}", dataset_config=f"bicubic_x{scale}",
                                    dataset_split="validation")
    rows.append({"method": "bicubic (measured here)", **{
        f"{n} x{scale} PSNR / SSIM": f"{measured[n].bicubic_psnr:.2f} / {measured[n].bicubic_ssim:.4f}"
        for n in measured}})
    rows.append({"method": "**this model (measured here)**", **{
        f"{n} x{scale} PSNR / SSIM": f"**{measured[n].psnr:.2f} / {measured[n].ssim:.4f}**" for n in measured}})
    for label, ref in PUBLISHED_SR.items():
        if ("Set5", scale) in ref:
            rows.append({"method": f"{label}, published", **{
                f"{n} x{scale} PSNR / SSIM": f"{ref[(n, scale)]:.2f} / -" for n in measured}})
    context: dict[str, Any] = {
        "results": rows,
        "results_intro": (f"Standard protocol: HR cropped to a multiple of {scale}, LR by Pillow bicubic "
                          f"downscaling, PSNR/SSIM on the Y channel (BT.601) with {scale} pixels shaved. "
                          "Grey images are measured on their single channel."),
        "results_note": ("Published rows are the papers' numbers (trained on DIV2K or T91 for days on GPUs), "
                         "cited for context, not re-measured."),
        "eval_results": evals,
        "model_name": f"lightsr {model.architecture} x{scale}",
    }
    if speed:
        context["speed"] = speed
    if run_dir is not None:
        context["training"], context["reproduce"] = _sr_training(run_dir, scale)
        context["base_model"] = base_model(run_dir)
    return context


_SR_COMMAND_KEYS = ["model", "set", "scale", "init", "lr_patch", "batch", "steps", "loss", "lr", "schedule", "warmup",
                    "ema", "amp", "val_every", "out"]


def _folder_scale(folder: str) -> int | None:
    """The scale in a model folder's config.json, or None where the folder is not there to read."""
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("scale")
    except (OSError, ValueError):
        return None


def base_model(run_dir: str | Path | Sequence[str | Path]) -> str | None:
    """The Hub repo a recipe started from: its first stage's --init, where that is a shipped
    checkpoint (``checkpoints/NAME`` -> ``lightsr/NAME``)."""
    first = Path(run_dir) if isinstance(run_dir, (str, Path)) else Path(list(run_dir)[0])
    init = json.loads((first / "args.json").read_text()).get("init")
    if init and Path(init).parent.name == "checkpoints":
        return f"lightsr/{Path(init).name}"
    return None


def _staged(run_dir: str | Path | Sequence[str | Path], *, data: Callable[[dict], str], summary: Callable[[dict], str],
            lines: Callable[[dict, str], dict[str, Any]], init_how: Callable[[list[dict]], str], script: str,
            keys: list[str], bench: str, upgrade: Callable[[dict], dict] | None = None) -> tuple[dict[str, Any], str]:
    """Training lines and reproduce block of a recipe of one or more runs, in order.

    ``run_dir`` is one run folder or several. Each later run is a fine-tune warm-started
    from the previous run's best weights. The
    last run gets the full ``lines(record, prefix)``; each earlier one a single line made
    of ``summary(record)``, its hours, hardware and note; then the totals and every
    stage's command (a later stage's ``--init`` pointing at the previous run's best/), then
    the ``bench`` line that re-measures the card. ``upgrade`` rewrites a run's recorded
    arguments into what today's script needs to repeat it (a default that changed since).
    """
    stages = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(r) for r in run_dir]
    recs = [training_record(r) for r in stages]
    for rec in recs:
        rec["args"] = upgrade(rec["args"]) if upgrade else rec["args"]
    a, multi = recs[-1]["args"], len(stages) > 1
    training: dict[str, Any] = {"data": data(a)}
    for i, (r, rec) in enumerate(zip(stages, recs[:-1]), start=1):
        e = rec["args"]
        how = _sittings(rec)
        training[f"stage {i} (`runs/{r.name}`)"] = (
            f"{summary(rec)}, {rec['hours']:.2f} hours on {how['hardware']}"
            + (f"; {how['sittings']}" if "sittings" in how else "")
            + (f". {e['card_extra']}" if e.get("card_extra") else ""))
    training |= lines(recs[-1], f"stage {len(stages)} (`runs/{stages[-1].name}`): " if multi else "")
    if multi:
        training["total"] = (f"{sum(r['step'] for r in recs):,} steps, {sum(r['hours'] for r in recs):.2f} hours "
                             f"in {len(stages)} stages")
    if a.get("init"):
        source = f"stage {len(stages) - 1}'s best weights" if multi else a["init"]
        training["initialisation"] = f"warm start from {source} ({init_how(recs)})"
    if a.get("card_extra"):
        training["note"] = a["card_extra"]
    commands = []
    for i, (r, rec) in enumerate(zip(stages, recs)):
        args = {**rec["args"], "out": f"runs/{r.name}"}
        if i > 0:  # a later stage starts from the previous stage's best weights, not a shipped folder
            args["init"] = f"runs/{stages[i - 1].name}/best"
        commands.append(_command(script, args, keys))
    return training, "```bash\n" + "\n".join([*commands, bench]) + "\n```"


def _sr_training(run_dir: str | Path | Sequence[str | Path], scale: int) -> tuple[dict[str, Any], str]:
    """The SR card's training lines and reproduce block for the runs of a (possibly staged) recipe."""

    def data(a):
        sets = ", ".join(Path(d).name for d in a["data"]) + (f" + {len(a['video'])} video(s)" if a.get("video") else "")
        return (f"{sets} (Sun-Hays 80 photos; never Set5/Set14), random {a['lr_patch'] * scale}px HR crops "
                "with flips and 90-degree rotations, LR made on the fly by bicubic downscaling")

    def summary(rec):
        e = rec["args"]
        return (f"{rec['step']:,} of {e['steps']:,} steps, {e['lr_patch'] * scale}px HR crops, batch {e['batch']}, "
                f"{e['loss'].upper()}, lr {e['lr']} {e['schedule']}")

    def lines(rec, final):
        a = rec["args"]
        return {
            "objective": f"{final}{a['loss'].upper()} loss, Adam (lr {a['lr']}, {a['schedule']} schedule, "
                         f"{a['warmup']} warm-up steps), EMA {a['ema']}, batch {a['batch']}",
            "steps": f"{final}{rec['step']:,} of the {a['steps']:,}-step schedule" + (
                "" if rec["step"] >= a["steps"] else " (interim weights: training continues)"),
            "wall-clock": f"{final}{rec['hours']:.2f} hours",
            **_sittings(rec),
            "non-finite steps skipped": rec["skipped"],
            "validation": f"Set5 every {a['val_every']:,} steps; the best EMA weights are kept",
        }

    def init_how(recs):
        init_scale = recs[-2]["args"]["scale"] if len(recs) > 1 else _folder_scale(recs[-1]["args"]["init"])
        return {scale: "all weights", None: "every tensor whose name and shape match"}.get(
            init_scale, "every tensor whose name and shape match; the upsampler's last stage starts fresh")

    return _staged(run_dir, data=data, summary=summary, lines=lines, init_how=init_how, script="train_sr.py",
                   keys=_SR_COMMAND_KEYS,
                   bench="python benchmarks/bench_sr.py   # re-measures this card's numbers and BENCHMARKS.md")


FLARE_SETS = {"optics": "optics generator", "drawn": "hand-drawn generator"}


def flare_card_context(model: LightSRModel, scores: dict[str, Any], noop: dict[str, Any], *, long_side: int = 512,
                       run_dir: str | Path | Sequence[str | Path] | None = None,
                       speed: str | None = None) -> dict[str, Any]:
    """The flare card's context from measured ``scores`` and the ``noop`` baseline, each a
    generator name ("optics", "drawn") -> ``lightsr.evaluate.FlareScores`` of remove_flare's
    default method on that generator's validation frames.

    ``run_dir``: the training run, or the runs of a staged recipe in order (as for SR cards).
    """
    rows, evals = [], []
    for g, s in scores.items():
        n = noop[g]
        rows.append({"set": FLARE_SETS.get(g, g), "no-op PSNR / SSIM": f"{n.psnr:.2f} / {n.ssim:.4f}",
                     "this model PSNR / SSIM": f"**{s.psnr:.2f} / {s.ssim:.4f}**",
                     "gain": f"**{s.psnr - n.psnr:+.2f}**",
                     "glare PSNR": f"{n.glare_psnr:.2f} -> {s.glare_psnr:.2f}",
                     "streak PSNR": f"{n.streak_psnr:.2f} -> {s.streak_psnr:.2f}",
                     "background PSNR": f"{s.background_psnr:.2f}", "worst image": f"{s.worst_gain:+.2f}"})
        evals += _psnr_ssim_results(s.psnr, s.ssim, task_name="lens-flare removal", dataset_type="synthetic-flare",
                                    dataset_name=f"lightsr synthetic flare validation ({FLARE_SETS.get(g, g)})")
    count = next(iter(scores.values())).images if scores else 0
    context: dict[str, Any] = {
        "results": rows,
        "results_intro": (f"Two sets of {count} fixed, seeded whole frames ({long_side} px long side) made "
                          "from held-out photos that were never trained on, one per flare generator. RGB "
                          "PSNR/SSIM of the whole image through `lightsr.flare.remove_flare` (default method, "
                          "lamps kept); glare: pixels whose flare layer is >= 64/255; streak: 4/255 to 64/255 "
                          "(streaks, ghosts, haze); background: under 1/255 and not saturated in the target, where any "
                          "change is harm; worst "
                          "image: the lowest per-image gain."),
        "eval_results": evals,
        "model_name": f"lightsr {model.architecture} flare removal",
    }
    if speed:
        context["speed"] = speed
    if run_dir is not None:
        context["training"], context["reproduce"] = _flare_training(run_dir, gan=model.architecture == "pix2pix")
        context["base_model"] = base_model(run_dir)
    return context


_FLARE_COMMAND_KEYS = ["model", "set", "init", "frame", "optics_prob", "patch", "batch", "echo", "steps", "lr",
                       "warmup", "flare_weight", "lamp_weight", "pairs", "pairs_prob", "val_every", "out"]


def _flare_training(run_dir: str | Path | Sequence[str | Path], *, gan: bool) -> tuple[dict[str, Any], str]:
    """The flare card's training lines and reproduce block for the runs of a (possibly staged) recipe."""

    def data(a):
        photos = f"{', '.join(Path(d).name for d in a['data'])} photos, the last {a['holdout']} held out for validation"
        if a.get("frame"):
            share = a.get("optics_prob", 0.0)
            share_real = 0.3 if a.get("pairs_prob") is None else a["pairs_prob"]  # train_flare's default
            real = (f"; real pairs from {a['pairs']} for {share_real:.0%} of samples, the synthetic share "
                    "below applying to the rest") if a.get("pairs") else ""
            return (f"synthetic flare on {photos}; whole {a['frame']}px frames (each most of a photo) with "
                    f"flips/rotations; flare from the optics generator (lightsr.data.optics, wave-optics PSF bank) "
                    f"for {share:.0%} of pairs, the hand-drawn one (lightsr.data.flare) for the rest{real}")
        return (f"synthetic flare (lightsr.data.flare, hand-drawn) on {photos}; {a['patch']}px patches with "
                "flips/rotations")

    def objective(a):
        config = f"; config {' '.join(a['set'])}" if a.get("set") else ""
        flare = f" + {a['flare_weight']:g} x linear flare-layer L1" if a.get("flare_weight") else ""
        flare += f" + {a['lamp_weight']:g} x lamp L1 (target pixels at white)" if a.get("lamp_weight") else ""
        if gan:
            return "GAN (PatchGAN) + %g x (L1%s), Adam(%g, beta1 0.5)%s" % (a["lambda_l1"], flare, a["lr"], config)
        return f"L1{flare}, Adam (lr {a['lr']}, {a['schedule']}), AGC lambda {a['agc']} every step{config}"

    def summary(rec):
        a = rec["args"]
        return f"{rec['step']:,} of {a['steps']:,} steps, batch {a['batch']}, {objective(a)}"

    def lines(rec, final):
        a = rec["args"]
        return {
            "objective": final + objective(a),
            "steps": f"{final}{rec['step']:,} of the {a['steps']:,}-step schedule, batch {a['batch']}" + (
                "" if rec["step"] >= a["steps"] else " (interim weights: training continues)"),
            "wall-clock": f"{final}{rec['hours']:.2f} hours",
            **_sittings(rec),
            "non-finite steps": f"{rec['skipped']} skipped, {rec['rollbacks']} rollbacks",
        }

    return _staged(run_dir, data=data, summary=summary, lines=lines,
                   init_how=lambda recs: "every tensor whose name and shape match", script="train_flare.py",
                   keys=_FLARE_COMMAND_KEYS, upgrade=_flare_args_today,
                   bench="python benchmarks/bench_flare.py   # re-measures this card's numbers")


# What the flare presets were before whole-frame training and flare-layer output became their defaults.
_FLARE_PRESETS_BEFORE_OPTICS = {"nf-resunet": ["upsample=nearest", "output=image"],
                                "pix2pix-light": ["upsample=transpose", "output=image", "image_residual=true"]}


def _flare_args_today(a: dict[str, Any]) -> dict[str, Any]:
    """A flare run recorded before --frame existed trained on patches with the presets of then:
    say so explicitly, so its reproduce command still repeats it (its own --set wins)."""
    if "frame" in a:
        return a
    return {**a, "frame": 0, "set": _FLARE_PRESETS_BEFORE_OPTICS.get(a["model"], []) + list(a.get("set") or [])}


def example_image(model: LightSRModel, image, *, zoom: int = 2, size: int = 128):
    """A before/after picture for a card, from a made (CC0) example image.

    Super-resolution: the image is taken as the original, downscaled, and the same detailed
    region is shown as bicubic | model | original. Flare removal: input | output side by side.
    """
    from PIL import Image

    from .compare import compare_with_bicubic
    from .flare import remove_flare

    if model.task == "super-resolution":
        tiles = [t for t, _ in compare_with_bicubic(model, image, zoom_size=size).crops(zoom)]
    else:
        tiles = [image.convert("RGB"), remove_flare(model, image.convert("RGB"))]
    gap = 6
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + gap
    return canvas


def write_card(folder: str | Path, model: LightSRModel, **context: Any) -> Path:
    """Render the card for ``model`` into ``folder``/README.md and return its path."""
    path = Path(folder) / "README.md"
    render_model_card(model, **context).save(path)
    return path
