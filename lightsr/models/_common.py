"""Small helpers every architecture uses: the tensor contract check and size padding."""

import torch
import torch.nn.functional as F

__all__ = ["check_image_batch", "pad_to_multiple", "to_linear", "from_linear", "GAMMA"]


def check_image_batch(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, 3, H, W)`` floating point with H, W >= 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (N, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"expected a tensor of shape (N, 3, H, W) with H, W >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating point tensor in [0, 1], got dtype {x.dtype}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad the bottom/right of ``x`` so H and W are multiples of ``multiple``.

    Reflection where the image is big enough (it keeps edge statistics natural),
    replication otherwise (reflection cannot pad more than the size minus one).
    Returns the padded tensor and the original (H, W) to crop back to.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


# Flare is light: it adds in linear light, so flare models may predict it there and subtract it.
GAMMA = 2.2  # sRGB is close to a 2.2 power law; what lightsr.flare uses too


def to_linear(x: torch.Tensor) -> torch.Tensor:
    """Display [0, 1] -> linear light [0, 1] (a 2.2 power law)."""
    return x.clamp(0, 1) ** GAMMA


def from_linear(x: torch.Tensor) -> torch.Tensor:
    """Linear light -> display [0, 1]; clipped like a sensor. While gradients are recorded the
    floor is 1e-5 (the 1/2.2 power has an infinite slope at 0); at inference it is exactly 0."""
    floor = 1e-5 if torch.is_grad_enabled() else 0.0
    return x.clamp(floor, 1) ** (1 / GAMMA)
