"""Model cards with measured numbers: what the training scripts and benchmarks/ render.

``sr_card_context`` evaluates a super-resolution model on Set5/Set14 in the standard
protocol (with bicubic measured the same way) and reads the training record of its run
folder; ``write_card`` renders model_cards/template.md into a model folder's README.md.
Every number in a card comes from running this code; published rows are labelled as such.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult

from .errors import LightSRError
from .evaluate import LAMP_MARGIN, SRScores, evaluate_sr
from .hub import LightSRModel, render_model_card
from .training import ALL_WEIGHTS, cpu_name, read_progress, read_run_record

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
    """What a training run folder says of itself: its run.json (the trainer's description), its
    arguments (args.json) and its progress (steps, hours, sittings: last/training_state.json while the
    run is resumable, else progress.json, which the trainer writes beside it at every checkpoint)."""
    run_dir = Path(run_dir)
    args = json.loads((run_dir / "args.json").read_text())
    state = read_progress(run_dir)
    return {"record": read_run_record(run_dir), "args": args, "step": state["step"], "hours": state["elapsed_s"] / 3600,
            "skipped": state.get("guard", {}).get("skipped", 0), "best_psnr": state.get("best_psnr"),
            "rollbacks": state.get("guard", {}).get("rollbacks", 0), "segments": state.get("segments", [])}


# Sittings before 2026-11-26 did not record their CPU. They all ran on the project's AMD EPYC machines (every card
# rendered then said so); the card must not name whatever machine happens to render it now.
UNRECORDED_CPU = "AMD EPYC"
MERGE_RECORD = "merge.json"  # what train/average_weights.py writes beside the averaged weights


def _sittings(rec: dict[str, Any]) -> dict[str, str]:
    """Card lines on how a resumed run was trained: its sittings, schedule changes and threads."""
    segs, a = rec["segments"], rec["args"]
    gpus = sorted({s["gpu"] for s in segs if s.get("gpu")})
    threads = sorted({s["threads"] for s in segs if not s.get("gpu")})
    if not segs:
        threads = [a.get("threads") or 0]
    cpus = sorted({s["cpu"] for s in segs if s.get("cpu") and not s.get("gpu")})  # recorded since 2026-11-26
    model = " / ".join(cpus) or UNRECORDED_CPU
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


def _shell(argv: list[str]) -> str:
    """A recorded command as one line (a token with brackets quoted, as a shell needs)."""
    return " ".join(f"'{t}'" if "[" in t else t for t in argv)


def _psnr_ssim_results(psnr: float, ssim: float, **dataset: str) -> list[EvalResult]:
    """The model-index entries of one measurement: PSNR (2 decimals) and SSIM (4)."""
    return [EvalResult(task_type="image-to-image", metric_type="psnr", metric_value=round(psnr, 2), **dataset),
            EvalResult(task_type="image-to-image", metric_type="ssim", metric_value=round(ssim, 4), **dataset)]


def sr_card_context(model: LightSRModel, *, bench_dir: str | Path,
                    run_dir: str | Path | Sequence[str | Path] | None = None,
                    speed: str | None = None, scores: dict[str, SRScores] | None = None,
                    ensembled: dict[str, SRScores] | None = None) -> dict[str, Any]:
    """Evaluate on Set5/Set14 and assemble the card context (results table, model-index, training).

    ``run_dir`` is the training run that made the weights, or the runs of a staged recipe
    in order (e.g. a run, then a fine-tune warm-started from its best weights): the card
    then describes the last run in full, each earlier stage in one line, the total time,
    and a reproduce block with every stage's command.
    ``scores`` ("Set5"/"Set14" -> SRScores of this model) reuses a measurement just made
    with ``evaluate_sr`` instead of running the model over both sets again; ``ensembled``, the
    same measured through ``lightsr.inference.self_ensemble(net, 8)``, adds a row below the
    model's (the model-index keeps the single pass's numbers).
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
    if ensembled:
        rows.append({"method": "this model, self-ensemble x8 (`self_ensemble=8`: 8 times the time; measured here)",
                     **{f"{n} x{scale} PSNR / SSIM": f"{ensembled[n].psnr:.2f} / {ensembled[n].ssim:.4f}"
                        for n in measured}})
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
        context["training"], context["reproduce"] = _training(
            run_dir, "python benchmarks/bench_sr.py   # re-measures this card's numbers and BENCHMARKS.md")
        context["base_model"] = base_model(run_dir)
    return context


def base_model(run_dir: str | Path | Sequence[str | Path]) -> str | None:
    """The Hub repo a recipe started from: its first stage's --init, where that is a shipped
    checkpoint (``checkpoints/NAME`` -> ``lightsr/NAME``)."""
    first = Path(run_dir) if isinstance(run_dir, (str, Path)) else Path(list(run_dir)[0])
    init = json.loads((first / "args.json").read_text()).get("init")
    if init and Path(init).parent.name == "checkpoints":
        return f"lightsr/{Path(init).name}"
    return None


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag added)."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


def _training(run_dir: str | Path | Sequence[str | Path], bench: str) -> tuple[dict[str, Any], str]:
    """Training lines and reproduce block of a recipe of one or more runs, in order, rendered from
    what each run recorded (run.json, args.json, its progress) and nothing else.

    Each later run is a fine-tune warm-started from the previous run's best weights. The last
    run gets the full lines (prefixed with its stage when there are several); each earlier one
    a single line of its steps, recipe, hours, hardware and note; then the totals and every
    stage's command (a later stage's ``--init`` pointing at the previous run's best/), then
    the ``bench`` line that re-measures the card.
    """
    stages = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(r) for r in run_dir]
    # a stage that is a weight average of earlier stages' best weights (its merge.json), else None: at the end of the
    # recipe it gives the shipped weights; between fine-tunes the next stage starts from it
    merges = [json.loads((f / MERGE_RECORD).read_text()) if (f / MERGE_RECORD).is_file() else None for f in stages]
    merge = None
    if merges[-1]:  # the recipe ends in a weight average
        stages.pop()
        merge = merges.pop()
        if not stages:
            raise LightSRError("a weight average's card needs the training runs it averages listed before it")
    every = [None if m else training_record(f) for f, m in zip(stages, merges)]
    recs = [rec for rec in every if rec]
    last, multi = every[-1], len(stages) > 1
    if last is None:
        raise LightSRError("a recipe ends in a training run or in one weight average of its stages")
    a, r = last["args"], last["record"]
    final = f"stage {len(stages)} (`runs/{stages[-1].name}`): " if multi else ""
    differs = any(rec["record"]["data"] != r["data"] for rec in recs)  # then each stage names its own data
    training: dict[str, Any] = {"data": (final if differs else "") + r["data"]}
    for i, (folder, rec, m) in enumerate(zip(stages[:-1], every[:-1], merges[:-1]), start=1):
        if m:
            training[f"stage {i} (`runs/{folder.name}`)"] = _merge_line(m, stages)
            continue
        e = rec["args"]
        how = _sittings(rec)
        # where a stage did not simply continue the one before (the first stage's outside weights, a grown or
        # re-shaped model), its line says where it started: the initialisation line names the last stage's only
        took = rec["record"].get("initialisation")
        start = ""
        if e.get("init") and (i == 1 or (took and took != ALL_WEIGHTS)):
            source = e["init"] if i == 1 else f"stage {i - 1}"
            start = f"; warm start from {source} ({took or 'matching tensors'})"
        training[f"stage {i} (`runs/{folder.name}`)"] = (
            f"{rec['step']:,} of {e['steps']:,} steps, {rec['record']['recipe']}, {rec['hours']:.2f} hours on "
            f"{how['hardware']}" + (f"; {how['sittings']}" if "sittings" in how else "") + start
            + (f". {e['card_extra']}" if e.get("card_extra") else "")
            + (f"; data: {rec['record']['data']}" if differs else ""))
    training |= {
        "objective": final + r["objective"],
        "steps": f"{final}{last['step']:,} of the {a['steps']:,}-step schedule{r.get('steps_detail', '')}" + (
            "" if last["step"] >= a["steps"] else " (interim weights: training continues)"),
        "wall-clock": f"{final}{last['hours']:.2f} hours",
        **_sittings(last),
        "non-finite steps": f"{last['skipped']} skipped, {last['rollbacks']} rollbacks",
        **r.get("lines", {}),
    }
    if multi:
        training["total"] = (f"{sum(x['step'] for x in recs):,} steps, {sum(x['hours'] for x in recs):.2f} hours "
                             f"in {len(stages)} stages")
    if a.get("init"):
        source = f"stage {len(stages) - 1}'s best weights" if multi else a["init"]
        training["initialisation"] = f"warm start from {source} ({r['initialisation']})"
    if a.get("card_extra"):
        training["note"] = a["card_extra"]
    commands = []
    for i, (folder, rec, m) in enumerate(zip(stages, every, merges)):
        if m:
            commands.append(_shell(m["command"]))
            continue
        argv = _with(rec["record"]["command"], "--out", f"runs/{folder.name}")
        if i > 0:  # a later stage starts from the previous stage's best weights, not a shipped folder
            argv = _with(argv, "--init", f"runs/{stages[i - 1].name}/best")
        commands.append(_shell(argv))
    if merge:
        training["weights"] = _merge_line(merge, stages)
        commands.append(_shell(merge["command"]))
    return training, "```bash\n" + "\n".join([*commands, bench]) + "\n```"


def _merge_line(merge: dict[str, Any], stages: list[Path]) -> str:
    """The card line of a weight average (train/average_weights.py's merge.json), the recipe's last
    stage or one a later stage fine-tunes: which stages' best weights, with what weight."""
    numbers = {folder.name: i for i, folder in enumerate(stages, start=1)}  # a source is a stage's RUN/best

    def which(source: str) -> str:
        run = Path(source).parent.name if Path(source).name == "best" else None
        return f"stage {numbers[run]}'s best weights" if run in numbers else f"the weights of `{source}`"

    parts = [f"{w:g} x {which(s)}" for s, w in zip(merge["sources"], merge["weights"])]
    return ("the weighted mean of " + " and ".join(parts) + " (weight-space ensembling, WiSE-FT: Wortsman et al., "
            "CVPR 2022; the sources are fine-tunes of one model, so the mean trades what a later stage gained "
            "against what it lost)")


FLARE_SETS = {"optics": "optics generator", "drawn": "hand-drawn generator", "streaks": "streak generator",
              "shimmer": "held-out shimmer generator (never trained on)"}


def trained_on_streaks(run_dir: str | Path | Sequence[str | Path] | None) -> bool:
    """Whether any run of a recipe drew flare from the streak generator (train_flare --streaks-prob)."""
    runs = [] if run_dir is None else [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    records = [Path(r) / "args.json" for r in runs]  # a weight average (merge.json) has none: its sources are runs
    return any(json.loads(f.read_text()).get("streaks_prob") for f in records if f.exists())


def _set_notes(scores: dict[str, Any], streaks: bool) -> str:
    """What the card's intro says of the held-out and the optional generator, in one parenthesis."""
    notes = []
    if "shimmer" in scores:
        notes.append("the shimmer generator, `lightsr.data.shimmer`, is used by no trainer: it shows how the model "
                     "does on flare drawn some other way")
    if "streaks" in scores:
        notes.append("this model " + ("trained" if streaks else "never trained") + " on the streak generator, "
                     "`lightsr.data.streaks`")
    return f" ({'; '.join(notes)})" if notes else ""


def flare_card_context(model: LightSRModel, scores: dict[str, Any], noop: dict[str, Any], *, long_side: int = 512,
                       run_dir: str | Path | Sequence[str | Path] | None = None,
                       speed: str | None = None, flare_free: dict[str, float] | None = None) -> dict[str, Any]:
    """The flare card's context from measured ``scores`` and the ``noop`` baseline, each a
    generator name ("optics", "drawn") -> ``lightsr.evaluate.FlareScores`` of remove_flare's
    default method on that generator's validation frames. ``flare_free``: {"mean", "worst"} PSNR
    (dB) of the output against the input on photos without flare that no flare model trained on,
    and "photos", how many (bench_flare.py).

    ``run_dir``: the training run, or the runs of a staged recipe in order (as for SR cards).
    """
    rows, evals = [], []
    streaks = trained_on_streaks(run_dir)
    labels = {**FLARE_SETS, "streaks": FLARE_SETS["streaks"] + (" (trained on)" if streaks else " (never trained on)")}
    for g, s in scores.items():
        n = noop[g]
        rows.append({"set": labels.get(g, g), "no-op PSNR / SSIM": f"{n.psnr:.2f} / {n.ssim:.4f}",
                     "this model PSNR / SSIM": f"**{s.psnr:.2f} / {s.ssim:.4f}**",
                     "gain": f"**{s.psnr - n.psnr:+.2f}**",
                     "glare PSNR": f"{n.glare_psnr:.2f} -> {s.glare_psnr:.2f}",
                     "streak PSNR": f"{n.streak_psnr:.2f} -> {s.streak_psnr:.2f}",
                     "background PSNR": f"{s.background_psnr:.2f}", "worst image": f"{s.worst_gain:+.2f}",
                     "lamps kept": "" if math.isnan(s.lamps_kept) else f"{s.lamps_kept:.0%}"})
        evals += _psnr_ssim_results(s.psnr, s.ssim, task_name="lens-flare removal", dataset_type="synthetic-flare",
                                    dataset_name=f"lightsr synthetic flare validation ({FLARE_SETS.get(g, g)})")
    count = next(iter(scores.values())).images if scores else 0
    context: dict[str, Any] = {
        "results": rows,
        "results_intro": (f"{len(scores)} sets of {count} fixed, seeded whole frames ({long_side} px long side) "
                          "made from held-out photos that were never trained on, one per flare generator"
                          + _set_notes(scores, streaks)
                          + ". RGB "
                          "PSNR/SSIM of the whole image through `lightsr.flare.remove_flare` (default method: "
                          "lamps kept, the veil the model leaves read from the darkest pixels in bands of distance "
                          "from the lamps where it saw flare over most of the frame, and the thin "
                          "straight streaks through the lamps, the spikes of starbursts and the "
                          "ghosts on their lines through the centre and the bloom round disc-shaped lamps, which the "
                          "model leaves, taken out by `lightsr.rays`, `lightsr.ghosts` and `lightsr.glow`, steps "
                          "built looking at the streak, hand-drawn, optics and shimmer generators' frames); glare: "
                          "pixels whose flare layer is >= 64/255; streak: 4/255 to 64/255 "
                          "(streaks, ghosts, haze); background: under 1/255, not saturated in the target and "
                          f"not within {LAMP_MARGIN} px of a pixel that is (the lamp's soft edge), where any change "
                          "is harm; worst "
                          "image: the lowest per-image gain; lamps kept: the share of lamp pixels (clipped in the "
                          "target and the input) that stay clipped in the output, pooled."),
        "eval_results": evals,
        "model_name": f"lightsr {model.architecture} flare removal",
    }
    if speed:
        context["speed"] = speed
    if flare_free:
        measured = (f"on {flare_free.get('photos', 'the held-out')} photos it never trained on, as they are (512 px, "
                    f"no flare added), the output stays at a mean "
                    f"{flare_free['mean']:.2f} dB PSNR from the input (a photo returned exactly counts as 99 dB, as "
                    f"every photo without a light source is), {flare_free['worst']:.2f} dB on the worst one")
        context["notes"] = (f"**Photos without flare** come back essentially unchanged: {measured}." if
                            flare_free["worst"] >= 50 else
                            f"**Photos without flare** are not always returned as they are: {measured} (clipped "
                            "daylight sky or highlights taken for glare). Keep an untouched copy of daytime photos, "
                            "or take out less (`remove_flare(..., strength=0.5)`, the app's strength slider).")
    if run_dir is not None:
        context["training"], context["reproduce"] = _training(
            run_dir, "python benchmarks/bench_flare.py   # re-measures this card's numbers")
        context["base_model"] = base_model(run_dir)
    return context


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
