"""Lens-flare removal on whole photos: tiled or low-resolution flare estimation, sources kept.

Two ways to handle a phone photo (12 MP) on 2 cores in bounded memory:

- ``method="tiled"``: ``lightsr.enhance`` over the full-resolution image;
- ``method="lowres"``: the Flare7K ``test_large`` idea. Run the model on a copy whose long
  side is ``work_size`` pixels, take the flare it removed there (input minus output, in
  linear light, where flare is additive), upsample that smooth flare layer to full size and
  subtract it from the full-resolution input. Flare is low-frequency, so this keeps the
  photo's own detail at full resolution for a fraction of the compute.

Either way the light sources are kept: pixels whose input is saturated (the lamps
themselves) are blended back from the input through a dilated, feathered mask, as
Flare7K's light-source mask does, so a street lamp is never "removed" or dimmed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from .errors import LightSRError
from .hub import LightSRModel
from .inference import enhance

__all__ = ["remove_flare", "light_source_mask"]

GAMMA = 2.2  # sRGB is close to a 2.2 power law; enough to make flare additive again


def _linear(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0) ** GAMMA


def _encode(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)


def light_source_mask(rgb: np.ndarray, *, threshold: float = 0.97, grow: int = 3, feather: float = 2.0) -> np.ndarray:
    """(H, W) float mask in [0, 1]: 1 on saturated light sources, grown and feathered."""
    saturated = rgb.max(axis=2) >= threshold * 255
    mask = Image.fromarray((saturated * 255).astype(np.uint8))
    if grow:
        mask = mask.filter(ImageFilter.MaxFilter(2 * grow + 1))
    if feather:
        mask = mask.filter(ImageFilter.GaussianBlur(feather))
    # the feather fades outwards only: saturated pixels themselves are always fully kept
    return np.maximum(np.asarray(mask, dtype=np.float32) / 255.0, saturated.astype(np.float32))


def remove_flare(model: LightSRModel, image, *, method: str = "tiled", work_size: int = 1024,
                 keep_sources: bool = True, progress=None):
    """Remove lens flare from an RGB photo (PIL image or uint8 (H, W, 3) array; same kind back).

    ``method``: ``"tiled"`` (full-resolution inference in tiles) or ``"lowres"`` (estimate
    the flare on a copy ``work_size`` pixels on its long side, subtract it upsampled).
    ``keep_sources`` blends saturated input pixels (the light sources) back in.
    """
    if model.task != "flare-removal":
        raise LightSRError(f"flare removal needs a flare-removal model, not {model.task}")
    if method not in ("tiled", "lowres"):
        raise LightSRError(f"method must be 'tiled' or 'lowres', got {method!r}")
    as_pil = isinstance(image, Image.Image)
    if as_pil:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        rgb = image
    else:
        raise LightSRError("remove_flare takes a PIL image or a uint8 (H, W, 3) array")
    h, w = rgb.shape[:2]
    if method == "lowres" and max(h, w) > work_size:
        f = work_size / max(h, w)
        small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX))
        clean_small = enhance(model, small, progress=progress)
        flare_small = np.clip(_linear(small) - _linear(clean_small), 0, None)
        # Upsample each channel of the (smooth) flare layer with bilinear filtering.
        flare = np.stack([np.asarray(Image.fromarray(flare_small[..., c], mode="F").resize((w, h), Image.BILINEAR))
                          for c in range(3)], axis=2)
        out = _encode(_linear(rgb) - flare)
    else:
        out = enhance(model, rgb, progress=progress)
    if keep_sources:
        m = light_source_mask(rgb)[..., None]
        out = np.round(m * rgb + (1 - m) * out).astype(np.uint8)
    return Image.fromarray(out) if as_pil else out
