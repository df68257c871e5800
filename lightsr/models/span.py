"""SPAN: a Swift Parameter-free Attention Network for efficient super-resolution.

Wan, Yu, et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution",
CVPR Workshops 2024 (winner of the NTIRE 2024 efficient-SR challenge's runtime track).

The network is plain 3x3 convolutions, which is what a CPU runs fastest per FLOP, with an
attention that costs no parameters: each block's output is ``(y + x) * (sigmoid(y) - 0.5)``
where ``y`` is its third conv's output, so the features themselves say where to attend
(the symmetric activation lets attention be positive or negative around zero).

- Each 3x3 conv is a ``Conv3XC`` in training: a 1x1 expansion (x ``gain``), a 3x3 conv and
  a 1x1 reduction in series, plus a parallel 1x1 skip. All linear, so at inference it is
  exactly one 3x3 conv (computed at the first eval-mode forward, cached until a weight changes; the saved
  file keeps the training branches, so fine-tuning stays possible).
- Block (SPAB): three Conv3XC with SiLU between them, then the attention above.
- Network: Conv3XC(3 -> C); ``num_blocks`` SPABs; a Conv3XC on the last block's output; a
  1x1 conv over the concatenation of the stem, the first block's output, the last block's
  first conv and the refined last output; a 3x3 conv to ``3 s^2`` channels and PixelShuffle.

How we differ from the paper:

- The input is the image in [0, 1] minus a mean colour (the paper also multiplies by 255).
- The output adds the input upsampled by nearest neighbour (ECBSR's and ABPN's free
  "anchor" residual): the net only learns the detail bicubic lacks, which makes the short
  training schedules of a CPU project converge much faster. ``anchor=False`` is the paper.
- The 1x1 stages of a Conv3XC pad their output with their own bias before the 3x3 (not the
  paper's pad-the-input-by-one then valid convs), which makes the fused conv exact at image
  borders with ordinary zero padding, as in ``ecbsr.py``.
- In eval mode the output is clamped to [0, 1].

Every layer is local (receptive field ``3 * num_blocks + 5`` LR pixels), so tiling with
that overlap is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import LightSRModel
from ._common import FusedConv3x3, check_image_batch, pad_with_bias

__all__ = ["SPANConfig", "SPAN", "Conv3XC", "SPAB", "VARIANTS"]

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # the DIV2K mean the efficient-SR line of work subtracts


@dataclass
class SPANConfig:
    scale: int = 2
    channels: int = 40  # C: the paper uses 48 (about 0.4M parameters); 40 keeps us under 0.3M
    num_blocks: int = 6
    gain: int = 2  # width multiplier inside each Conv3XC's training-time 1x1 -> 3x3 -> 1x1 branch
    anchor: bool = True  # add the nearest-upsampled input to the output

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"SPAN scale must be 2, 3 or 4, got {self.scale}")
        if self.num_blocks < 1 or self.channels < 1 or self.gain < 1:
            raise ValueError("num_blocks, channels and gain must be >= 1")


class Conv3XC(FusedConv3x3):
    """A 3x3 conv that trains as ``1x1 (x gain) -> 3x3 -> 1x1`` plus a 1x1 skip, and runs as
    one fused 3x3 conv in eval mode. (N, cin, H, W) -> (N, cout, H, W)."""

    def __init__(self, cin: int, cout: int, gain: int = 2):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1)
        self.expand = nn.Conv2d(cin, cin * gain, 1)
        self.conv = nn.Conv2d(cin * gain, cout * gain, 3)  # valid: the input is bias-padded
        self.reduce = nn.Conv2d(cout * gain, cout, 1)

    def fuse(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 conv (weight, bias) equal to the sum of both branches."""
        e, eb = self.expand.weight[:, :, 0, 0], self.expand.bias  # (m, cin)
        k, kb = self.conv.weight, self.conv.bias  # (n, m, 3, 3)
        r, rb = self.reduce.weight[:, :, 0, 0], self.reduce.bias  # (cout, n)
        w = torch.einsum("on,nmhw,mi->oihw", r, k, e)
        b = r @ (kb + (k * eb.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))) + rb
        w = w + F.pad(self.skip.weight, (1, 1, 1, 1))  # the 1x1 skip as the centre tap
        return w, b + self.skip.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.fused_forward(x)
        h = pad_with_bias(self.expand(x), self.expand.bias)
        return self.reduce(self.conv(h)) + self.skip(x)


class SPAB(nn.Module):
    """Swift parameter-free attention block: (N, C, H, W) -> (out, first conv's output)."""

    def __init__(self, channels: int, gain: int):
        super().__init__()
        self.c1 = Conv3XC(channels, channels, gain)
        self.c2 = Conv3XC(channels, channels, gain)
        self.c3 = Conv3XC(channels, channels, gain)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = self.c1(x)
        y3 = self.c3(F.silu(self.c2(F.silu(y1))))
        return (y3 + x) * (torch.sigmoid(y3) - 0.5), y1


class SPAN(LightSRModel, tags=["super-resolution", "span", "efficient-sr"],
           paper_url="https://arxiv.org/abs/2311.12770"):
    architecture = "span"
    task = "super-resolution"
    config_class = SPANConfig

    def __init__(self, config: SPANConfig):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.stem = Conv3XC(3, c.channels, c.gain)
        self.blocks = nn.ModuleList([SPAB(c.channels, c.gain) for _ in range(c.num_blocks)])
        self.refine = Conv3XC(c.channels, c.channels, c.gain)
        self.merge = nn.Conv2d(4 * c.channels, c.channels, 1)
        self.tail = nn.Conv2d(c.channels, 3 * c.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(c.scale)

    def final_layer(self) -> nn.Module:
        return self.tail

    def tile_overlap(self) -> int:
        # 3x3 convs in the longest path: stem, 3 per block, refine, tail; twice for exactness
        return 2 * (3 * self.config.num_blocks + 3)

    def activation_bytes_per_pixel(self) -> int:
        c = self.config.channels
        # the four tensors merge concatenates, plus a block's working set, plus the output
        return 4 * (4 * c + 3 * c + 2 * 3 * self.config.scale**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, scale*H, scale*W) in [0, 1]."""
        check_image_batch(x)
        stem = self.stem(x - self.mean)
        h, first, last_c1 = stem, None, None
        for block in self.blocks:
            h, last_c1 = block(h)
            first = h if first is None else first
        h = self.merge(torch.cat([stem, self.refine(h), first, last_c1], dim=1))
        y = self.tail(h)
        if self.config.anchor:
            y = y + x.repeat_interleave(self.config.scale**2, dim=1)
        y = self.shuffle(y)
        return y if self.training else y.clamp(0, 1)


# "span-s": the paper's design at 40 channels and 6 blocks, under 0.3M parameters;
# "span-xs": 28 channels and 4 blocks, a video-speed variant.
VARIANTS: dict[str, SPANConfig] = {
    "span-s": SPANConfig(channels=40, num_blocks=6),
    "span-xs": SPANConfig(channels=28, num_blocks=4),
    "span-test": SPANConfig(channels=8, num_blocks=1, gain=1),
}
