"""Small generated media for tests: clips with a moving pattern and a sine-wave audio track."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def make_clip(path, *, w=64, h=48, frames=10, fps=10, audio: str | None = "aac", sample_rate=44100,
              pts: list[int] | None = None, rotation: int | None = None, pix_fmt="yuv420p") -> None:
    """Write an H.264 clip; ``pts`` (in 1/fps units) makes it variable-frame-rate."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.codec_context.time_base = Fraction(1, fps * 10)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream(audio, rate=sample_rate)
            a.layout = "mono"
        stamps = pts if pts is not None else list(range(frames))
        for i, p in enumerate(stamps):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, :, 0] = (i * 20) % 255
            img[h // 4:, (i * 3) % w:, 1] = 200  # a moving edge
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = p * 10
            f.time_base = Fraction(1, fps * 10)
            for packet in vs.encode(f):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if a is not None:
            seconds = (stamps[-1] + 1) / fps
            n = int(sample_rate * seconds)
            wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate)
            fmt = "s16" if audio == "pcm_s16le" else "fltp"
            for k in range(0, n, 1024):
                part = wave[k:k + 1024]
                arr = (part * 32767).astype(np.int16)[None] if fmt == "s16" else part.astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
                af.sample_rate, af.pts = sample_rate, k
                for packet in a.encode(af):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)


def make_audio_only(path, seconds=1.0, sample_rate=44100) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
        n = int(seconds * sample_rate)
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, min(1024, n - k)), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, k
            for packet in a.encode(af):
                out.mux(packet)
        for packet in a.encode(None):
            out.mux(packet)


def stream_facts(path) -> dict:
    """What a player sees: sizes, frame pts (seconds), durations of the streams."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(f.time) for f in c.decode(v)]
    with av.open(str(path)) as c:
        audio = None
        if c.streams.audio:
            s = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(s))
            audio = {"codec": s.codec_context.name, "seconds": samples / s.codec_context.sample_rate}
        v = c.streams.video[0]
        return {"width": v.codec_context.width, "height": v.codec_context.height, "pix_fmt": v.codec_context.pix_fmt,
                "codec": v.codec_context.name, "times": times, "audio": audio}
