"""Side-by-side comparison of a super-resolution model with bicubic (the app's third tab).

``compare_with_bicubic`` takes an image that is either the high-resolution original (it
is downscaled with the benchmark's bicubic, then both methods bring it back and are
measured against it in the standard protocol) or a low-resolution image (both methods
upscale it; there is nothing to measure against).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .errors import LightSRError
from .models.base import LightSRModel
from .imaging import bicubic_downscale, bicubic_upscale, modcrop, to_rgb8
from .inference import enhance
from .metrics import psnr, ssim

__all__ = ["Comparison", "compare_with_bicubic", "detail_box"]


@dataclass
class Comparison:
    bicubic: Image.Image
    model: Image.Image
    original: Image.Image | None  # the HR reference in "original" mode
    low_res: Image.Image
    box: tuple[int, int, int, int]  # the zoom region (left, top, right, bottom) in output pixels
    metrics: list[dict] = field(default_factory=list)  # rows: method, PSNR, SSIM

    def crops(self, zoom: int = 3) -> list[tuple[Image.Image, str]]:
        """The same region of each image, enlarged with nearest neighbour so pixels stay visible."""
        out = []
        for img, label in ((self.bicubic, "bicubic"), (self.model, "model"), (self.original, "original")):
            if img is not None:
                c = img.crop(self.box)
                out.append((c.resize((c.width * zoom, c.height * zoom), Image.NEAREST), label))
        return out


def detail_box(img: Image.Image, size: int) -> tuple[int, int, int, int]:
    """The ``size``-square region with the most local detail (gradient energy) in ``img``."""
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    size = min(size, grey.shape[0], grey.shape[1])
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    # box sums by an integral image, evaluated on a coarse grid of positions
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    step = max(1, size // 4)
    best, best_xy = -1.0, (0, 0)
    for y in range(0, grey.shape[0] - size + 1, step):
        for x in range(0, grey.shape[1] - size + 1, step):
            s = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            if s > best:
                best, best_xy = s, (x, y)
    x, y = best_xy
    return (x, y, x + size, y + size)


def compare_with_bicubic(model: LightSRModel, image: Image.Image, *, mode: str = "original",
                         zoom_size: int = 96, progress=None) -> Comparison:
    """Run ``model`` and bicubic on ``image`` (RGB) and, in "original" mode, measure both.

    ``mode="original"``: ``image`` is the HR ground truth; it is cropped to a multiple of
    the scale and downscaled with ``bicubic_downscale``, and PSNR/SSIM are computed on the
    Y channel with ``scale`` pixels shaved, as in published SR tables.
    ``mode="low-res"``: ``image`` is upscaled as it is; no metrics.
    """
    if model.task != "super-resolution":
        raise LightSRError(f"comparison with bicubic needs a super-resolution model, not {model.task}")
    if mode not in ("original", "low-res"):
        raise LightSRError(f"mode must be 'original' or 'low-res', got {mode!r}")
    s = model.scale
    image = to_rgb8(image)
    if mode == "original":
        hr = modcrop(image, s)
        if min(hr.size) < 11 * s + 2 * s:
            raise LightSRError(f"the image is too small to measure at x{s}: at least {13 * s} pixels per side")
        lr = bicubic_downscale(hr, s)
    else:
        hr, lr = None, image
    sr = enhance(model, lr, progress=progress)
    bic = bicubic_upscale(lr, s)
    comparison = Comparison(bicubic=bic, model=sr, original=hr, low_res=lr,
                            box=detail_box(hr if hr is not None else sr, zoom_size))
    if hr is not None:
        ref = np.asarray(hr)
        for label, img in (("bicubic", bic), ("model", sr)):
            arr = np.asarray(img)
            comparison.metrics.append({"method": label, "PSNR (dB)": round(psnr(arr, ref, crop_border=s), 2),
                                       "SSIM": round(ssim(arr, ref, crop_border=s), 4)})
    return comparison
