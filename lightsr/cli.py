"""The ``lightsr`` command line: upscale, deflare, eval, info, push, video, frames.

Every user error is one line on stderr and exit status 2; no partial output file is ever
left behind (outputs are written to a temporary file and renamed at the end). ``upscale``
and ``deflare`` also take a folder: every image in it goes to the output folder under its
own name, images already there are skipped, and a file that fails is listed at the end
(exit status 1) without stopping the others.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from .errors import LightSRError

__all__ = ["main", "resolve_model"]

def _default_model(task: str, kind: str) -> str:
    """The shipped model a command uses without --model: the catalogue's first x2 ``kind`` of that task
    (deflare's default is ``lightsr.zoo.default_names``)."""
    from .zoo import CATALOGUE

    return next(e.name for e in CATALOGUE if e.task == task and e.kind == kind and e.scale == 2)


def resolve_model(name: str, *, task: str | None = None, revision: str | None = None):
    """Load ``name`` (a model folder, a Hub repo id or a shipped name): see ``lightsr.zoo.resolve``."""
    from .zoo import resolve

    return resolve(name, task=task, revision=revision)


def _progress_bar(desc: str):
    bar = tqdm(desc=desc, unit="tile", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _models(args, task: str) -> list:
    """The model ``--model`` names, then deflare's ``--ensemble`` models, loaded before any image is read.
    deflare without either runs the task's default (``lightsr.zoo.default_names``: an ensemble), and
    ``--ensemble`` alone joins the default's first model."""
    from .zoo import default_names

    ensemble = getattr(args, "ensemble", None) or []
    first = [args.model] if args.model else default_names(task)[: 1 if ensemble else None]
    names = first + ensemble
    return [resolve_model(name, task=task, revision=args.revision if i == 0 else None) for i, name in enumerate(names)]


def _process(models: list, img, args, task: str, progress=None):
    import lightsr
    from .flare import remove_flare

    model, *ensemble = models
    if task == "flare-removal":
        return remove_flare(model, img, method=args.method, keep_sources=not args.no_keep_sources, progress=progress,
                            backend=args.backend, precision=args.precision, rays=not args.no_rays, ensemble=ensemble,
                            strength=args.strength)
    tile = None if args.tile == 0 else (args.tile or "auto")
    return lightsr.enhance(model, img, tile=tile, overlap=args.overlap, progress=progress, backend=args.backend,
                           precision=args.precision, self_ensemble=args.self_ensemble)


def _share(text: str) -> float:
    """argparse type: a number from 0 to 1 (told before any model loads, not once per image of a folder)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def _run_image(args, task: str) -> int:
    import lightsr
    from .imaging import check_output_path, save_image

    if Path(args.input).is_dir():
        return _run_folder(args, task)
    check_output_path(args.output)
    models = _models(args, task)
    img = lightsr.open_image(args.input)
    out = _process(models, img, args, task, progress=_progress_bar(task))
    save_image(out, args.output)
    print(f"{args.input} ({img.width}x{img.height}) -> {args.output} ({out.width}x{out.height})")
    return 0


def _run_folder(args, task: str) -> int:
    """Every image of the input folder into the output folder, same names; done ones skipped."""
    import lightsr
    from .imaging import check_output_path, image_files, save_image

    src, dst = Path(args.input), Path(args.output)
    files = image_files(src)
    if dst.exists() and not dst.is_dir():
        raise LightSRError(f"{dst}: the input is a folder, so the output must be a folder too")
    if not dst.parent.resolve().is_dir():
        raise LightSRError(f"{dst}: folder '{dst.parent}' does not exist")
    if dst.resolve() == src.resolve():
        raise LightSRError(f"{dst}: the output folder must not be the input folder")
    models = _models(args, task)
    todo = [f for f in files if not (dst / f.name).exists()]
    dst.mkdir(exist_ok=True)
    failed: list[tuple[str, str]] = []
    for f in tqdm(todo, desc=task, unit="image"):
        try:
            check_output_path(dst / f.name)
            save_image(_process(models, lightsr.open_image(f), args, task), dst / f.name)
        except LightSRError as err:
            failed.append((f.name, str(err)))
    print(f"{src}: {len(todo) - len(failed)} written to {dst}, {len(files) - len(todo)} already there, "
          f"{len(failed)} failed")
    for name, err in failed:
        print(f"  failed: {name}: {err}", file=sys.stderr)
    return 1 if failed else 0


def cmd_upscale(args) -> int:
    return _run_image(args, "super-resolution")


def cmd_deflare(args) -> int:
    return _run_image(args, "flare-removal")


def cmd_eval(args) -> None:
    from .backends import runner
    from .evaluate import evaluate_sr
    from .inference import self_ensemble

    model = resolve_model(args.model, task="super-resolution", revision=args.revision)
    net = self_ensemble(runner(model, "torch"), args.self_ensemble)
    label = args.model + (f" (self-ensemble x{args.self_ensemble})" if args.self_ensemble > 1 else "")
    print(f"| data | scale | images | bicubic PSNR / SSIM | {label} PSNR / SSIM |")
    print("| --- | --- | --- | --- | --- |")
    for folder in args.data:
        r = evaluate_sr(model, folder, net=net)
        print(f"| {r.dataset} | x{r.scale} | {r.images} | {r.bicubic_psnr:.2f} / {r.bicubic_ssim:.4f} "
              f"| {r.psnr:.2f} / {r.ssim:.4f} |")


def cmd_info(args) -> None:
    import json

    import lightsr
    from .zoo import CATALOGUE, CHECKPOINTS

    if args.model in lightsr.list_models():
        model = lightsr.create_model(args.model)
    elif "/" not in args.model and not Path(args.model).exists() and args.model not in {e.name for e in CATALOGUE} \
            and not (CHECKPOINTS / args.model).is_dir():
        raise LightSRError(f"unknown model '{args.model}'; registered names: {', '.join(lightsr.list_models())}")
    else:
        model = resolve_model(args.model, revision=args.revision)
    d = lightsr.describe(model)
    print(f"architecture: {d['architecture']}")
    print(f"task: {d['task']}")
    print(f"scale: {d['scale']}")
    print(f"parameters: {d['parameters']:,} ({d['inference_parameters']:,} at inference)")
    print(f"GFLOPs per input megapixel: {d['gflops_per_megapixel']:.1f}")
    print(f"config: {json.dumps(d['config'])}")


def cmd_push(args) -> None:
    from .hub import push_folder

    oid = push_folder(args.folder, args.repo_id, message=args.message, private=args.private or None)
    print(f"pushed {args.folder} to {args.repo_id} ({oid[:10]})")


def cmd_video(args) -> None:
    from .video import upscale_video

    model = resolve_model(args.model, task="super-resolution", revision=args.revision)
    bar = tqdm(desc="video", unit="frame")

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        upscale_video(args.input, args.output, model, crf=args.crf, progress=progress, backend=args.backend,
                      precision=args.precision)
    finally:
        bar.close()
    print(f"{args.input} -> {args.output}")


def cmd_export(args) -> None:
    from .export import export

    model = resolve_model(args.model, revision=args.revision)
    path = export(model, args.output, args.format)
    print(f"{args.model} -> {path}" + (f" (+ {path.with_suffix('.bin').name})" if path.suffix == ".xml" else ""))


def cmd_frames(args) -> None:
    from .video import export_frames

    n = export_frames(args.video, args.folder, every=args.every)
    print(f"wrote {n} frames to {args.folder}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .zoo import default_names

    p = argparse.ArgumentParser(prog="lightsr", description="Light image-restoration models.")
    p.add_argument("--version", action="version", version=f"lightsr {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details (and show tracebacks)")
    sub = p.add_subparsers(dest="command", required=True)

    def backend_opt(sp):
        sp.add_argument("--backend", choices=["auto", "torch", "openvino"], default=None,
                        help="inference backend (default: $LIGHTSR_BACKEND, else auto: the fastest of PyTorch, "
                             "OpenVINO fp32 and, where accurate, OpenVINO bf16 or int8 for this model on this "
                             "machine, timed once)")
        sp.add_argument("--precision", choices=["fp32", "bf16", "int8"], default=None,
                        help="OpenVINO precision (default: fp32 for --backend openvino; for super-resolution "
                             "auto weighs bf16 and int8 where they agree with fp32); flare removal takes fp32 or bf16")

    def ensemble_opt(sp):
        sp.add_argument("--self-ensemble", type=int, choices=[1, 2, 4, 8], default=1, metavar="N",
                        help="average N (1, 2, 4 or 8) flipped and transposed passes: N times the time for a "
                             "little more fidelity (BENCHMARKS.md measures x8 per model; default 1)")

    def model_opts(sp, default: str | None, shown: str | None = None):
        sp.add_argument("--model", default=default,
                        help="model folder, Hub repo id, or the name of a folder in checkpoints/ "
                             f"(default: {shown or default})")
        sp.add_argument("--revision", help="Hub branch, tag or commit")

    for name, fn, helptext, default in (
            ("upscale", cmd_upscale, "super-resolve an image, or every image of a folder",
             _default_model("super-resolution", "quality")),
            ("deflare", cmd_deflare, "remove lens flare from a photo, or every photo of a folder", None)):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("input", help="an image, or a folder of images")
        sp.add_argument("output", help="the output image (its extension picks the format), or a folder for a folder "
                                       "(same file names; images already there are skipped)")
        model_opts(sp, default, shown=None if default else " with --ensemble ".join(default_names("flare-removal")))
        backend_opt(sp)
        if name == "upscale":  # deflare's tiles follow from --method
            sp.add_argument("--tile", type=int, help="tile side in input pixels (0: whole image; default: auto)")
            sp.add_argument("--overlap", type=int, help="context pixels around tiles (default: the model's)")
            ensemble_opt(sp)
        else:
            sp.add_argument("--method", choices=["lowres", "tiled"], default="lowres",
                            help="lowres (default): flare estimated on the whole photo at 512 px, as the models "
                                 "are trained, and subtracted at full resolution; tiled: full-resolution tiles")
            sp.add_argument("--strength", type=_share, default=1.0,
                            help="the share of the flare found that is taken out, 0 to 1 (default 1: all of it); "
                                 "lower is a lighter touch where the models take too much (sunlit daylight)")
            sp.add_argument("--no-keep-sources", action="store_true",
                            help="do not blend the lamps (lightsr.flare.lamp_mask) back from the input")
            sp.add_argument("--ensemble", nargs="+", metavar="MODEL",
                            help="lowres: further flare models (folders, Hub ids or shipped names) whose estimates "
                                 "are averaged with --model's (without --model: with the default's first model); "
                                 "the default is --model pix2pix-flare --ensemble nf-resunet-flare, and "
                                 "--model alone runs that model alone")
            sp.add_argument("--no-rays", action="store_true",
                            help="lowres: leave the thin straight streaks through the lamps, the spikes of "
                                 "starbursts and the ghosts (lightsr.rays, lightsr.ghosts) as the model leaves them")
        sp.set_defaults(fn=fn)

    sp = sub.add_parser("eval", help="PSNR/SSIM against bicubic in the standard SR protocol")
    model_opts(sp, _default_model("super-resolution", "quality"))
    sp.add_argument("--data", nargs="+", required=True, help="folders of HR images")
    ensemble_opt(sp)
    sp.set_defaults(fn=cmd_eval)

    sp = sub.add_parser("info", help="architecture, parameters and GFLOPs of a model")
    sp.add_argument("model", help="registered name, model folder or Hub repo id")
    sp.add_argument("--revision")
    sp.set_defaults(fn=cmd_info)

    sp = sub.add_parser("push", help="upload a model folder (config, safetensors, card) to the Hub")
    sp.add_argument("folder", help="a model folder: config.json, model.safetensors, README.md")
    sp.add_argument("repo_id", help="namespace/name on the Hub")
    sp.add_argument("--private", action="store_true")
    sp.add_argument("--message", help="commit message")
    sp.set_defaults(fn=cmd_push)

    sp = sub.add_parser("video", help="super-resolve a video (H.264 out, audio kept)")
    sp.add_argument("input", help="a video file (any container and codec FFmpeg reads)")
    sp.add_argument("output", help="the output .mp4")
    model_opts(sp, _default_model("super-resolution", "fast"))
    sp.add_argument("--crf", type=int, default=18, help="x264 quality, 0 (lossless) .. 51")
    backend_opt(sp)
    sp.set_defaults(fn=cmd_video)

    sp = sub.add_parser("export", help="write a model as ONNX, OpenVINO IR (fp32, or int8-quantized), or (ECBSR) an "
                                       "SRVGGNetCompact state dict for spandrel/chaiNNer/ComfyUI")
    sp.add_argument("model", help="model folder, Hub repo id, or the name of a folder in checkpoints/")
    sp.add_argument("output", help="the file to write (.onnx, .xml with its .bin beside it, or .safetensors)")
    sp.add_argument("--format", choices=["onnx", "openvino", "openvino-int8", "compact"], required=True)
    sp.add_argument("--revision", help="Hub branch, tag or commit")
    sp.set_defaults(fn=cmd_export)

    sp = sub.add_parser("frames", help="export frames of a video as PNG")
    sp.add_argument("video", help="a video file")
    sp.add_argument("folder", help="where the PNG frames go (made if missing, only once a frame is read)")
    sp.add_argument("--every", default="1s", help="interval: '1s', '0.5s' or a frame count like '10'")
    sp.set_defaults(fn=cmd_frames)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        code = args.fn(args)
    except LightSRError as err:
        if args.verbose:
            raise
        print(f"lightsr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lightsr {args.command}: interrupted", file=sys.stderr)
        return 130
    return code or 0
