"""lightsr Space: flare removal, video super-resolution, and a comparison with bicubic.

Wiring only: every computation is a lightsr call. Models come from checkpoints/ (works
offline) or, with ``--hub-namespace NS`` / ``LIGHTSR_HUB_NAMESPACE=NS``, from the Hub
repos ``NS/<name>``. ``python app.py`` honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np

import lightsr
from lightsr import backends, zoo
from lightsr.compare import compare_with_bicubic
from lightsr.flare import has_light_source, remove_flare
from lightsr.imaging import alpha_of, save_image, to_rgb8
from lightsr.video import DEFAULT_MAX_FRAME_PIXELS, DEFAULT_MAX_SECONDS, upscale_video

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
REAL_FLARE = HERE / "data" / "flare-photos"  # night photos with real flare (public domain; data/flare-photos/README.md)
MAX_IMAGE_PIXELS = 16_000_000  # a 12 MP phone photo fits; bigger uploads are refused up front
MAX_COMPARE_PIXELS = 4_000_000  # the comparison keeps four full-size images in memory
ORIGINAL, LOW_RES = "It is the high-resolution original", "It is a low-resolution image"
WHOLE_FRAME, TILES = "Whole frame (recommended)", "Full-resolution tiles"
FLARE_WORK_SIZE = 512  # long side the whole-frame method sees the photo at (lightsr.flare "lowres", as trained)
# Results are written here; Gradio copies them into its own cache (swept by delete_cache) as a
# handler returns, so each call removes what earlier calls left here more than OUTPUT_TTL_S ago.
WORK = Path(tempfile.gettempdir()) / "lightsr-space"
OUTPUT_TTL_S = 600
CACHE_SWEEP = (600, 3600)  # gr.Blocks(delete_cache=): every 10 min, files older than 1 h
COMPUTE = "compute"  # the one concurrency group of every event: two cores run one job at a time


def uploaded_image(**kwargs) -> gr.Image:
    """A gr.Image whose handler receives the uploaded file untouched.

    gr.Image would decode the upload itself (a bomb-sized file included) and fail on a
    corrupt one with a generic message; lightsr.open_image refuses empty, truncated and
    oversized files with one clear line instead. Overriding preprocess on the instance
    (not by subclassing, which makes Gradio write a .pyi stub next to this file).
    """
    image = gr.Image(type="filepath", **kwargs)
    # a malformed API payload (no file in it) reads as no upload: the handler's one clear line
    image.preprocess = lambda payload: getattr(payload, "path", None)
    return image


def _labels(task: str) -> list[str]:
    return [e.label for e in zoo.available(task)]


def _model(task: str, **query):
    try:
        return zoo.get_model(zoo.find(task, **query))
    except lightsr.LightSRError as err:
        raise gr.Error(str(err)) from None


def _flare_models(label: str | None) -> list:
    """The model a flare label names, or an ensemble's models (the first is the model, the rest its ensemble)."""
    label = label or next(iter(zoo.choices("flare-removal")), None)
    for x in zoo.available_ensembles("flare-removal"):
        if x.label == label:
            try:
                return zoo.get_models(x)
            except lightsr.LightSRError as err:
                raise gr.Error(str(err)) from None
    return [_model("flare-removal", label=label)]


def _open(path: str | None, max_pixels: int):
    if not path:
        raise gr.Error("Upload an image first.")
    try:
        return lightsr.open_image(path, max_pixels=max_pixels)
    except lightsr.LightSRError as err:
        raise gr.Error(str(err).replace(str(path), Path(path).name)) from None


def _sweep() -> None:
    """Remove results earlier calls left in WORK more than OUTPUT_TTL_S ago (Gradio has its copies)."""
    now = time.time()
    if not WORK.is_dir():
        return
    for entry in WORK.iterdir():
        try:
            if now - entry.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:  # another worker removed it first
            pass


def _workdir(prefix: str) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    _sweep()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=WORK))


def _png(img) -> str:
    path = _workdir("image-") / "result.png"
    save_image(img, path)
    return str(path)


def _tiles(progress: gr.Progress, what: str):
    return lambda done, total: progress((done, total), desc=what, unit="tiles")


def deflare(image: str, model_label: str | None = None, method: str = WHOLE_FRAME, strength: float = 1.0,
            progress=gr.Progress()):
    """Remove lens flare (glow, streaks, ghosts) from a photo; the lamps themselves are kept.

    Args:
        image: the photo (up to 16 megapixels).
        model_label: a flare model or ensemble as listed in the app ("Pix2Pix + NF-ResUNet", "Pix2Pix" or
            "NF-ResUNet"); default the first.
        method: "Whole frame (recommended)" or "Full-resolution tiles".
        strength: the share of the flare found that is taken out, 0 to 1 (default 1, all of it).
    Returns:
        the input and the result for the before/after slider, and the full-resolution PNG.
    """
    img = _open(image, MAX_IMAGE_PIXELS)
    model, *ensemble = _flare_models(model_label)
    if ensemble and method == TILES:
        raise gr.Error("An ensemble runs on the whole frame only: choose the whole-frame processing, or one model.")
    rgb = to_rgb8(img)  # what remove_flare reads; the download keeps an alpha channel (remove_flare gives it back)
    if not has_light_source(np.asarray(rgb)):  # what remove_flare would find too: told here, and not scanned twice
        gr.Info("No light source in this photo (nothing is clipped white), so there is no lens flare to remove: "
                "it is returned unchanged.")
        same = rgb
        if (alpha := alpha_of(img)) is not None:  # the download as remove_flare gives it: the alpha kept
            same = rgb.copy()
            same.putalpha(alpha)
        return (rgb, rgb), _png(same)
    try:
        out = remove_flare(model, img, method="tiled" if method == TILES else "lowres", ensemble=ensemble,
                           work_size=FLARE_WORK_SIZE, strength=strength,
                           progress=_tiles(progress, "removing flare"))
    except lightsr.LightSRError as err:
        raise gr.Error(str(err)) from None
    return (rgb, out.convert("RGB")), _png(out)


def upscale(video: str, scale: int = 2, kind: str = "fast", progress=gr.Progress()):
    """Super-resolve a video x2 or x4; frame rate, timing and sound are kept (H.264 MP4 out).

    Args:
        video: the clip (up to 60 s and 720p).
        scale: 2 or 4.
        kind: "Fast" (real-time ECBSR), "Balanced" (SPAN-S) or "Quality" (RDN-light).
    Returns:
        the upscaled MP4.
    """
    if not video:
        raise gr.Error("Upload a video first.")
    try:
        scale = int(scale)
    except (TypeError, ValueError):
        raise gr.Error(f"scale must be 2 or 4, got {scale!r}") from None
    model = _model("super-resolution", scale=scale, kind=str(kind).lower())
    dst = str(_workdir("video-") / f"{Path(video).stem}-x{scale}.mp4")
    try:
        upscale_video(video, dst, model,
                      progress=lambda done, total: progress((done, total) if total else done,
                                                            desc="upscaling frames", unit="frames"))
    except lightsr.LightSRError as err:
        raise gr.Error(str(err).replace(str(video), Path(video).name)) from None
    return dst


def compare(image: str, what: str = ORIGINAL, model_label: str | None = None, progress=gr.Progress()):
    """Super-resolve an image and compare it with bicubic, with PSNR/SSIM against the original.

    Args:
        image: the image (up to 4 megapixels).
        what: "It is the high-resolution original" (it is downscaled first, so the result can be
            scored against it) or "It is a low-resolution image" (upscaled as it is; no scores).
        model_label: a super-resolution model as listed in the app; default the first.
    Returns:
        bicubic and model images for the slider, zoomed crops, and the metrics table.
    """
    img = _open(image, MAX_COMPARE_PIXELS)
    model = _model("super-resolution", label=model_label)
    try:
        c = compare_with_bicubic(model, img, mode="original" if what == ORIGINAL else "low-res",
                                 progress=_tiles(progress, "upscaling"))
    except lightsr.LightSRError as err:
        raise gr.Error(str(err)) from None
    rows = [[m["method"], m["PSNR (dB)"], m["SSIM"]] for m in c.metrics]
    return (c.bicubic, c.model), c.crops(), rows


def build() -> gr.Blocks:
    flare_labels, sr_labels = zoo.choices("flare-removal"), _labels("super-resolution")
    sr_entries = zoo.available("super-resolution")
    scales = sorted({e.scale for e in sr_entries}) or [2]
    kinds = [k.capitalize() for k in zoo.KINDS if any(e.kind == k for e in sr_entries)] or ["Fast"]
    with gr.Blocks(title="lightsr", delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown("# lightsr\nLight image restoration on 2 CPU cores: lens-flare removal and "
                    "super-resolution. [Models, cards and code](https://github.com/lightsr/lightsr).")
        with gr.Tabs():
            with gr.Tab("Flare removal", id="flare", elem_id="tab-flare"):
                if not flare_labels:
                    gr.Markdown("**No flare-removal model is shipped yet**; this tab runs once one is in "
                                "`checkpoints/`.")
                with gr.Row():
                    with gr.Column():
                        f_in = uploaded_image(label="Photo with flare", sources=["upload", "clipboard"])
                        f_model = gr.Dropdown(flare_labels, value=flare_labels[0] if flare_labels else None,
                                              label="Model")
                        f_method = gr.Radio([WHOLE_FRAME, TILES], value=WHOLE_FRAME, label="Processing", info=(
                            "Whole frame: the model sees the whole photo at 512 px, where a streak or a ghost "
                            "is seen whole (as it was trained), and the flare it finds is subtracted at full "
                            "resolution; seconds on a 12 MP photo. Tiles run the model over the full-resolution "
                            "photo piece by piece: slower, and it sees flare at a scale it was not trained at "
                            "(BENCHMARKS.md compares both); tiles take one model, not the ensemble."))
                        f_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength", info=(
                            "How much of the flare found is taken out (1: all of it). Lower it where the models "
                            "take too much, as they can on sunlit highlights in daylight; the lamps stay either way."))
                        f_btn = gr.Button("Remove flare", variant="primary", interactive=bool(flare_labels))
                    with gr.Column():
                        f_slider = gr.ImageSlider(type="pil", format="png", label="Before / after")
                        f_file = gr.File(label="Full-resolution PNG")
                f_btn.click(deflare, [f_in, f_model, f_method, f_strength], [f_slider, f_file], api_name="deflare",
                            concurrency_limit=1, concurrency_id=COMPUTE)
                flare_examples = sorted(str(p) for p in (EXAMPLES / "flare").glob("*.png"))
                if flare_examples and flare_labels:
                    gr.Examples(flare_examples, inputs=f_in, outputs=[f_slider, f_file], fn=deflare,
                                cache_examples=True, cache_mode="lazy",
                                label="Examples (made for lightsr with synthetic flare, CC0)")
                real_examples = sorted(str(p) for p in REAL_FLARE.glob("*.jpg"))
                if real_examples and flare_labels:  # no clean version exists: what a lens really draws, to look at
                    gr.Examples(real_examples, inputs=f_in, outputs=[f_slider, f_file], fn=deflare,
                                cache_examples=True, cache_mode="lazy",
                                label="Real night photos with real flare (public domain: SpaceX, Derek Jensen)")

            with gr.Tab("Video super-resolution", id="video", elem_id="tab-video"):
                gr.Markdown(f"Limits: up to **{DEFAULT_MAX_SECONDS:g} s** and **{DEFAULT_MAX_FRAME_PIXELS:,} pixels "
                            "per frame** (720p) of input. Sound and frame rate are kept; output is H.264 MP4.")
                with gr.Row():
                    with gr.Column():
                        v_in = gr.Video(label="Video", sources=["upload"])
                        v_scale = gr.Radio(scales, value=scales[0], label="Scale")
                        v_kind = gr.Radio(kinds, value=kinds[0], label="Model")
                        v_btn = gr.Button("Upscale", variant="primary", interactive=bool(sr_entries))
                    v_out = gr.Video(label="Upscaled", autoplay=False, elem_id="video-out")
                v_btn.click(upscale, [v_in, v_scale, v_kind], v_out, api_name="upscale_video",
                            concurrency_limit=1, concurrency_id=COMPUTE)
                clips = sorted(str(p) for p in (EXAMPLES / "video").glob("*.mp4"))
                if clips and sr_entries:
                    gr.Examples(clips, inputs=v_in, outputs=v_out, fn=upscale, cache_examples=True,
                                cache_mode="lazy", label="Example (a 3 s clip made for lightsr, CC0)")

            with gr.Tab("Compare with bicubic", id="compare", elem_id="tab-compare"):
                with gr.Row():
                    with gr.Column():
                        c_in = uploaded_image(label="Image", sources=["upload", "clipboard"])
                        c_what = gr.Radio([ORIGINAL, LOW_RES], value=ORIGINAL, label="What is it?")
                        c_model = gr.Dropdown(sr_labels, value=sr_labels[0] if sr_labels else None, label="Model")
                        c_btn = gr.Button("Compare", variant="primary", interactive=bool(sr_labels))
                        c_table = gr.Dataframe(headers=["method", "PSNR (dB)", "SSIM"], label=(
                            "Against the original: Y channel, border of `scale` pixels shaved (the SR protocol)"),
                            interactive=False, elem_id="metrics")
                    with gr.Column():
                        c_slider = gr.ImageSlider(type="pil", format="png", label="Bicubic / model")
                        c_crops = gr.Gallery(label="Same region, zoomed (bicubic, model, original)", columns=3,
                                             format="png", height=260)
                c_btn.click(compare, [c_in, c_what, c_model], [c_slider, c_crops, c_table], api_name="compare",
                            concurrency_limit=1, concurrency_id=COMPUTE)
                examples = sorted(str(p) for p in EXAMPLES.glob("*.png")) if EXAMPLES.is_dir() else []
                if examples and sr_labels:
                    gr.Examples(examples, inputs=c_in, outputs=[c_slider, c_crops, c_table], fn=compare,
                                cache_examples=True, cache_mode="lazy", label="Examples (made for lightsr, CC0)")
    for fn in demo.fns.values():  # a lazily cached example computes on its first click: same group
        if getattr(fn.fn, "__name__", "") == "load_example_output":
            fn.concurrency_id, fn.concurrency_limit = COMPUTE, 1
    demo.queue(default_concurrency_limit=1, max_size=16)  # one job at a time (COMPUTE), a bounded line
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hub-namespace", help="load models from the Hub repos NAMESPACE/<name>")
    args = p.parse_args()
    if args.hub_namespace:
        os.environ["LIGHTSR_HUB_NAMESPACE"] = args.hub_namespace
    backends.decline_telemetry()  # no usage statistics to Intel from a hosted demo, unless its owner opted in
    # every model's backend settled in the background (on a Space: compiled and int8-quantized once, seconds per
    # model), so the first request of each does not wait for it
    threading.Thread(target=zoo.prepare, name="lightsr-prepare", daemon=True).start()
    build().launch(max_file_size="200mb", footer_links=["api", "gradio"])


if __name__ == "__main__":
    main()
