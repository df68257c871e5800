"""Lens-flare removal on whole photos: whole-frame flare estimation, lamps kept, the rest untouched.

Two ways to handle a photo of any size on 2 cores in bounded memory:

- ``method="lowres"`` (the default): the Flare7K ``test_large`` idea, and the resolution
  the flare models are trained at. The model sees the whole photo at ``work_size`` px on
  its long side, where a streak or a ghost is seen whole; the flare it removed there
  (input minus output in linear light, where flare is additive, never negative) is
  upsampled to full size and subtracted from the full-resolution input. Flare is
  low-frequency, so the photo keeps its own full-resolution detail, and where the model
  finds no flare the photo is returned exactly as it came (no colour or tone shift).
- ``method="tiled"``: ``lightsr.enhance`` over the full-resolution image. A model then
  sees flare at a scale it was not trained at; kept for comparison.

Light sources are kept, and told from their glare. A saturated input pixel is a lamp only
where the model also leaves it saturated: the glare disc around a lamp, saturated in the
input and many times the lamp's size, is flare the model removes, so it is not blended
back. Lamp pixels are blended back from the input through a slightly grown, feathered
mask (Flare7K's light-source mask), so a street lamp is never dimmed.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from .errors import LightSRError
from .hub import LightSRModel
from .inference import enhance
from .models._common import GAMMA

__all__ = ["remove_flare", "light_source_mask", "METHODS"]

METHODS = ("lowres", "tiled")
SATURATED = 0.97  # of white: a pixel at or above this (any channel) is clipped by the sensor
LAMP = 0.9  # of white: where the model's output stays at least this bright, a saturated pixel is a lamp


def _linear(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0) ** GAMMA


def _encode(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)


def _resize_float(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) float32 -> (H, W, C), bilinear, channel by channel."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c]), mode="F").resize(size, Image.BILINEAR))
                     for c in range(x.shape[2])], axis=2)


def light_source_mask(rgb: np.ndarray, lamp: np.ndarray | None = None, *, threshold: float = SATURATED,
                      grow: int = 2, feather: float = 1.5) -> np.ndarray:
    """(H, W) float mask in [0, 1]: 1 on light sources, grown and feathered.

    ``rgb`` is the (H, W, 3) uint8 input. ``lamp``, an (H, W) bool, says which saturated
    pixels are lamps rather than glare (``remove_flare`` passes where the model's output
    stays saturated); without it every saturated pixel counts.
    """
    saturated = rgb.max(axis=2) >= threshold * 255
    if lamp is not None:
        saturated &= lamp
    mask = Image.fromarray((saturated * 255).astype(np.uint8))
    if grow:
        mask = mask.filter(ImageFilter.MaxFilter(2 * grow + 1))
    if feather:
        mask = mask.filter(ImageFilter.GaussianBlur(feather))
    # the feather fades outwards only: saturated pixels themselves are always fully kept
    return np.maximum(np.asarray(mask, dtype=np.float32) / 255.0, saturated.astype(np.float32))


def remove_flare(model: LightSRModel, image, *, method: str = "lowres", work_size: int = 512,
                 keep_sources: bool = True, progress=None):
    """Remove lens flare from an RGB photo (PIL image or uint8 (H, W, 3) array; same kind back).

    ``method``: ``"lowres"`` (the flare is estimated on the whole photo at ``work_size`` px
    on its long side and subtracted, upsampled, at full resolution; the default) or
    ``"tiled"`` (full-resolution inference in tiles). ``keep_sources`` blends the lamps
    (saturated pixels the model keeps saturated) back from the input.
    """
    if model.task != "flare-removal":
        raise LightSRError(f"flare removal needs a flare-removal model, not {model.task}")
    if method not in METHODS:
        raise LightSRError(f"method must be 'lowres' or 'tiled', got {method!r}")
    as_pil = isinstance(image, Image.Image)
    if as_pil:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        rgb = image
    else:
        raise LightSRError("remove_flare takes a PIL image or a uint8 (H, W, 3) array")
    h, w = rgb.shape[:2]
    if method == "lowres":
        f = min(1.0, work_size / max(h, w))
        small = rgb if f == 1.0 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX))
        # one whole-frame pass (a work_size above 1536 px goes through tiles, memory bounded)
        clean_small = _model_float(model, small) if max(small.shape[:2]) <= 1536 else \
            enhance(model, small, progress=progress).astype(np.float32) / 255.0
        small_lin = _linear(small)
        # the flare the model removed, in linear light; never negative: removal only takes light away
        flare = np.clip(small_lin - clean_small ** GAMMA, 0, None)
        lamp_small = (clean_small.max(axis=2) >= LAMP).astype(np.float32)
        if f < 1.0:
            flare = _resize_float(flare, (w, h))
            lamp = _resize_float(lamp_small[..., None], (w, h))[..., 0] >= 0.5
        else:
            lamp = lamp_small >= 0.5
        out = _encode(_linear(rgb) - flare)
        if progress:
            progress(1, 1)
    else:
        out = enhance(model, rgb, progress=progress)
        lamp = out.max(axis=2) >= LAMP * 255
    if keep_sources:
        m = light_source_mask(rgb, lamp)[..., None]
        out = np.round(m * rgb + (1 - m) * out).astype(np.uint8)
    return Image.fromarray(out) if as_pil else out


@torch.inference_mode()
def _model_float(model: LightSRModel, rgb: np.ndarray) -> np.ndarray:
    """The model's (H, W, 3) float32 output in [0, 1] for one small uint8 image, not rounded
    to 8 bits (rounding would leave a faint bias in the subtracted flare)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was = model.training
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float().div_(255.0)
    y = model(x)[0].permute(1, 2, 0).float().cpu().numpy()
    model.train(was)
    if not np.isfinite(y).all():
        raise LightSRError("the model's output is not finite (are these weights broken?)")
    return np.clip(y, 0, 1)
