"""``enhance``: the one inference entry point, for super-resolution and restoration alike.

Images of any size run in tiles with overlapping context and feathered blending:

- each tile's core is extended by ``overlap`` input pixels of real image context on every
  side that is not the image border;
- neighbouring tiles are cross-faded with linear ramps ``overlap / 2`` pixels either side
  of the core boundary. The ramps form a partition of unity, and a tile is only ever used
  at least ``overlap / 2`` pixels away from where it was cut, so once that distance
  covers the network's receptive field the result equals the untiled one exactly;
  beyond it, seams are still invisible because contributions fade in and out;
- finished output rows are written straight into the result array (uint8 or uint16), so
  the working memory is a strip of tiles, not a float copy of the whole picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .backends import runner
from .errors import LightSRError
from .imaging import to_unit_range, unit_to_u16
from .models.base import LightSRModel

__all__ = ["enhance", "default_tile", "run_tiled", "self_ensemble"]

# Activation memory a tile may use by default. 1 GiB keeps a 2-core, 16 GB free Space safe
# while leaving tiles big enough that the overlap is a small share of the work.
TILE_MEMORY_BUDGET = 1 << 30

ProgressFn = Callable[[int, int], None]
Net = Callable[[torch.Tensor], torch.Tensor]

# How many of the 8 symmetries of the square ``self_ensemble`` may average over: the input as it
# is, + mirrored left-right, + upside down (and both), + transposed (each of those, transposed).
ENSEMBLE_SIZES = (1, 2, 4, 8)


def default_tile(model: LightSRModel, overlap: int, budget: int = TILE_MEMORY_BUDGET) -> int:
    """Largest tile side (a multiple of 16, 64..1024) whose padded tile fits ``budget``."""
    side = math.isqrt(budget // max(1, model.activation_bytes_per_pixel())) - 2 * overlap
    return int(min(1024, max(64, max(overlap, side) // 16 * 16)))


def _check_ensemble(n) -> None:
    if n not in ENSEMBLE_SIZES or isinstance(n, bool):
        raise LightSRError(f"self_ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))}, got {n!r}")


def self_ensemble(net: Net, n: int) -> Net:
    """``net`` averaged over ``n`` (1, 2, 4 or 8) flips and transposes of its input, each output
    turned back first: the "self-ensemble" of EDSR+ (Lim et al. 2017), for any model that treats
    the eight symmetries of the square alike. Same tensor contract as ``net``: (N, 3, H, W) float in
    [0, 1] in, (N, 3, sH, sW) float out; each pass gets its input in ``x``'s memory format. ``n``
    times the time, the memory of one pass plus the outputs' sum. ``n`` = 1 returns ``net`` itself."""
    _check_ensemble(n)
    if n == 1:
        return net

    def averaged(x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        total = None
        for k in range(n):
            flips = [d for bit, d in ((1, 3), (2, 2)) if k & bit]
            t = x.flip(flips) if flips else x
            if k & 4:
                t = t.transpose(2, 3)
            y = net(t.contiguous(memory_format=fmt)).float()
            if k & 4:
                y = y.transpose(2, 3)
            y = y.flip(flips) if flips else y
            total = y if total is None else total + y  # out of place: a backend may own y's memory
        return total / n

    return averaged


def _ramp(n_out: int, start_out: int, scale: int, core0: int, core1: int, size: int, half: int) -> np.ndarray:
    """1-D blending weights for output positions start_out .. start_out + n_out - 1."""
    u = (np.arange(start_out, start_out + n_out, dtype=np.float64) + 0.5) / scale  # input coordinates
    w = np.ones(n_out)
    if half == 0:
        return ((u >= core0) & (u < core1)).astype(np.float32)
    if core0 > 0:
        w *= np.clip((u - (core0 - half)) / (2 * half), 0, 1)
    if core1 < size:
        w *= np.clip(((core1 + half) - u) / (2 * half), 0, 1)
    return w.astype(np.float32)


@torch.inference_mode()
def run_tiled(model: LightSRModel, src: np.ndarray, *, tile: int | None, overlap: int,
              progress: ProgressFn | None = None, backend: str | None = None,
              precision: str | None = None, ensemble: int = 1) -> np.ndarray:
    """(H, W, 3) uint8/uint16 -> (s*H, s*W, 3) same dtype, through ``model`` tile by tile
    (on ``backend`` at ``precision``: see ``lightsr.backends.runner``; each tile through
    ``self_ensemble(net, ensemble)``)."""
    net = runner(model, backend, precision=precision)
    maxval = 255.0 if src.dtype == np.uint8 else 65535.0
    device = next(model.parameters()).device
    channels_last = device.type == "cpu" and net is model  # PyTorch's CPU convolutions are faster on it
    net = self_ensemble(net, ensemble)
    s = model.scale
    H, W = src.shape[:2]
    if tile is None or (H <= tile and W <= tile):
        tile_h, tile_w, overlap = H, W, 0
    else:
        tile_h = tile_w = tile
        if overlap > tile:
            raise LightSRError(f"overlap ({overlap}) must not exceed the tile size ({tile})")
    half = overlap // 2
    ys, xs = list(range(0, H, tile_h)), list(range(0, W, tile_w))
    out = np.empty((H * s, W * s, 3), dtype=src.dtype)
    total, done = len(ys) * len(xs), 0
    flushed = 0  # output rows [0, flushed) are final
    carry: np.ndarray | None = None  # accumulated rows [flushed, ...) from the previous tile row
    for i, y0 in enumerate(ys):
        y1 = min(y0 + tile_h, H)
        cy0, cy1 = max(0, y0 - overlap), min(H, y1 + overlap)
        lo, hi = max(0, y0 - half) * s, min(H, y1 + half) * s  # rows this tile row contributes to
        acc = np.zeros((hi - flushed, W * s, 3), dtype=np.float32)
        if carry is not None:
            acc[: carry.shape[0]] += carry
        wy = _ramp(hi - lo, lo, s, y0, y1, H, half)
        for x0 in xs:
            x1 = min(x0 + tile_w, W)
            cx0, cx1 = max(0, x0 - overlap), min(W, x1 + overlap)
            x = to_unit_range(src[cy0:cy1, cx0:cx1], device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = net(x)[0].clamp_(0, 1).permute(1, 2, 0).float().cpu().numpy()
            left, right = max(0, x0 - half) * s, min(W, x1 + half) * s
            wx = _ramp(right - left, left, s, x0, x1, W, half)
            block = y[lo - cy0 * s : hi - cy0 * s, left - cx0 * s : right - cx0 * s]
            acc[lo - flushed : hi - flushed, left:right] += block * wy[:, None, None] * wx[None, :, None]
            done += 1
            if progress is not None:
                progress(done, total)
        final_end = max(0, ys[i + 1] - half) * s if i + 1 < len(ys) else H * s
        final_end = max(final_end, flushed)
        n = final_end - flushed
        out[flushed:final_end] = np.clip(np.rint(acc[:n] * maxval), 0, maxval).astype(src.dtype)
        carry = acc[n:]
        flushed = final_end
    return out


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return alpha
    maxval = 255.0 if alpha.dtype == np.uint8 else 65535.0
    t = torch.from_numpy(alpha.astype(np.float32) / maxval)[None, None]
    up = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].clamp_(0, 1).numpy()
    return np.rint(up * maxval).astype(alpha.dtype)


def _pil_to_array(img: Image.Image) -> tuple[np.ndarray, str]:
    """A PIL image -> (H, W, C) uint8/uint16 array and the mode to give back."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return _as_hwc(np.asarray(img)), mode
    if mode == "P":
        keep = "RGBA" if "transparency" in img.info else "RGB"
        return _as_hwc(np.asarray(img.convert(keep))), keep
    if mode == "1":
        return _as_hwc(np.asarray(img.convert("L"))), "L"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        keep = "RGBA" if mode in ("RGBa",) else ("LA" if mode == "La" else "RGB")
        return _as_hwc(np.asarray(img.convert(keep))), keep
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise LightSRError(f"a {mode} image with values outside 0..65535 is not supported")
        return _as_hwc(arr.astype(np.uint16)), "I;16"
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return _as_hwc(unit_to_u16(arr)), "F"
    raise LightSRError(f"unsupported image mode {mode}")


def _as_hwc(arr: np.ndarray) -> np.ndarray:
    return arr[:, :, None] if arr.ndim == 2 else arr


def _array_to_pil(arr: np.ndarray, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.ascontiguousarray(arr[:, :, 0]))  # uint16 (H, W) -> I;16
    if mode == "F":
        return Image.fromarray(arr[:, :, 0].astype(np.float32) / 65535.0, mode="F")
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode=mode)


def enhance(model: LightSRModel, image, *, tile: int | None | str = "auto", overlap: int | None = None,
            progress: ProgressFn | None = None, backend: str | None = None, precision: str | None = None,
            self_ensemble: int = 1):
    """Run ``model`` on a whole image, tiled, and return the result in the input's own kind.

    ``image``: a PIL image (any common mode; EXIF orientation applied) or a uint8/uint16
    numpy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). The result is the same
    kind, mode and dtype, ``model.scale`` times larger: RGB stays RGB, grey (L, I;16)
    stays grey (the model sees it as three equal channels), an alpha channel is resized
    with bicubic and re-attached, P becomes RGB(A) and CMYK becomes RGB.

    ``tile``: ``"auto"`` (default) picks a tile that keeps activation memory near 1 GiB;
    ``None`` runs the whole image at once; an int is the tile side in input pixels.
    ``overlap``: context pixels around each tile; the model's ``tile_overlap()`` by default.
    ``progress(done, total)`` is called after each tile. ``backend``: "auto" (per model, the
    fastest of PyTorch and OpenVINO on this machine, timed once), "torch" or "openvino"; None
    reads ``$LIGHTSR_BACKEND``, default "auto" (``lightsr.backends``). ``precision``: "fp32",
    "bf16" or "int8" for OpenVINO (None: fp32 for "openvino"; for "auto", whichever is fastest
    where accurate, see ``lightsr.backends.runner``). ``self_ensemble``: 1 (default), or 2, 4 or 8
    passes of every tile, flipped and transposed, averaged (``lightsr.inference.self_ensemble``):
    that many times the time for a little more fidelity (BENCHMARKS.md measures it per model).
    """
    if not isinstance(model, LightSRModel):
        raise LightSRError(f"expected a lightsr model (from lightsr.load or create_model), got {type(model).__name__}")
    if isinstance(image, Image.Image):
        arr, mode = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16):
            raise LightSRError(f"arrays must be uint8 or uint16, got {image.dtype}")
        arr, mode = _as_hwc(image), None
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise LightSRError(f"arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    else:
        raise LightSRError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise LightSRError(f"the image is empty ({arr.shape[1]}x{arr.shape[0]})")
    channels = arr.shape[2]
    rgb = arr[:, :, :3] if channels >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    alpha = arr[:, :, -1] if channels in (2, 4) else None

    _check_ensemble(self_ensemble)
    overlap = model.tile_overlap() if overlap is None else int(overlap)
    if overlap < 0:
        raise LightSRError(f"overlap must be >= 0, got {overlap}")
    if tile == "auto":
        tile = default_tile(model, overlap)
    elif tile is not None and (not isinstance(tile, int) or tile < 1):
        raise LightSRError(f"tile must be a positive int, None or 'auto', got {tile!r}")
    was_training = model.training
    model.eval()
    try:
        out = run_tiled(model, np.ascontiguousarray(rgb), tile=tile, overlap=overlap, progress=progress,
                        backend=backend, precision=precision, ensemble=self_ensemble)
    finally:
        model.train(was_training)
    if channels in (1, 2):
        # Back to one channel: the mean of the (nearly equal) RGB outputs.
        out = np.rint(out.astype(np.float32).mean(axis=2, keepdims=True)).astype(arr.dtype)
    if alpha is not None:
        out = np.concatenate([out, _resize_alpha(alpha, model.scale)[:, :, None]], axis=2)
    if mode is None:
        return out if image.ndim == 3 else out[:, :, 0]
    return _array_to_pil(out, mode)
