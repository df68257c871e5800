"""Small helpers every architecture uses: the tensor contract check, size padding, and the
fused-conv cache of re-parameterisable blocks."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["check_image_batch", "pad_to_multiple", "to_linear", "from_linear", "GAMMA", "weights_version",
           "pad_with_bias", "FusedConv3x3"]


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
    Returns the padded tensor and the original (H, W) to crop back to. Under tracing (ONNX
    export, OpenVINO conversion) it is one branch for every size, always a reflection (possibly
    by 0), so a traced graph pads inside itself for any input of at least ``multiple`` pixels a side.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if torch.jit.is_tracing():  # one branch for every size: the recorded pad amounts follow the input's shape
        return F.pad(x, (0, pw, 0, ph), mode="reflect"), h, w
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


def weights_version(module: nn.Module) -> tuple:
    """Changes whenever any of ``module``'s weights does: an optimizer or EMA step, and a
    load, all bump a tensor's ``_version`` (or replace the tensor)."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


def pad_with_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pad by one pixel with each channel's bias: what a 1x1 conv would output on zero padding."""
    y = F.pad(y, (1, 1, 1, 1))
    b = bias.view(1, -1, 1, 1)
    y[:, :, :1, :] = b
    y[:, :, -1:, :] = b
    y[:, :, :, :1] = b
    y[:, :, :, -1:] = b
    return y


class FusedConv3x3(nn.Module):
    """A block whose linear training-time branches are exactly one 3x3 conv (``fuse()``).

    In eval mode ``fused_forward`` runs that conv, computed on first use and cached until a
    weight changes (so a mode switch keeps it, which a tracer needs to see one graph, and an
    in-place EMA update between validations refreshes it)."""

    def __init__(self):
        super().__init__()
        self._fused: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fused_key: tuple = ()

    def fuse(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 conv (weight, bias) equal to the block's branches."""
        raise NotImplementedError

    def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        key = weights_version(self)
        if self._fused is None or self._fused_key != key or self._fused[0].device != x.device \
                or self._fused[0].dtype != x.dtype:
            with torch.no_grad():
                self._fused, self._fused_key = tuple(t.detach().to(x.dtype) for t in self.fuse()), key
        return F.conv2d(x, self._fused[0], self._fused[1], padding=1)
