"""PSNR and SSIM with the conventions of the super-resolution literature.

The standard protocol (data/README.md, BasicSR ``metrics/psnr_ssim.py``):
images in 0..255, optionally reduced to the Y channel of ITU-R BT.601 YCbCr
(Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255), ``crop_border`` pixels shaved
from every side, PSNR = 10 log10(255^2 / MSE), and SSIM with an 11x11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, computed per channel and averaged.

Inputs may be numpy arrays or torch tensors, uint8 (0..255), uint16 (0..65535) or float
(0..1), laid out (H, W), (H, W, C) or, for tensors, (C, H, W) / (1, C, H, W). Both images
must have the same shape. Identical images give ``inf`` PSNR.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "rgb_to_y", "to_float255"]


def to_float255(img) -> np.ndarray:
    """Any supported image -> float64 (H, W, C) array in 0..255."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"metrics take one image, got a batch of shape {tuple(t.shape)}")
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    elif isinstance(img, np.ndarray):
        arr = img
    else:
        arr = np.asarray(img)  # PIL images
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) * (255.0 / 65535.0)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64) * 255.0
    raise ValueError(f"unsupported image dtype {arr.dtype}")


def rgb_to_y(img255: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in 0..255 -> (H, W, 1) BT.601 luma in 16..235."""
    if img255.shape[-1] != 3:
        raise ValueError(f"the Y channel needs an RGB image, got {img255.shape[-1]} channels")
    y = 16.0 + img255 @ np.array([65.481, 128.553, 24.966]) / 255.0
    return y[:, :, None]


def _prepare(a, b, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_float255(a), to_float255(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if y_channel and a.shape[-1] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        if 2 * crop_border >= min(a.shape[:2]):
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(a, b, *, crop_border: int = 0, y_channel: bool = True) -> float:
    """Peak signal-to-noise ratio in dB on the 0..255 scale; ``inf`` for identical images.

    With ``y_channel=True`` an RGB pair is compared on BT.601 luma (grey images as they are).
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a, b, *, crop_border: int = 0, y_channel: bool = True) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian 11x11 window, sigma 1.5, 0..255 scale.

    Computed per channel over the 'valid' region of the window and averaged, which matches
    scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``.
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[0]}x{a.shape[1]}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    window = _gaussian_window()
    # (C, 1, H, W) so every channel is filtered on its own
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[:, None]
    y = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))[:, None]
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    sxx = F.conv2d(x * x, window) - mu_x**2
    syy = F.conv2d(y * y, window) - mu_y**2
    sxy = F.conv2d(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    # skimage crops (win_size - 1) // 2 from each side before averaging: the valid conv does that.
    return float(ssim_map.mean())
