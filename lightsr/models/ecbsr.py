"""ECBSR: a re-parameterisable plain conv net for real-time super-resolution.

Zhang, Zeng, Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on
Mobile Devices", ACM Multimedia 2021.

In training every 3x3 conv is an Edge-oriented Convolution Block (ECB) of five parallel
branches: a 3x3 conv; a 1x1 expansion followed by a 3x3 conv; and 1x1 convs followed by
scaled Sobel-x, Sobel-y and Laplacian filters. They are all linear, so at inference the
block is exactly one 3x3 conv with summed weights. The network is ECB(3 -> C), M x
ECB(C -> C), ECB(C -> 3 s^2), each but the last followed by PReLU, then PixelShuffle(s),
plus the input upsampled by nearest neighbour (the paper's residual, which costs nothing).

Why it is here: the video models must run 640x360 -> 1280x720 at 12 frames/s on 2 CPU
cores. Thin layers are slow per FLOP on a CPU, so the deployed network must be a short
chain of plain 3x3 convs; the ECB branches give training the capacity that the plain
network lacks. How we differ from the paper:

- Fused weights are computed at the first eval-mode forward and cached until a weight changes, so the saved
  file keeps the training-time branches (fine-tuning stays possible) while inference
  runs the plain network.
- Border handling: the 1x1 branches pad their output with their own bias before the 3x3
  stage (as the authors' code does), so the fused conv is exact at image borders too.
- In eval mode the output is clamped to [0, 1].
- ``colors=1`` is the paper's own setting (its code trains and tests on the Y channel alone):
  the network reads BT.601 luma and writes luma, so all its width goes to the channel the SR
  protocol measures. The model still takes and returns RGB: the colour differences (R-Y, G-Y,
  B-Y) are upsampled bicubically, as Y-only SR papers (SRCNN, FSRCNN) make their colour
  outputs, and the network's luma is added to each of them. Adding the same amount to R, G
  and B moves Y by that amount and leaves Cb and Cr alone, so the output's luma is exactly
  the network's. ``colors=3`` (the default) super-resolves R, G and B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import LightSRModel
from ._common import FusedConv3x3, check_image_batch, pad_with_bias

__all__ = ["ECBSRConfig", "ECBSR", "EdgeConvBlock", "VARIANTS"]


@dataclass
class ECBSRConfig:
    scale: int = 2
    num_blocks: int = 4  # M
    channels: int = 16  # C
    expand: float = 2.0  # width multiplier of the 1x1 -> 3x3 branch
    colors: int = 3  # 3: the network super-resolves RGB; 1: luma alone, colour upsampled bicubically

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"ECBSR scale must be 2, 3 or 4, got {self.scale}")
        if self.num_blocks < 0 or self.channels < 1:
            raise ValueError("num_blocks must be >= 0 and channels >= 1")
        if self.colors not in (1, 3):
            raise ValueError(f"ECBSR colors must be 1 (luma) or 3 (RGB), got {self.colors}")


_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
EDGE_FILTERS = {"sobel_x": _SOBEL_X, "sobel_y": _SOBEL_X.t().contiguous(), "laplacian": _LAPLACIAN}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y the SR protocol measures (up to its offset and range)


def bicubic_subpixel_kernel(scale: int, a: float = -0.75) -> torch.Tensor:
    """(scale^2, 1, 5, 5): bicubic upsampling by ``scale`` as one 5x5 filter per output sub-pixel,
    so that a depthwise conv over the edge-padded input (2 px) and a PixelShuffle equal
    ``F.interpolate(mode="bicubic", align_corners=False)`` (Keys' kernel, a = -0.75, as PyTorch's).
    Output pixel s*k + r samples the input at k + (r + 0.5)/s - 0.5, whose four taps lie in k-2..k+2.
    One conv and a shuffle run several times faster than an Interpolate op in OpenVINO (measured)."""

    def keys(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    taps = torch.tensor([[keys(((r + 0.5) / scale - 0.5) - o) for o in range(-2, 3)] for r in range(scale)])
    return torch.einsum("yi,xj->yxij", taps, taps).reshape(scale * scale, 1, 5, 5)


class EdgeConvBlock(FusedConv3x3):
    """Five linear 3x3 branches in training; one fused 3x3 conv in eval mode."""

    def __init__(self, cin: int, cout: int, expand: float):
        super().__init__()
        mid = max(1, int(cout * expand))
        self.conv3 = nn.Conv2d(cin, cout, 3, padding=1)
        self.expand_1x1 = nn.Conv2d(cin, mid, 1)
        self.expand_3x3 = nn.Conv2d(mid, cout, 3)
        self.edge_1x1 = nn.ModuleDict({k: nn.Conv2d(cin, cout, 1) for k in EDGE_FILTERS})
        self.edge_scale = nn.ParameterDict({k: nn.Parameter(torch.randn(cout, 1, 1, 1) * 1e-3) for k in EDGE_FILTERS})
        self.edge_bias = nn.ParameterDict({k: nn.Parameter(torch.randn(cout) * 1e-3) for k in EDGE_FILTERS})
        for k, f in EDGE_FILTERS.items():
            mask = f.to(torch.get_default_device()).expand(cout, 1, 3, 3).clone()  # meta-device aware
            self.register_buffer(f"mask_{k}", mask, persistent=False)

    def fuse(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 conv (weight, bias) equal to the sum of the five branches."""
        w, b = self.conv3.weight, self.conv3.bias
        # 1x1 (mid x cin) then 3x3 (cout x mid): compose into cout x cin x 3 x 3
        k0, b0 = self.expand_1x1.weight[:, :, 0, 0], self.expand_1x1.bias
        k1, b1 = self.expand_3x3.weight, self.expand_3x3.bias
        w = w + torch.einsum("omhw,mi->oihw", k1, k0)
        b = b + (k1 * b0.view(1, -1, 1, 1)).sum(dim=(1, 2, 3)) + b1
        for k in EDGE_FILTERS:
            conv = self.edge_1x1[k]
            depthwise = self.edge_scale[k] * getattr(self, f"mask_{k}")  # (cout, 1, 3, 3)
            w = w + conv.weight[:, :, 0, 0][:, :, None, None] * depthwise  # (cout, cin, 3, 3)
            b = b + conv.bias * depthwise.sum(dim=(1, 2, 3)) + self.edge_bias[k]
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.fused_forward(x)
        y = self.conv3(x)
        y = y + self.expand_3x3(pad_with_bias(self.expand_1x1(x), self.expand_1x1.bias))
        for k in EDGE_FILTERS:
            conv = self.edge_1x1[k]
            t = pad_with_bias(conv(x), conv.bias)
            y = y + F.conv2d(t, self.edge_scale[k] * getattr(self, f"mask_{k}"), self.edge_bias[k],
                             groups=t.shape[1])
        return y


class ECBSR(LightSRModel, tags=["super-resolution", "ecbsr", "real-time"],
            paper_url="https://www4.comp.polyu.edu.hk/~cslzhang/paper/MM21_ECBSR.pdf"):
    architecture = "ecbsr"
    task = "super-resolution"
    config_class = ECBSRConfig

    def __init__(self, config: ECBSRConfig):
        super().__init__()
        self.config = config
        c = config
        chans = [c.colors] + [c.channels] * (c.num_blocks + 1)
        self.body = nn.ModuleList([EdgeConvBlock(a, b, c.expand) for a, b in zip(chans[:-1], chans[1:])])
        self.acts = nn.ModuleList([nn.PReLU(b) for b in chans[1:]])
        self.tail = EdgeConvBlock(c.channels, c.colors * c.scale**2, c.expand)
        self.shuffle = nn.PixelShuffle(c.scale)
        if c.colors == 1:  # fixed, not saved: RGB -> luma, and the colour path's bicubic filters
            self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("bicubic", bicubic_subpixel_kernel(c.scale).repeat(3, 1, 1, 1), persistent=False)

    def final_layer(self) -> nn.Module:
        return self.tail

    @torch.no_grad()
    def grow_identity(self, fresh: list[str]) -> list[int]:
        """Make each C -> C body block whose tensors all start fresh (names in ``fresh``) an identity:
        its plain 3x3 conv the identity, its other branches' last linear step zero, its PReLU slope 1.
        A deeper model warm-started from a shallower one (``--init``: the shallow model's blocks and
        tail load by name) then computes exactly what the shallow one did, and training starts from
        there rather than from a random tail of blocks (Net2DeeperNet, Chen et al., ICLR 2016).
        Returns the indices of the blocks so set."""
        fresh, grown = set(fresh), []
        for i, (block, act) in enumerate(zip(self.body, self.acts)):
            names = [f"body.{i}.{k}" for k in block.state_dict()] + [f"acts.{i}.{k}" for k in act.state_dict()]
            if block.conv3.in_channels != block.conv3.out_channels or not fresh.issuperset(names):
                continue
            block.conv3.weight.zero_()
            block.conv3.weight[:, :, 1, 1].copy_(torch.eye(block.conv3.out_channels))
            block.conv3.bias.zero_()
            block.expand_3x3.weight.zero_()
            block.expand_3x3.bias.zero_()
            for k in EDGE_FILTERS:
                block.edge_scale[k].zero_()
                block.edge_bias[k].zero_()
            act.weight.fill_(1.0)
            grown.append(i)
        return grown

    def tile_overlap(self) -> int:
        # every 3x3 conv reaches one pixel further, bicubic colour two; twice for exactness
        return 2 * (self.config.num_blocks + 2 + (2 if self.config.colors == 1 else 0))

    def activation_bytes_per_pixel(self) -> int:
        c = self.config
        return 4 * (3 + 2 * c.channels + 2 * c.colors * c.scale**2 + (3 * c.scale**2 if c.colors == 1 else 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, scale*H, scale*W) in [0, 1]."""
        check_image_batch(x)
        c, s2 = self.config, self.config.scale**2
        rgb = x
        if c.colors == 1:
            x = (rgb * self.luma).sum(dim=1, keepdim=True)
        h = x
        for block, act in zip(self.body, self.acts):
            h = act(block(h))
        # nearest-neighbour residual: each output sub-pixel starts from its input pixel
        sub = self.tail(h) + x.repeat_interleave(s2, dim=1)
        if c.colors == 1:  # the network's luma sub-pixels, plus each colour difference from luma upsampled bicubically
            colour = F.conv2d(F.pad(rgb - x, (2, 2, 2, 2), mode="replicate"), self.bicubic, groups=3)
            sub = colour + sub.repeat(1, 3, 1, 1)
        y = self.shuffle(sub)
        return y if self.training else y.clamp(0, 1)


# "ecbsr-m4c16" is the paper's real-time configuration (M=4, C=16); "ecbsr-m4c8" halves the
# width for x4 video, where the output pixels outnumber the input 16 to 1. "ecbsr-m4c16-y" is
# M4C16 on luma, as the paper trains and measures it; "ecbsr-m6c16-y" two blocks deeper, grown
# from it (``grow_identity``) for the video target of issue 15.
VARIANTS: dict[str, ECBSRConfig] = {
    "ecbsr-m4c16": ECBSRConfig(num_blocks=4, channels=16),
    "ecbsr-m4c8": ECBSRConfig(num_blocks=4, channels=8),
    "ecbsr-m4c16-y": ECBSRConfig(num_blocks=4, channels=16, colors=1),
    "ecbsr-m6c16-y": ECBSRConfig(num_blocks=6, channels=16, colors=1),
    "ecbsr-test": ECBSRConfig(num_blocks=1, channels=4, expand=1.0),
    "ecbsr-y-test": ECBSRConfig(num_blocks=1, channels=4, expand=1.0, colors=1),
}
