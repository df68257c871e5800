"""Video super-resolution: quality against real HR frames, flicker, and end-to-end speed.

    python benchmarks/bench_video.py [--threads 2]

Quality clip: a slow pan (2 px/frame right, 1 px/frame down, 24 frames/s) over a real
photo of data/sr-train, 896x504 HR crops, so every HR frame is ground truth;
the input is each HR frame bicubic-downscaled x2 (448x252) or x4 (224x126) and encoded
with libx264 at CRF 12, as a video a user would have. For bicubic and each shipped model
at its scale: mean per-frame PSNR (Y, `scale` pixels shaved) against the HR frames, and a temporal
stability figure: the mean absolute difference between the output's and the ground
truth's frame-to-frame changes (Y, 0..255; lower is better, flicker raises it).

Speed clip: 120 frames that each model turns into 1280x720 (640x360 at x2, 320x180 at x4;
the same pan, resized, 24 frames/s, with a stereo AAC sound track; 12 frames for the slow
quality models) through ``upscale_video``
end to end (decode, model, H.264 encode at CRF 18, mux);
frames/s, each stage's busy time and the backend ``backend="auto"`` picked. The floor, timed
in the same run on the same clips: a bare PyAV loop that decodes, resizes with Pillow bicubic
and encodes the same way (no model).
Decode and encode run in their own threads, so their shares overlap the model's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from _report import ROOT, machine, write_section
from PIL import Image

import lightsr
from lightsr import backends, zoo
from lightsr.metrics import psnr, rgb_to_y
from lightsr.video import DEFAULT_CRF, DEFAULT_PRESET, upscale_video

PHOTO = ROOT / "data" / "sr-train" / "street_sun_bkgpqbvgorkjqzgp.jpg"


def pan_frames(photo: Image.Image, w: int, h: int, n: int) -> list[np.ndarray]:
    arr = np.asarray(photo.convert("RGB"))
    return [np.ascontiguousarray(arr[i: i + h, 2 * i: 2 * i + w]) for i in range(n)]


def encode(frames: list[np.ndarray], path: Path, crf: int, fps: int = 24, audio: bool = False) -> None:
    """An H.264 clip of ``frames``; ``audio``: with a 48 kHz stereo AAC track as long (a two-tone
    chord), which upscale_video copies as it would a real clip's sound."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "medium"})
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = out.add_stream("aac", rate=48000, options={"b": "128000"}) if audio else None  # before any packet
        if a is not None:
            a.layout = "stereo"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
        if a is not None:
            t = np.arange(48000 * len(frames) // fps) / 48000
            wave = (0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])).astype(np.float32)
            for k in range(0, wave.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format="fltp",
                                                layout="stereo")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


def bicubic_pipeline(src: Path, dst: Path, scale: int) -> float:
    """Frames/s of decode -> Pillow bicubic x``scale`` -> libx264 (upscale_video's default CRF and
    preset) -> mux, one plain loop: the floor a model's pipeline is set against."""
    t = time.perf_counter()
    n = 0
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        s = None
        for frame in c.decode(c.streams.video[0]):
            img = frame.to_image()
            big = img.resize((img.width * scale, img.height * scale), Image.BICUBIC)
            if s is None:
                s = out.add_stream("libx264", rate=24, options={"crf": str(DEFAULT_CRF), "preset": DEFAULT_PRESET})
                s.width, s.height, s.pix_fmt = big.width, big.height, "yuv420p"
            for p in s.encode(av.VideoFrame.from_image(big)):
                out.mux(p)
            n += 1
        for p in s.encode(None):
            out.mux(p)
    return n / (time.perf_counter() - t)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def quality(outs: list[np.ndarray], gts: list[np.ndarray], border: int) -> tuple[float, float]:
    p = float(np.mean([psnr(o, g, crop_border=border) for o, g in zip(outs, gts)]))
    yo = [rgb_to_y(o.astype(np.float64))[border:-border, border:-border, 0] for o in outs]
    yg = [rgb_to_y(g.astype(np.float64))[border:-border, border:-border, 0] for g in gts]
    flicker = float(np.mean([np.abs((yo[i + 1] - yo[i]) - (yg[i + 1] - yg[i])).mean() for i in range(len(yo) - 1)]))
    return p, flicker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=48)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    photo = Image.open(PHOTO)
    tmp = Path(tempfile.mkdtemp(prefix="lightsr-bench-video-"))
    hr = pan_frames(photo, 896, 504, args.frames)
    rows, models = [], []
    for scale in (2, 4):
        entries = [e for e in zoo.available("super-resolution") if e.scale == scale]
        if not entries:
            continue
        models += entries
        lr = [np.asarray(lightsr.bicubic_downscale(Image.fromarray(f), scale)) for f in hr]
        encode(lr, tmp / f"lr-x{scale}.mp4", crf=12)
        decoded = decode(tmp / f"lr-x{scale}.mp4")
        rows.append((f"bicubic x{scale}", scale, *quality(
            [np.asarray(lightsr.bicubic_upscale(Image.fromarray(f), scale)) for f in decoded], hr, scale)))
        for e in entries:
            model = zoo.get_model(e)
            upscale_video(tmp / f"lr-x{scale}.mp4", tmp / f"{e.name}.mp4", model, crf=12)
            rows.append((e.label, scale, *quality(decode(tmp / f"{e.name}.mp4"), hr, scale)))
            print(rows[-1])

    # speed: end to end, to 1280x720
    pan = (lambda fw: fw + fw[::-1])(pan_frames(photo, 896, 504, 60))  # there and back
    speed_rows, floor = [], {}
    for e in models:
        size = (1280 // e.scale, 720 // e.scale)
        clip = tmp / f"in-{size[0]}-{e.kind}.mp4"
        if not clip.exists():
            frames = [np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in pan]
            # quality models: 12 frames (well under 1 fps); with a sound track, copied through as a real clip's
            encode(frames if e.kind == "fast" else frames[:12], clip, crf=18, audio=True)
            floor[e.scale, e.kind == "fast"] = bicubic_pipeline(clip, tmp / "bicubic-720p.mp4", e.scale)
        model = zoo.get_model(e)
        net = backends.runner(model, None)  # the backend settled before the clock, as a server does once
        picked = backends.LABELS[backends.choice_of(model, net)]
        if isinstance(net, backends.OpenVINOModel):  # and video's uint8 planar graph compiled (start-up too)
            net.frames(np.zeros((1, 3, 16, 16), np.uint8), layout="NCHW")
        t = time.perf_counter()
        timings = upscale_video(clip, tmp / f"{e.name}-720p.mp4", model)  # the defaults: CRF and preset
        wall = time.perf_counter() - t
        speed_rows.append((e, size, timings, wall, picked))
        print(e.name, f"{timings.frames / wall:.1f} fps", picked)

    lines = [
        "## Video super-resolution (`benchmarks/bench_video.py`)",
        "",
        f"Quality: {args.frames} frames of a slow pan over a real photo (sr-train `{PHOTO.name}`), 896x504 HR "
        "frames as ground truth, input = bicubic x2 or x4 downscale encoded with libx264 CRF 12; output encoded "
        "at CRF 12 and decoded again before measuring. Machine: " + machine() + ".",
        "",
        "| method | scale | PSNR (Y) vs HR frames | temporal error (lower is better) |",
        "| --- | --- | --- | --- |",
    ]
    for label, scale, q, fl in rows:
        lines.append(f"| {label} | x{scale} | {q:.2f} dB | {fl:.3f} |")
    lines += [
        "",
        "Speed: to 1280x720 from 640x360 (x2) or 320x180 (x4), a clip with a stereo AAC sound track (copied "
        "through); 120 frames for fast models, 12 for quality ones; "
        f"H.264 CRF {DEFAULT_CRF} {DEFAULT_PRESET} (upscale_video's defaults), "
        "end to end (decode, model, encode, mux). "
        "Stage times are busy time in each stage; decode and encode run in their own threads and overlap the model. "
        "Backend: what `backend=\"auto\"` (the default) picked, settled (and compiled) before the clock. "
        "Floor: the same clip through a bare PyAV loop with Pillow bicubic instead of a model "
        "(decode, resize, encode the same way; video only), timed in this run.",
        "",
        "| model | input | frames/s end to end | floor: bicubic pipeline, frames/s | backend | model | decode | "
        "encode + mux |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e, (w, h), t, wall, picked in speed_rows:
        lines.append(f"| {e.label} | {w}x{h} | **{t.frames / wall:.1f}** | {floor[e.scale, e.kind == 'fast']:.1f} | "
                     f"{picked} | {1000 * t.model / t.frames:.0f} ms/frame | "
                     f"{1000 * t.decode / t.frames:.0f} ms/frame | {1000 * t.encode / t.frames:.0f} ms/frame |")
    lines += ["", "Reproduce: `python benchmarks/bench_video.py`."]
    write_section("video", "\n".join(lines))


if __name__ == "__main__":
    main()
