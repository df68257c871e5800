"""NF-ResUNet: a residual U-Net without normalization layers, trained with AGC.

Normalizer-free design after Brock, De, Smith, Simonyan, "High-Performance Large-Scale
Image Recognition Without Normalization" (NFNets, 2021) and Brock et al., "Characterizing
signal propagation to close the performance gap in unnormalized ResNets" (2021):

- Scaled Weight Standardization convs: W_hat = gain * (W - mean) / (std * sqrt(fan_in)),
  with a learnable per-channel gain and a small eps, so a unit-variance input gives a
  unit-variance output without BatchNorm.
- Activations are multiplied by gamma = 1 / std(act(z)), z ~ N(0, 1), computed for the
  activation actually used (``activation_gamma``), restoring unit variance after them.
- Residual blocks compute ``x + alpha * skip_gain * f(x / beta)`` where beta is the
  analytically expected std of x at that point (var grows by alpha**2 per block, starting
  at 1 after each transition) and alpha = 0.2. ``skip_gain`` starts at ``skip_init`` = 1,
  which is what that variance bookkeeping assumes. (It used to start at 0, SkipInit: with
  Adam and AGC the scalar gains then random-walked near 0, so after 2,000 steps every
  residual branch still contributed under 2% and training sat on a plateau; measured in
  the flare runs.) The untrained model stays the identity through the zero final conv.
- ``adaptive_gradient_clip`` (unit-wise AGC, NFNets section 4.1) is applied every step,
  to all parameters except the final layer, as the paper does for the classifier.

The U-Net: a stem, ``len(widths)`` levels of residual blocks with strided transitions
down, nearest-neighbour (or, with ``upsample="bilinear"``, bilinear) upsampling with
concatenated skips and a 1x1 fusion transition up, and a final plain conv predicting a
correction added to the input. The final conv starts at zero so the untrained model is
exactly the identity (the no-op baseline of flare removal) and training only ever moves
away from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import LightSRModel
from ._common import check_image_batch, from_linear, pad_to_multiple, to_linear

__all__ = ["NFResUNetConfig", "NFResUNet", "ScaledStdConv2d", "activation_gamma", "adaptive_gradient_clip",
           "VARIANTS"]

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu}


@lru_cache
def activation_gamma(name: str) -> float:
    """1 / std(act(z)) for z ~ N(0, 1), by numerical integration on a fine grid.

    ReLU gives 1 / sqrt(1/2 - 1/(2 pi)) = 1.7129 exactly; SiLU 1.788 and GELU 1.702 agree
    with the constants timm's NFNets use (which were estimated by sampling) to 1e-3.
    """
    z = np.linspace(-12.0, 12.0, 240_001)
    density = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    values = ACTIVATIONS[name](torch.from_numpy(z)).numpy()
    mean = float(np.trapezoid(values * density, z))
    var = float(np.trapezoid(values**2 * density, z)) - mean**2
    return 1.0 / math.sqrt(var)


@dataclass
class NFResUNetConfig:
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # channels per U-Net level
    blocks_per_level: int = 2
    activation: str = "silu"
    alpha: float = 0.2  # residual branch scale (NFNets)
    eps: float = 1e-4  # Scaled WS epsilon (NFNets use 1e-4 in the variance)
    skip_init: float = 1.0  # initial skip_gain of every residual branch (0 = SkipInit)
    upsample: str = "nearest"  # decoder upsampling: "nearest" or "bilinear" (smooth, no 2**k-pixel blocks)
    output: str = "image"  # "image": a display-space correction; "flare": the flare layer in linear light

    def __post_init__(self):
        if self.output not in ("image", "flare"):
            raise ValueError(f"output must be 'image' or 'flare', got {self.output!r}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {self.upsample!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive ints, got {self.widths}")


class ScaledStdConv2d(nn.Conv2d):
    """Conv2d with Scaled Weight Standardization and a learnable per-output-channel gain."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, eps: float = 1e-4):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1))
        self.eps = eps
        self.reset_weight_scale(torch.randn_like(self.weight))
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def reset_weight_scale(self, weight: torch.Tensor | None = None) -> None:
        """Set the raw weight (``weight``, else the current one) to zero mean and std 1/sqrt(fan_in)
        per output unit. The standardization makes the output independent of that scale, but the
        optimizer's is not: Adam moves each element by about lr per step, so the relative (angular)
        step is lr / |w|. At std 1 (how these layers were first initialised) that is sqrt(fan_in),
        24x at fan_in 576, slower than in a plainly initialised conv, and training crawled."""
        w = self.weight if weight is None else weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp(min=1e-12)
        self.weight.copy_((w - mean) / (std * math.sqrt(self.weight[0].numel())))

    def standardized_weight(self) -> torch.Tensor:
        fan_in = self.weight[0].numel()
        mean = self.weight.mean(dim=(1, 2, 3), keepdim=True)
        var = (self.weight - mean).square().mean(dim=(1, 2, 3), keepdim=True)  # not .var(): it exports to ONNX wrongly
        return (self.weight - mean) * torch.rsqrt(torch.clamp(var * fan_in, min=self.eps)) * self.gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding)


class NFBlock(nn.Module):
    """x + alpha * skip_gain * conv(act(conv(act(x / beta))))."""

    def __init__(self, channels: int, beta: float, c: NFResUNetConfig):
        super().__init__()
        self.beta, self.alpha = beta, c.alpha
        self.act, self.gamma = ACTIVATIONS[c.activation], activation_gamma(c.activation)
        self.conv1 = ScaledStdConv2d(channels, channels, 3, eps=c.eps)
        self.conv2 = ScaledStdConv2d(channels, channels, 3, eps=c.eps)
        self.skip_gain = nn.Parameter(torch.tensor(float(c.skip_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(x / self.beta) * self.gamma
        h = self.act(self.conv1(h)) * self.gamma
        return x + self.conv2(h) * (self.alpha * self.skip_gain)


class NFResUNet(LightSRModel, tags=["flare-removal", "nfnet"], paper_url="https://arxiv.org/abs/2102.06171"):
    architecture = "nf-resunet"
    task = "flare-removal"
    config_class = NFResUNetConfig

    def __init__(self, config: NFResUNetConfig):
        super().__init__()
        self.config = config
        c = config
        self.act, self.gamma = ACTIVATIONS[c.activation], activation_gamma(c.activation)
        self.stem = ScaledStdConv2d(3, c.widths[0], 3, eps=c.eps)

        def level(width: int) -> tuple[nn.ModuleList, float]:
            # Expected variance is 1 after a transition and grows by alpha**2 per block.
            blocks = nn.ModuleList(
                [NFBlock(width, math.sqrt(1 + i * c.alpha**2), c) for i in range(c.blocks_per_level)]
            )
            return blocks, 1 + c.blocks_per_level * c.alpha**2

        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.skip_vars: list[float] = []
        for i, width in enumerate(c.widths):
            blocks, var = level(width)
            self.encoders.append(blocks)
            self.skip_vars.append(var)
            if i + 1 < len(c.widths):
                self.downs.append(ScaledStdConv2d(width, c.widths[i + 1], 3, stride=2, eps=c.eps))
        self.bottom_var = self.skip_vars[-1]
        self.fuses = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.up_vars: list[float] = []
        for i in reversed(range(len(c.widths) - 1)):
            self.fuses.append(ScaledStdConv2d(c.widths[i + 1] + c.widths[i], c.widths[i], 1, eps=c.eps))
            blocks, var = level(c.widths[i])
            self.decoders.append(blocks)
            self.up_vars.append(var)
        self.head = nn.Conv2d(c.widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # the untrained model is the identity (no-op baseline)
        nn.init.zeros_(self.head.bias)

    def size_multiple(self) -> int:
        return 2 ** (len(self.config.widths) - 1)

    def final_layer(self) -> nn.Module:
        return self.head

    def reset_weight_scale(self) -> None:
        """Rescale every standardized conv's raw weights to std 1/sqrt(fan_in) (the output is
        unchanged): a model trained with raw weights at std 1 then learns at a normal pace."""
        for m in self.modules():
            if isinstance(m, ScaledStdConv2d):
                m.reset_weight_scale()

    def tile_overlap(self) -> int:
        # Each level doubles the reach of its 3x3 convs; 2 convs per block plus transitions.
        reach = sum((2 * self.config.blocks_per_level + 2) * 2**i for i in range(len(self.config.widths)))
        return min(2 * reach, 128)

    def activation_bytes_per_pixel(self) -> int:
        w0 = self.config.widths[0]
        return 4 * (3 + 5 * w0 + 3)

    def _transition(self, x: torch.Tensor, var: float) -> torch.Tensor:
        return self.act(x / math.sqrt(var)) * self.gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, H, W) in [0, 1]: the photo without its flare."""
        return self.forward_with_flare(x)[0]

    def forward_with_flare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) in [0, 1] -> (clean image in [0, 1], flare layer in linear light).

        With ``output="flare"`` the head predicts the flare layer F and the clean image is
        ``from_linear(to_linear(x) - F)``; with ``output="image"`` it predicts a display-space
        correction and F is derived from it.
        """
        check_image_batch(x)
        padded, h, w = pad_to_multiple(x, self.size_multiple())
        # Centre the input so the stem sees roughly zero-mean, unit-scale data.
        feat = self.stem((padded - 0.5) * 2)
        skips = []
        for i, blocks in enumerate(self.encoders):
            for block in blocks:
                feat = block(feat)
            if i < len(self.downs):
                skips.append(feat)
                feat = self.downs[i](self._transition(feat, self.skip_vars[i]))
        var = self.bottom_var
        for fuse, blocks, skip, skip_var in zip(self.fuses, self.decoders, reversed(skips),
                                                reversed(self.skip_vars[:-1])):
            up = F.interpolate(feat, scale_factor=2, mode=self.config.upsample,
                               align_corners=False if self.config.upsample == "bilinear" else None)
            # Each half normalised by its own expected std before the fusing conv.
            feat = fuse(torch.cat([self._transition(up, var), self._transition(skip, skip_var)], dim=1))
            for block in blocks:
                feat = block(feat)
            var = 1 + self.config.blocks_per_level * self.config.alpha**2
        residual = self.head(self._transition(feat, var))[..., :h, :w]
        if self.config.output == "flare":
            y = from_linear(to_linear(x) - residual)
            return y, residual
        y = x + residual
        y = y if self.training else y.clamp(0, 1)
        return y, to_linear(x) - to_linear(y)


def _unitwise_norm(t: torch.Tensor) -> torch.Tensor:
    """Norm per output unit: over all but dim 0 for weights, the whole tensor for 0/1-d ones."""
    if t.ndim <= 1:
        return t.norm(2)
    return t.norm(2, dim=tuple(range(1, t.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_gradient_clip(parameters: Iterable[nn.Parameter], clip: float = 0.01, eps: float = 1e-3) -> None:
    """Unit-wise Adaptive Gradient Clipping (Brock et al. 2021), in place.

    Where ||G|| / max(||W||, eps) > clip for a unit, its gradient is rescaled to
    clip * max(||W||, eps) / ||G||. Pass ``model.agc_parameters()`` to leave out the final
    layer, as the paper does.
    """
    for p in parameters:
        if p.grad is None:
            continue
        max_norm = _unitwise_norm(p.detach()).clamp_(min=eps) * clip
        grad_norm = _unitwise_norm(p.grad)
        scale = max_norm / grad_norm.clamp(min=1e-6)
        p.grad.mul_(torch.where(grad_norm > max_norm, scale, torch.ones_like(scale)))


VARIANTS: dict[str, NFResUNetConfig] = {
    # Five levels, 16 channels at full resolution: 2.6x cheaper per step than [32, 64, 128]
    # (measured, 1 thread, 128 px patches) with a receptive field that spans a 128 px patch.
    # It predicts the flare layer in linear light and upsamples bilinearly (nearest left 16 px blocks).
    "nf-resunet": NFResUNetConfig(widths=[16, 32, 64, 128, 256], blocks_per_level=2, upsample="bilinear",
                                  output="flare"),
    "nf-resunet-test": NFResUNetConfig(widths=[4, 8], blocks_per_level=1),
    "nf-resunet-flare-test": NFResUNetConfig(widths=[4, 8], blocks_per_level=1, upsample="bilinear", output="flare"),
}
