"""Evaluation: super-resolution in the standard protocol against bicubic, and flare removal by region.

For each HR image of a folder: crop to a multiple of the scale, make the LR input with
``bicubic_downscale``, run the model (and ``bicubic_upscale`` as the baseline), and
measure PSNR/SSIM on the Y channel with ``scale`` pixels shaved from each border.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from .errors import LightSRError
from .flare import CLIPPED_LEVEL
from .imaging import bicubic_downscale, bicubic_upscale, modcrop, open_image, to_unit_range
from .imaging import IMAGE_SUFFIXES, image_files  # noqa: F401 - re-exported: where they used to live
from .metrics import psnr, ssim

__all__ = ["SRScores", "evaluate_sr", "FlareScores", "evaluate_flare", "image_files", "IMAGE_SUFFIXES"]



@dataclass
class SRScores:
    dataset: str
    scale: int
    images: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@torch.inference_mode()
def evaluate_sr(model: torch.nn.Module, folder: str | Path | list[Path], *, scale: int | None = None,
                device: torch.device | str | None = None, backend: str = "torch", net=None) -> SRScores:
    """Mean Y-channel PSNR/SSIM of ``model`` and of bicubic over the HR images in ``folder``
    (a folder, or a list of image paths: a trainer's held-out photos).

    The model runs on whole images (benchmark images are small), in eval mode; grey
    images are fed as three equal channels and measured as they are. ``backend``: PyTorch
    (the reference) by default, or "openvino" to measure what the compiled model gives;
    ``net``, a callable with the model's tensor contract (e.g. ``backends.OpenVINOModel(model,
    precision="bf16")``), is measured instead where given.
    """
    from .backends import runner

    scale = scale or model.scale
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    net = runner(model, backend) if net is None else net
    rows = []
    named = isinstance(folder, (str, Path))  # a folder, or a list of paths
    for path in image_files(folder) if named else folder:
        img = open_image(path)
        grey = img.mode in ("L", "LA", "I;16", "I")
        hr = modcrop(img.convert("RGB"), scale)
        lr = bicubic_downscale(hr, scale)
        sr = net(to_unit_range(np.asarray(lr), device)).clamp(0, 1)
        sr = (sr[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        bic = np.asarray(bicubic_upscale(lr, scale))
        hr = np.asarray(hr)
        if grey:  # measure grey images on their single channel, as they were given
            hr, sr, bic = hr[..., 0], sr.mean(axis=2).round().astype(np.uint8), bic[..., 0]
        rows.append((
            psnr(sr, hr, crop_border=scale), ssim(sr, hr, crop_border=scale),
            psnr(bic, hr, crop_border=scale), ssim(bic, hr, crop_border=scale),
        ))
    model.train(was_training)
    m = np.mean(np.array(rows), axis=0)
    return SRScores(Path(folder).name if named else f"{len(rows)} held-out photos", scale, len(rows), *map(float, m))


# -- flare removal -------------------------------------------------------------------------
GLARE_LEVEL = 64  # flare layer (display, 0..255) at or above this: the glare around a source (G-PSNR)
STREAK_LEVEL = 4  # from this up to GLARE_LEVEL: streaks, ghosts and haze (S-PSNR)
LAMP_MARGIN = 2  # px round a pixel saturated in the target (a lamp) that the background leaves out


@dataclass
class FlareScores:
    """Flare removal on synthetic pairs whose flare layer is known (``method`` "no-op" = input as is).

    ``psnr``/``ssim``: RGB, whole image, mean over images. ``glare_psnr``/``streak_psnr``/
    ``background_psnr``: RGB PSNR pooled over every pixel of the set where the noise-free flare
    layer (max over channels of |input - target|, 0..255) is >= GLARE_LEVEL, in
    [STREAK_LEVEL, GLARE_LEVEL), and 0 (under 1/255: no flare, so any change there is harm; pixels
    saturated in the target, lamps and clipped sky, and the LAMP_MARGIN px round them are left out
    of the background: the layer is rendered without noise and JPEG, so at a lamp's edge, clipped
    in both renders, its 0 says nothing, while the target's edge there is 240 to 254).
    ``gains``: per-image PSNR gain over returning the input. ``lamps_kept``: the share of lamp
    pixels (clipped in the target and in the input: brightest channel >= CLIPPED_LEVEL, as
    remove_flare reads a lamp) that the output keeps clipped, pooled over the set (NaN without
    lamps): the lamp stays, only its flare goes, so a model that dims lamps with their glare scores
    low here while the PSNRs, over a few lamp pixels, barely move. A pixel the input does not clip
    (a small lamp's rim, softened by noise and JPEG below the clip the noise-free target keeps) is
    not counted: no method can know it was a lamp, and returning the input keeps 100%."""
    method: str
    images: int
    psnr: float
    ssim: float
    glare_psnr: float
    streak_psnr: float
    background_psnr: float
    gains: list[float]
    lamps_kept: float = float("nan")

    @property
    def worst_gain(self) -> float:
        return float(min(self.gains))


def _pooled_psnr(sq_err: float, count: int) -> float:
    if count == 0:
        return float("nan")
    mse = sq_err / count
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def evaluate_flare(pairs, outputs) -> FlareScores:
    """Score ``outputs`` (uint8 (H, W, 3), one per pair) against ``pairs`` of (input, target, layers);
    ``layers["flare"]`` is the (H, W) uint8 noise-free flare layer. Returns FlareScores with
    method "" (the caller names it); pass the inputs as outputs for the no-op row."""
    whole, gains = [], []
    regions = {"glare": [0.0, 0], "streak": [0.0, 0], "background": [0.0, 0]}
    lamps = [0, 0]  # kept, all
    for (inp, target, layers), out in zip(pairs, outputs, strict=True):
        if out.shape != target.shape:
            raise LightSRError(f"output {out.shape} and target {target.shape} differ in size")
        p = psnr(out, target, y_channel=False)
        whole.append((p, ssim(out, target, y_channel=False)))
        gains.append(p - psnr(inp, target, y_channel=False))
        err = (out.astype(np.float64) - target.astype(np.float64)) ** 2
        flare = layers["flare"]
        streak = (flare >= STREAK_LEVEL) & (flare < GLARE_LEVEL)
        # background: no flare reaches it, and it is not a source or its edge (a pixel saturated in the target is
        # a lamp or clipped sky, where flare cannot show, so a flare layer of 0 there says nothing; nor does it at
        # the lamp's anti-aliased, noisy, JPEG-blurred edge, which is clipped in the noise-free renders the layer
        # comes from. On the optics set that edge was 0.08% of the "background" and 68% of its squared error)
        lamp = target.max(axis=2) >= CLIPPED_LEVEL
        background = (flare == 0) & ~ndimage.binary_dilation(lamp, iterations=LAMP_MARGIN)
        for name, where in (("glare", flare >= GLARE_LEVEL), ("streak", streak), ("background", background)):
            regions[name][0] += float(err[where].sum())
            regions[name][1] += int(where.sum()) * 3
        seen = lamp & (inp.max(axis=2) >= CLIPPED_LEVEL)  # a lamp the input shows clipped
        lamps[0] += int(np.count_nonzero(seen & (out.max(axis=2) >= CLIPPED_LEVEL)))
        lamps[1] += int(np.count_nonzero(seen))
    m = np.mean(whole, axis=0)
    return FlareScores("", len(whole), float(m[0]), float(m[1]), *(_pooled_psnr(*regions[k]) for k in regions),
                       gains=[float(g) for g in gains], lamps_kept=lamps[0] / lamps[1] if lamps[1] else float("nan"))
