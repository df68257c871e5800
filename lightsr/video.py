"""Video super-resolution with PyAV: streamed, audio kept, timestamps kept, atomic output.

``upscale_video`` decodes frames one by one (memory does not grow with the video's
length), runs them through a model in small batches, and encodes H.264 (libx264,
yuv420p in BT.709 limited range, tagged as such, even dimensions, ``+faststart``) with every
frame's original timestamp, so the frame rate, including a variable one, is unchanged. Input
is read with the matrix its stream is tagged with; untagged, with the one players guess (BT.709
at HD sizes, BT.601 below), so the output keeps the colours the input showed.
Audio is copied when browsers play it inside MP4 (AAC, MP3, Opus) and re-encoded to AAC
otherwise. Rotation metadata is applied to the pixels, so the output is upright everywhere.

Decoding, the model and encoding overlap: a reader thread decodes ahead and a writer
thread converts, encodes and muxes behind while the main thread runs the model (PyAV and
torch both release the GIL in their native code). Frames travel as planar RGB (FFmpeg's
gbrp, 3 x H x W), the layout the model takes and gives: no transpose on either side of it
(on ecbsr-x2 with OpenVINO int8, 640x360 -> 720p, that took the model stage from 35 to
31 ms a frame and the whole pipeline from 27 to 31 frames/s, bit-identical output).

Limits are checked before any work, and the result is written to a temporary file that
is renamed into place only when complete.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .backends import OpenVINOModel, runner
from .errors import LightSRError

try:
    import av
    from av.video.reformatter import ColorRange, Colorspace
except ImportError:  # the "video" extra: the rest of lightsr works without PyAV
    raise LightSRError("video needs PyAV: pip install 'lightsr[video]' (or pip install av)") from None
from .models.base import LightSRModel
from .imaging import save_image

__all__ = ["VideoInfo", "probe_video", "upscale_video", "sample_frames", "export_frames", "Timings"]


BROWSER_AUDIO = {"aac", "mp3", "opus"}
DEFAULT_MAX_SECONDS = 60.0  # a 2-core Space: a minute of 640x360 x2 is a few minutes of work
DEFAULT_MAX_FRAME_PIXELS = 1280 * 720  # input frame size limit (720p); larger input is refused
# x264 at CRF 18. superfast, not veryfast: once the model ran in int8, the encoder was a third of the work, and on
# ecbsr-x2 640x360 -> 720p (this project's Xeon, 2 threads, side by side) superfast ran 26.8 fps end to end against
# 22.8 for veryfast, closer to the lossless output (Y-PSNR 45.06 against 43.70 dB) at 1.8x the bitrate
DEFAULT_CRF, DEFAULT_PRESET = 18, "superfast"


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float | None
    duration: float | None
    frames: int | None
    audio_codec: str | None


@dataclass
class Timings:
    """Seconds spent in each stage (decode and encode run in their own threads)."""

    decode: float = 0.0
    model: float = 0.0
    encode: float = 0.0
    total: float = 0.0
    frames: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.total if self.total else 0.0


def _open(src: str | os.PathLike):
    path = Path(src)
    if not path.is_file():
        raise LightSRError(f"{src}: no such file")
    if path.stat().st_size == 0:
        raise LightSRError(f"{src}: the file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise LightSRError(f"{src}: not a video file FFmpeg can read ({err.strerror or err})") from None
    kind, what = container.format.name, container.format.long_name
    still = kind in ("image2", "image2pipe") or kind.endswith("_pipe")  # FFmpeg reads a still as a one-frame video
    still |= kind == "gif" and bool(container.streams.video) and container.streams.video[0].frames == 1
    if still:
        container.close()
        raise LightSRError(f"{src}: a still image ({what}), not a video: upscale it as an image")
    return container


def probe_video(src: str | os.PathLike) -> VideoInfo:
    """Size, rate, duration, frame count (None when the container does not say) and audio codec."""
    with _open(src) as container:
        return _info(container, src)


def _info(container, src) -> VideoInfo:
    if not container.streams.video:
        kind = "audio-only" if container.streams.audio else "without a video stream"
        raise LightSRError(f"{src}: the file is {kind}; a video is needed")
    v = container.streams.video[0]
    fps = float(v.average_rate or v.guessed_rate or 0) or None
    duration = None
    if v.duration is not None and v.time_base:
        duration = float(v.duration * v.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return VideoInfo(v.codec_context.width, v.codec_context.height, fps, duration, v.frames or None, audio)


_AVCOL_SPC_UNSPECIFIED = 2


def _source_matrix(frame: av.VideoFrame):
    """The YUV matrix to read ``frame`` with: its own tag, else what players guess for an untagged
    stream (mpv's rule; VLC's is alike): BT.709 at HD sizes (1280 wide or over 576 lines), BT.601
    below. Read so, the frames are the colours the user saw when playing the input."""
    if frame.colorspace != _AVCOL_SPC_UNSPECIFIED or frame.format.name.startswith(("rgb", "bgr", "gbr")):
        return None  # tagged (or RGB already): PyAV reads the frame's own tag
    return Colorspace.ITU709 if frame.width >= 1280 or frame.height > 576 else Colorspace.ITU601


def _frame_array(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as upright RGB uint8 (H, W, 3): rotation metadata applied to the pixels."""
    rgb = frame.reformat(format="rgb24", src_colorspace=_source_matrix(frame)).to_ndarray()
    return _upright(rgb, frame, axes=(0, 1))


def _upright(arr: np.ndarray, frame: av.VideoFrame, axes: tuple[int, int]) -> np.ndarray:
    """``arr``, the pixels of ``frame`` with height and width on ``axes``, turned by the frame's
    rotation metadata. FFmpeg's rotation is counter-clockwise in degrees; np.rot90 turns
    counter-clockwise too."""
    rot = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    return np.ascontiguousarray(np.rot90(arr, k=rot // 90, axes=axes)) if rot else arr


# gbrp, FFmpeg's planar RGB, stores its planes as G, B, R: R, G and B are its planes 2, 0 and 1, and its
# planes hold RGB's channels 1, 2 and 0
_GBRP_RGB, _RGB_GBRP = (2, 0, 1), (1, 2, 0)
_AVCOL_BT709 = 1  # FFmpeg's AVCOL_SPC_BT709, AVCOL_PRI_BT709 and AVCOL_TRC_BT709 (all 1)


def _frame_planes(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as upright planar RGB uint8 (3, H, W), what the model takes as it is (no
    transpose anywhere): rotation metadata applied to the pixels."""
    rgb = frame.reformat(format="gbrp", src_colorspace=_source_matrix(frame))
    planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in rgb.planes]
    return _upright(np.stack([planes[i] for i in _GBRP_RGB]), frame, axes=(1, 2))


def _planes_frame(arr: np.ndarray) -> av.VideoFrame:
    """Planar RGB uint8 (3, H, W) as a gbrp VideoFrame (x264 gets it converted to yuv420p)."""
    _, h, w = arr.shape
    frame = av.VideoFrame(w, h, "gbrp")
    for plane, i in zip(frame.planes, _RGB_GBRP):
        np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w] = arr[i]
    return frame


def _check_limits(info: VideoInfo, src, max_seconds: float | None, max_pixels: int | None) -> None:
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise LightSRError(f"{src}: the video is {info.duration:.1f} s long, over the limit of {max_seconds:g} s")
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise LightSRError(f"{src}: {info.width}x{info.height} frames are over the limit of {max_pixels:,} pixels "
                           "per frame")


_END = object()


def _reader(container, vstream, astream, frames_q: queue.Queue, audio_q: list, timings: Timings,
            stop: threading.Event) -> None:
    """Demux; decode video frames into ``frames_q``; keep audio packets/frames in ``audio_q``."""
    try:
        streams = [s for s in (vstream, astream) if s is not None]
        t = time.perf_counter()
        for packet in container.demux(*streams):
            if stop.is_set():
                return
            if packet.stream is vstream:
                for frame in packet.decode():
                    arr = _frame_planes(frame)
                    timings.decode += time.perf_counter() - t
                    frames_q.put((frame.pts, frame.time, arr))
                    t = time.perf_counter()
            elif packet.dts is not None:
                audio_q.append(packet)
        frames_q.put(_END)
    except BaseException as err:  # noqa: BLE001 - handed to the main thread
        frames_q.put(err)


def upscale_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: LightSRModel,
    *,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    batch_size: int = 1,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_pixels: int | None = DEFAULT_MAX_FRAME_PIXELS,
    progress: Callable[[int, int | None], None] | None = None,
    backend: str | None = None,
    precision: str | None = None,
) -> Timings:
    """Super-resolve every frame of ``src`` with ``model`` and write an H.264 MP4 to ``dst``.

    ``backend``: "auto", "torch" or "openvino" (``lightsr.backends``; None reads
    ``$LIGHTSR_BACKEND``, default "auto"); ``precision``: "fp32", "bf16" or "int8" for OpenVINO
    (None: ``lightsr.backends.runner``'s default).

    ``batch_size`` 1 is the default: it measured fastest end to end on 2 cores with PyTorch
    (ECBSR x2, 640x360: 19.6 frames/s at batch 1 against 11.9 at batch 4), and no slower with
    OpenVINO int8 (23.8 / 23.5 / 24.8 frames/s at batch 1 / 2 / 4, within the noise).
    ``crf`` and ``preset``: libx264's (DEFAULT_PRESET's comment says why superfast).

    Output: ``model.scale`` times the size (cropped to even dimensions), same timestamps,
    audio copied (AAC/MP3/Opus) or re-encoded to AAC, ``+faststart``. ``progress(done,
    total)`` is called per frame (``total`` is None when the container has no frame count
    or duration). Raises ``LightSRError`` for unreadable input, audio-only files, videos
    over ``max_seconds`` or ``max_pixels`` per frame, and videos with no frames; nothing is
    left at ``dst`` on failure. Returns where the time went.
    """
    if not 0 <= crf <= 51:
        raise LightSRError(f"crf must be between 0 and 51, got {crf}")
    dst = Path(dst)
    if dst.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise LightSRError(f"{dst}: the output must be an .mp4 file")
    if not dst.parent.resolve().is_dir():
        raise LightSRError(f"{dst}: folder '{dst.parent}' does not exist")
    net = runner(model, backend, precision=precision)  # before any file is opened: a bad backend name fails first
    timings = Timings()
    start = time.perf_counter()
    container = _open(src)
    tmp = dst.with_name(f".{dst.name}.tmp{dst.suffix}")
    stop = threading.Event()
    try:
        info = _info(container, src)
        _check_limits(info, src, max_seconds, max_pixels)
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        astream = container.streams.audio[0] if container.streams.audio else None
        total = info.frames or (round(info.duration * info.fps) if info.duration and info.fps else None)
        frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
        audio_packets: list = []
        reader = threading.Thread(target=_reader, args=(container, vstream, astream, frames_q, audio_packets,
                                                        timings, stop), daemon=True)
        reader.start()
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            writer = _Writer(out, vstream, astream, audio_packets, scale=model.scale, crf=crf, preset=preset,
                             timings=timings)
            done = _transcode(net, next(model.parameters()).device, frames_q, writer, batch_size=batch_size,
                              total=total, progress=progress, timings=timings)
        reader.join()
        if done == 0:
            raise LightSRError(f"{src}: the video has no frames")
        os.replace(tmp, dst)
    except av.error.FFmpegError as err:
        raise LightSRError(f"{src}: the video could not be decoded or encoded ({err})") from None
    finally:
        stop.set()
        container.close()
        tmp.unlink(missing_ok=True)
    timings.total = time.perf_counter() - start
    return timings


class _Writer:
    """The encoding side, on its own thread: RGB -> YUV, x264, and muxing with the audio.

    ``put`` hands it a batch of (pts, 3xHxW uint8 planar RGB) frames; ``close`` flushes the encoders and
    re-raises whatever failed on the thread. The video stream is opened on the first frame
    size (``open``), at ``scale`` times it, cropped to even sizes for yuv420p."""

    def __init__(self, out, vstream, astream, audio_packets: list, *, scale: int, crf: int, preset: str,
                 timings: Timings):
        self.out, self.vstream, self.astream, self.audio_packets = out, vstream, astream, audio_packets
        self.scale, self.crf, self.preset, self.timings = scale, crf, preset, timings
        self.copy_audio = astream is not None and astream.codec_context.name in BROWSER_AUDIO
        self.video = self.audio = None
        self.error: list[BaseException] = []
        self._q: queue.Queue = queue.Queue(maxsize=2)  # batches waiting for the encoder
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def open(self, h: int, w: int) -> None:
        v = self.vstream
        ovs = self.out.add_stream("libx264", rate=v.average_rate or v.guessed_rate or Fraction(25),
                                  options={"crf": str(self.crf), "preset": self.preset})
        ovs.width, ovs.height = (w * self.scale) // 2 * 2, (h * self.scale) // 2 * 2  # yuv420p needs even sizes
        ovs.pix_fmt = "yuv420p"
        # tagged BT.709, limited range (the HD standard), and converted with that matrix in _run: an
        # untagged stream leaves the matrix to the player, and players assume BT.709 at HD sizes, which
        # shifts colours encoded with FFmpeg's default BT.601 (red 220 shown as 235, green 200 as 172)
        cc = ovs.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = _AVCOL_BT709
        cc.color_range = int(ColorRange.MPEG)
        ovs.time_base = ovs.codec_context.time_base = v.time_base  # keep every frame's own pts
        self.video = ovs
        a = self.astream
        if a is not None:
            if self.copy_audio:
                self.audio = self.out.add_stream_from_template(a)
            else:
                self.audio = self.out.add_stream("aac", rate=a.codec_context.sample_rate or 48000)
                self.audio.layout = a.codec_context.layout if a.codec_context.layout else "stereo"

    def put(self, batch: list) -> None:
        if self.error:
            raise self.error[0]
        self._q.put(batch)

    def _mux_audio(self) -> None:
        while self.audio_packets:
            packet = self.audio_packets.pop(0)
            if self.copy_audio:
                packet.stream = self.audio
                self.out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # the encoder numbers its own (resampled) frames
                    for p in self.audio.encode(frame):
                        self.out.mux(p)

    def _run(self) -> None:
        try:
            while (batch := self._q.get()) is not _END:
                t = time.perf_counter()
                ovs = self.video
                for pts, arr in batch:
                    frame = _planes_frame(arr[:, : ovs.height, : ovs.width]).reformat(
                        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
                    frame.pts, frame.time_base = pts, self.vstream.time_base
                    for p in ovs.encode(frame):
                        self.out.mux(p)
                self._mux_audio()
                self.timings.encode += time.perf_counter() - t
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            self.error.append(err)
            while self._q.get() is not _END:  # keep draining so the main thread never blocks
                pass

    def stop(self) -> None:
        """Wait for the queued frames to be encoded (or dropped, after a failure on the thread)."""
        if self._thread.is_alive():
            self._q.put(_END)
            self._thread.join()

    def finish(self) -> None:
        """After the last frame: re-raise a failure on the thread, else flush the encoders."""
        self.stop()
        if self.error:
            raise self.error[0]
        if self.video is not None:
            for p in self.video.encode(None):
                self.out.mux(p)
            self._mux_audio()
            if self.audio is not None and not self.copy_audio:
                for p in self.audio.encode(None):
                    self.out.mux(p)


def _transcode(net, device: torch.device, frames_q: queue.Queue, writer: _Writer, *, batch_size: int,
               total: int | None, progress, timings: Timings) -> int:
    """The model, on the calling thread: frames from the reader, in batches of ``batch_size``
    (one frame size per batch), through ``net``, to the writer. Returns the frames done."""
    channels_last = device.type == "cpu" and isinstance(net, torch.nn.Module)
    compiled = isinstance(net, OpenVINOModel)  # uint8 planes in and out, scaled and rounded inside the graph
    done = 0
    pending: list = []

    def run_batch() -> None:
        nonlocal done
        if not pending:
            return
        t = time.perf_counter()
        batch = np.stack([a for _, _, a in pending])
        if compiled:
            y = net.frames(batch, layout="NCHW")
        else:
            x = torch.from_numpy(batch).to(device).float().div_(255)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                y = net(x).clamp_(0, 1).mul_(255).round_().to(torch.uint8).contiguous().cpu().numpy()
        timings.model += time.perf_counter() - t
        writer.put([(pts, arr) for (pts, _, _), arr in zip(pending, y)])
        done += len(pending)
        timings.frames = done
        pending.clear()
        if progress is not None:
            progress(done, total)

    try:
        while (item := frames_q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            if writer.video is None:
                writer.open(*item[2].shape[1:])
            if pending and pending[0][2].shape != item[2].shape:
                run_batch()  # a mid-stream size change: keep batches uniform
            pending.append(item)
            if len(pending) >= batch_size:
                run_batch()
        run_batch()
    finally:
        writer.stop()  # on an error too: the thread must not outlive the output container
    writer.finish()
    return done


def sample_frames(src: str | os.PathLike, *, every_seconds: float = 1.0,
                  every_frames: int | None = None) -> Iterator[Image.Image]:
    """Yield upright RGB frames at ``every_seconds`` intervals (or every ``every_frames``-th frame)."""
    with _open(src) as container:
        _info(container, src)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_t = 0.0
        for i, frame in enumerate(container.decode(stream)):
            if every_frames:
                if i % every_frames == 0:
                    yield Image.fromarray(_frame_array(frame))
                continue
            t = frame.time if frame.time is not None else i / float(stream.average_rate or 25)
            if t + 1e-6 >= next_t:
                yield Image.fromarray(_frame_array(frame))
                next_t += every_seconds * max(1, int((t - next_t) // every_seconds) + 1)


def export_frames(src: str | os.PathLike, folder: str | os.PathLike, *, every: str = "1s") -> int:
    """Write frames of ``src`` to ``folder`` as PNG; ``every`` is '1s', '0.5s' or a frame count '10'."""
    folder = Path(folder)
    try:
        kwargs = {"every_seconds": float(every[:-1])} if every.endswith("s") else {"every_frames": int(every)}
    except ValueError:
        raise LightSRError(f"--every must look like '1s', '0.5s' or '10', got {every!r}") from None
    if kwargs.get("every_seconds", 1) <= 0 or kwargs.get("every_frames", 1) <= 0:
        raise LightSRError(f"--every must be positive, got {every!r}")
    n = 0
    stem = Path(src).stem
    for n, img in enumerate(sample_frames(src, **kwargs), start=1):
        if n == 1:  # only now: a file that is not a video leaves no empty folder behind
            folder.mkdir(parents=True, exist_ok=True)
        save_image(img, folder / f"{stem}_{n:05d}.png")
    if n == 0:
        raise LightSRError(f"{src}: the video has no frames")
    return n
