"""Residual Dense Network for single-image super-resolution.

Zhang, Tian, Kong, Zhong, Fu, "Residual Dense Network for Image Super-Resolution", CVPR 2018.

Shallow features (two 3x3 convs), D residual dense blocks of C conv+ReLU layers with
growth rate G, each closed by a 1x1 local feature fusion and a local residual; global
feature fusion (1x1 then 3x3) over all block outputs with a global residual; an upsampler
and a 3x3 output conv.

How we differ from the paper:
- ``upsampler="transpose"`` replaces sub-pixel convolution by one ConvTranspose2d, the
  seed project's "RDTN". Its kernel is ``2s - s % 2`` with stride ``s``, so the kernel is
  covered evenly by the stride phases, and it is initialised as a bilinear kernel times a
  random channel mix: at init it is a smooth upsampler with no checkerboard (Odena et al.,
  "Deconvolution and Checkerboard Artifacts", 2016).
- The sub-pixel conv is ICNR-initialised (Aitken et al., 2017) for the same reason.
- ``image_residual=True`` adds a bilinear upsample of the input to the output so small
  models learn only the missing detail; off for the paper configuration.
- No MATLAB-style mean shift: inputs are in [0, 1] and the first conv has a bias.
- In eval mode the output is clamped to [0, 1]; in training it is not (the clamp would
  cut the gradient of pixels that overshoot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import LightSRModel
from ._common import check_image_batch

__all__ = ["RDNConfig", "RDN", "VARIANTS"]


@dataclass
class RDNConfig:
    scale: int = 2
    num_blocks: int = 16  # D
    num_layers: int = 8  # C
    growth: int = 64  # G
    features: int = 64  # G0
    upsampler: Literal["subpixel", "transpose"] = "subpixel"
    image_residual: bool = False

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"RDN scale must be 2, 3 or 4, got {self.scale}")
        if self.upsampler not in ("subpixel", "transpose"):
            raise ValueError(f"upsampler must be 'subpixel' or 'transpose', got {self.upsampler!r}")
        for name in ("num_blocks", "num_layers", "growth", "features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.conv(x))], dim=1)


class ResidualDenseBlock(nn.Module):
    def __init__(self, features: int, growth: int, num_layers: int):
        super().__init__()
        self.layers = nn.Sequential(*[DenseLayer(features + i * growth, growth) for i in range(num_layers)])
        self.fusion = nn.Conv2d(features + num_layers * growth, features, 1)  # local feature fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fusion(self.layers(x))  # local residual learning


def bilinear_kernel(size: int, factor: int) -> torch.Tensor:
    """The (size, size) kernel that makes a stride-``factor`` transposed conv a bilinear upsampler."""
    center = (size - 1) / 2 if size % 2 == 1 else factor - 0.5
    coords = torch.arange(size, dtype=torch.float32)
    k1 = 1 - (coords - center).abs() / factor
    return k1[:, None] * k1[None, :]


def icnr_(conv: nn.Conv2d, scale: int) -> None:
    """ICNR: make each group of ``scale**2`` sub-pixel output channels start identical."""
    out_channels = conv.weight.shape[0] // (scale * scale)
    sub = torch.empty(out_channels, *conv.weight.shape[1:])
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.copy_(sub.repeat_interleave(scale * scale, dim=0))
        conv.bias.zero_()


class SubpixelUpsampler(nn.Sequential):
    """conv + PixelShuffle, once for x2/x3 and twice (x2, x2) for x4, as in the paper."""

    def __init__(self, features: int, growth: int, scale: int):
        steps = [2, 2] if scale == 4 else [scale]
        layers: list[nn.Module] = []
        channels = features
        for s in steps:
            conv = nn.Conv2d(channels, growth * s * s, 3, padding=1)
            icnr_(conv, s)
            layers += [conv, nn.PixelShuffle(s)]
            channels = growth
        super().__init__(*layers)


class TransposeUpsampler(nn.Module):
    """One ConvTranspose2d of stride ``scale``, bilinear at init (the seed's RDTN)."""

    def __init__(self, features: int, growth: int, scale: int):
        super().__init__()
        kernel = 2 * scale - scale % 2
        padding = (kernel - scale) // 2  # output is exactly scale * input for this kernel
        self.deconv = nn.ConvTranspose2d(features, growth, kernel, stride=scale, padding=padding)
        mix = torch.empty(growth, features)
        nn.init.kaiming_uniform_(mix, a=math.sqrt(5))
        with torch.no_grad():
            # weight is (in, out, k, k): a channel mix times one shared bilinear kernel
            self.deconv.weight.copy_(mix.t()[:, :, None, None] * bilinear_kernel(kernel, scale))
            self.deconv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(x)


class RDN(LightSRModel, tags=["super-resolution", "rdn"], paper_url="https://arxiv.org/abs/1802.08797"):
    architecture = "rdn"
    task = "super-resolution"
    config_class = RDNConfig

    def __init__(self, config: RDNConfig):
        super().__init__()
        self.config = config
        c = config
        self.sfe1 = nn.Conv2d(3, c.features, 3, padding=1)
        self.sfe2 = nn.Conv2d(c.features, c.features, 3, padding=1)
        self.blocks = nn.ModuleList(
            [ResidualDenseBlock(c.features, c.growth, c.num_layers) for _ in range(c.num_blocks)]
        )
        self.gff = nn.Sequential(
            nn.Conv2d(c.num_blocks * c.features, c.features, 1),
            nn.Conv2d(c.features, c.features, 3, padding=1),
        )
        upsampler = SubpixelUpsampler if c.upsampler == "subpixel" else TransposeUpsampler
        self.upsample = upsampler(c.features, c.growth, c.scale)
        self.output = nn.Conv2d(c.growth, 3, 3, padding=1)
        if c.image_residual:
            # Start as plain bilinear upscaling (about 33 dB on Set5 x2) instead of bilinear
            # plus random noise; training then only adds detail.
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)

    def final_layer(self) -> nn.Module:
        return self.output

    def tile_overlap(self) -> int:
        # Receptive-field radius in input pixels: every 3x3 conv adds one. Past it, a tile's
        # output no longer depends on where the tile was cut.
        c = self.config
        convs = 2 + c.num_blocks * c.num_layers + 1 + (2 if c.scale == 4 else 1) + 1
        return convs

    def activation_bytes_per_pixel(self) -> int:
        c = self.config
        # The widest live tensors: a block's growing concat next to the stacked block outputs.
        widest = c.features + c.num_layers * c.growth + c.num_blocks * c.features
        return 4 * (widest + c.growth * c.scale**2 * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, scale*H, scale*W) in [0, 1]."""
        check_image_batch(x)
        f_1 = self.sfe1(x)
        h = self.sfe2(f_1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.gff(torch.cat(outs, dim=1)) + f_1  # global residual learning
        y = self.output(self.upsample(h))
        if self.config.image_residual:
            y = y + F.interpolate(x, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        return y if self.training else y.clamp(0, 1)


# Named variants. "rdn" is the paper; "rdn-light" is the seed project's shrunken RDN (D=5,
# C=4) at the width measured to fit 2 CPU cores for photos; "rdn-tiny" is sized for video
# on 2 cores (G0=16, G=8, D=3, C=3: about 25K parameters, 163 ms for 640x360 -> 1280x720
# with channels_last, the fastest RDN of the measurements in BENCHMARKS.md).
VARIANTS: dict[str, RDNConfig] = {
    "rdn": RDNConfig(num_blocks=16, num_layers=8, growth=64, features=64),
    "rdn-light": RDNConfig(num_blocks=5, num_layers=4, growth=32, features=64, image_residual=True),
    "rdn-tiny": RDNConfig(num_blocks=3, num_layers=3, growth=8, features=16, image_residual=True),
    "rdn-test": RDNConfig(num_blocks=2, num_layers=2, growth=4, features=8, image_residual=True),
}
