"""Super-resolution evaluation in the standard protocol, against bicubic.

For each HR image of a folder: crop to a multiple of the scale, make the LR input with
``bicubic_downscale``, run the model (and ``bicubic_upscale`` as the baseline), and
measure PSNR/SSIM on the Y channel with ``scale`` pixels shaved from each border.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import LightSRError
from .imaging import bicubic_downscale, bicubic_upscale, modcrop, open_image
from .metrics import psnr, ssim

__all__ = ["SRScores", "evaluate_sr", "image_files", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise LightSRError(f"'{folder}' is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LightSRError(f"'{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


@dataclass
class SRScores:
    dataset: str
    scale: int
    images: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


def _to_tensor(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@torch.inference_mode()
def evaluate_sr(model: torch.nn.Module, folder: str | Path, *, scale: int | None = None,
                device: torch.device | str | None = None) -> SRScores:
    """Mean Y-channel PSNR/SSIM of ``model`` and of bicubic over the HR images in ``folder``.

    The model runs on whole images (benchmark images are small), in eval mode; grey
    images are fed as three equal channels and measured as they are.
    """
    scale = scale or model.scale
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    rows = []
    for path in image_files(folder):
        img = open_image(path)
        grey = img.mode in ("L", "LA", "I;16", "I")
        hr = modcrop(img.convert("RGB"), scale)
        lr = bicubic_downscale(hr, scale)
        sr = model(_to_tensor(lr).to(device)).clamp(0, 1)
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
    return SRScores(Path(folder).name, scale, len(rows), *map(float, m))
