"""Pix2Pix: a U-Net generator and the 70x70 PatchGAN discriminator.

Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017 (the ``unet_256`` generator and ``basic`` 3-layer discriminator of
the authors' pytorch-CycleGAN-and-pix2pix code).

The generator is the saved, hub-loadable model; ``PatchDiscriminator`` lives here too so
the training script stays thin.

How we differ from the paper:
- Any input size: the image is padded (reflect, else replicate) to a multiple of
  ``2**num_downs`` and cropped back.
- BatchNorm uses running statistics and dropout is off in eval mode. The paper keeps both
  in training mode at test time; with running statistics a pixel depends only on its
  neighbourhood, so large photos can be processed in tiles.
- ``image_residual=True`` predicts a correction added to the input, which suits
  restoration (most pixels should pass through unchanged); off for the paper setting.
- Inputs/outputs are [0, 1]; the network's tanh range [-1, 1] is mapped inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import LightSRModel
from ._common import check_image_batch, from_linear, pad_to_multiple, to_linear

__all__ = ["Pix2PixConfig", "Pix2Pix", "PatchDiscriminator", "VARIANTS"]


@dataclass
class Pix2PixConfig:
    base_channels: int = 64  # ngf
    num_downs: int = 8  # 8 for unet_256: a 256x256 input reaches 1x1 at the bottleneck
    max_channels: int = 512  # channel cap (ngf * 8 in the paper)
    dropout: float = 0.5  # in the three innermost decoder levels
    image_residual: bool = False
    disc_channels: int = 64  # ndf of the PatchGAN trained with it (not saved in the generator)
    disc_layers: int = 3  # 3 gives the 70x70 receptive field
    upsample: str = "transpose"  # decoder: "transpose" (the paper's 4x4 transposed conv) or "bilinear" (resize
    # then 3x3 conv: no checkerboard; Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", 2016)
    output: str = "image"  # "image" (or a correction, image_residual) or "flare": the flare layer in linear light

    def __post_init__(self):
        if self.num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {self.num_downs}")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {self.base_channels}")
        if self.upsample not in ("transpose", "bilinear"):
            raise ValueError(f"upsample must be 'transpose' or 'bilinear', got {self.upsample!r}")
        if self.output not in ("image", "flare"):
            raise ValueError(f"output must be 'image' or 'flare', got {self.output!r}")


class UNetLevel(nn.Module):
    """One encoder/decoder level around an inner module: down -> inner -> up, with a skip."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None, *, outermost=False, innermost=False,
                 dropout: float = 0.0, upsample: str = "transpose"):
        super().__init__()
        self.outermost = outermost
        down = [nn.Conv2d(3 if outermost else outer, inner, 4, stride=2, padding=1, bias=False)]
        if not outermost:
            down = [nn.LeakyReLU(0.2)] + down
        if not outermost and not innermost:
            down += [nn.BatchNorm2d(inner)]
        up_in = inner if innermost else inner * 2
        out_ch = 3 if outermost else outer
        if upsample == "bilinear":
            up: list[nn.Module] = [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                   nn.Conv2d(up_in, out_ch, 3, padding=1, bias=outermost)]
        else:
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, out_ch, 4, stride=2, padding=1, bias=outermost)]
        if outermost:
            up += [nn.Tanh()]
        else:
            up += [nn.BatchNorm2d(outer)]
            if dropout > 0:
                up += [nn.Dropout(dropout)]
        self.down = nn.Sequential(*down)
        self.submodule = submodule if submodule is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.submodule(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


class Pix2Pix(LightSRModel, tags=["flare-removal", "pix2pix"], paper_url="https://arxiv.org/abs/1611.07004"):
    architecture = "pix2pix"
    task = "flare-removal"
    config_class = Pix2PixConfig

    def __init__(self, config: Pix2PixConfig):
        super().__init__()
        self.config = config
        c = config
        widths = [min(c.base_channels * 2**i, c.max_channels) for i in range(c.num_downs)]
        # Build from the bottleneck outwards, as the authors' UnetGenerator does.
        level: nn.Module | None = None
        for i in reversed(range(c.num_downs)):
            inner = widths[i]
            outer = widths[i - 1] if i > 0 else widths[0]
            innermost = i == c.num_downs - 1
            # dropout on the decoder levels just outside the bottleneck (3 in unet_256)
            drop = c.dropout if c.num_downs - 4 <= i < c.num_downs - 1 else 0.0
            level = UNetLevel(outer, inner, level, outermost=i == 0, innermost=innermost, dropout=drop,
                              upsample=c.upsample)
        self.unet = level
        if c.output == "flare":  # start as the identity: no flare predicted
            nn.init.zeros_(self.final_layer().weight)
            nn.init.zeros_(self.final_layer().bias)

    def size_multiple(self) -> int:
        return 2**self.config.num_downs

    def final_layer(self) -> nn.Module:
        return self.unet.up[-2]

    def tile_overlap(self) -> int:
        # The bottleneck sees the whole padded tile, so there is no finite receptive field to
        # cover; one bottleneck cell (2**num_downs pixels, at most 128) of context keeps tiled
        # output within 1/255 of whole-image output (tests/test_models.py).
        return min(2**self.config.num_downs, 128)

    def activation_bytes_per_pixel(self) -> int:
        # Full-resolution tensors: input, skip (2 * base) and the outermost decoder output.
        return 4 * (3 + 4 * self.config.base_channels + 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, H, W) in [0, 1]: the photo without its flare."""
        return self.forward_with_flare(x)[0]

    def forward_with_flare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) in [0, 1] -> (clean image in [0, 1], flare layer in linear light).

        With ``output="flare"`` the tanh output is the flare layer F in [-1, 1] and the clean
        image is ``from_linear(to_linear(x) - F)``.
        """
        check_image_batch(x)
        padded, h, w = pad_to_multiple(x, self.size_multiple())
        t = self.unet(padded * 2 - 1)[..., :h, :w]
        if self.config.output == "flare":
            return from_linear(to_linear(x) - t), t
        y = (t + 1) / 2
        if self.config.image_residual:
            y = x + (y - 0.5) * 2  # tanh range covers corrections of either sign
        y = y if self.training else y.clamp(0, 1)
        return y, to_linear(x) - to_linear(y)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: (N, 6, H, W) = cat(input, output) in [0, 1] -> (N, 1, h, w) logits."""

    def __init__(self, config: Pix2PixConfig):
        super().__init__()
        ndf, n = config.disc_channels, config.disc_layers
        layers: list[nn.Module] = [nn.Conv2d(6, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for i in range(1, n + 1):
            prev, mult = mult, min(2**i, 8)
            stride = 2 if i < n else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([inputs, outputs], dim=1) * 2 - 1)


# "pix2pix" is the paper's unet_256 (54M parameters, 185 GFLOPs per megapixel).
# "pix2pix-light" is sized to train on 2 CPU cores in hours: half the width, 6 levels (a
# 128 px training patch reaches 2x2 at the bottleneck), channels capped at 128 (2.6M
# parameters, 35 GFLOPs per megapixel), a half-width PatchGAN (same 70x70 receptive
# field). It predicts the flare layer in linear light to subtract rather than the whole
# image, and its decoder resizes then convolves (the transposed convs left a checkerboard).
# The first try at 256 channels (7.3M) with the full PatchGAN took 1.2 s per step of 8
# patches on one core and 150 MB per resumable checkpoint.
VARIANTS: dict[str, Pix2PixConfig] = {
    "pix2pix": Pix2PixConfig(),
    "pix2pix-light": Pix2PixConfig(base_channels=32, num_downs=6, max_channels=128, disc_channels=32,
                                   upsample="bilinear", output="flare"),
    "pix2pix-test": Pix2PixConfig(base_channels=4, num_downs=3, max_channels=16, disc_channels=4, disc_layers=2,
                                  image_residual=True),
    "pix2pix-flare-test": Pix2PixConfig(base_channels=4, num_downs=3, max_channels=16, disc_channels=4, disc_layers=2,
                                        upsample="bilinear", output="flare"),
}
