"""A fourth flare synthesis that no model trains on: the held-out generator for measurement.

The optics, hand-drawn and streak generators can all be trained on, so none of them can show
how a model does on flare drawn some other way, which is what real photos and other people's
generators are. This one is built from primitives the others lack, and only
``benchmarks/bench_flare.py`` uses it:

- **bloom:** each lamp's glow is a sum of three Gaussians about a decade apart (the others
  use an exponential, a Moffat profile or a PSF);
- **shimmer:** tens to hundreds of hair-thin radial rays of random length, brightness and hue
  around each lamp (the fine spectral spikes of scattering flare, as in Flare7K's "shimmer"),
  drawn from an angular profile, so their number costs nothing;
- **ring ghosts:** hollow, coloured annuli, one round the lamp (a filter or hood reflection)
  and others on the line from the lamp through the centre, with a dark inside;
- **a lateral-colour halo:** the glow is wider in red than in blue, so its edge is orange.

Composition is that of the others (flare is light: linear light, lamps 30 to 3,000 times the
sensor's white, the sensor clips, noise identical in input and target, JPEG), with a tone curve
of its own: a gamma and an S-shaped contrast curve about mid-grey.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .optics import check_scene, draw_lamp, finish_pair

__all__ = ["ShimmerConfig", "synthesize_shimmer_pair"]


@dataclass
class ShimmerConfig:
    exposure: tuple[float, float] = (0.15, 0.9)  # scene brightness scale
    lamps: tuple[int, int] = (1, 3)
    lamp_radius: tuple[float, float] = (1.5, 6.0)  # px at a ~512 px frame
    lamp_log10: tuple[float, float] = (1.5, 3.5)  # lamp radiance over the sensor's white
    bloom: tuple[float, float] = (0.3, 3.0)  # peak of the bloom's core over white, before the sensor clips
    bloom_mid: tuple[float, float] = (0.02, 0.3)  # the middle Gaussian's peak (the widest: 2 to 10% of it)
    rays: tuple[int, int] = (20, 240)
    ray_gain: tuple[float, float] = (0.03, 0.6)  # brightest ray's peak over white, next to the lamp
    ray_reach: tuple[float, float] = (0.03, 0.4)  # longest ray's e-folding length, of the frame's diagonal
    ring_prob: float = 0.6
    ghosts: tuple[int, int] = (0, 4)
    ghost_gain: tuple[float, float] = (0.03, 0.3)
    noise: tuple[float, float] = (0.0, 0.008)
    jpeg_prob: float = 0.5


def synthesize_shimmer_pair(scene: np.ndarray, rng: np.random.Generator, cfg: ShimmerConfig | None = None, *,
                            return_layers: bool = False):
    """(H, W, 3) uint8 clean photo -> (input with flare, target without) uint8 (H, W, 3); with
    ``return_layers`` also ``{"flare": (H, W) uint8}``, the noise-free max-over-channels
    |input - target| that ``lightsr.evaluate.evaluate_flare`` reads its regions from."""
    cfg = cfg or ShimmerConfig()
    check_scene(scene)
    h, w = scene.shape[:2]
    diag = math.hypot(h, w)
    size = diag / math.hypot(512, 384)
    gamma = rng.uniform(2.0, 2.4)
    linear = (scene.astype(np.float32) / 255.0) ** gamma * rng.uniform(*cfg.exposure)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lamps = np.zeros((h, w, 3), np.float32)
    flare = np.zeros((h, w, 3), np.float32)
    for _ in range(int(rng.integers(cfg.lamps[0], cfg.lamps[1] + 1))):
        sx, sy, tint, r, dx, dy, d, lamp = draw_lamp(xx, yy, rng, cfg.lamp_radius, cfg.lamp_log10, size)
        lamps += lamp

        # bloom: three Gaussians about a decade apart in width and in peak, each channel's a little wider
        # towards red
        mid = rng.uniform(*cfg.bloom_mid)
        peaks = (rng.uniform(*cfg.bloom), mid, mid * rng.uniform(0.02, 0.1))
        widths = [1.5 * r * 10 ** (k * rng.uniform(0.5, 0.8)) for k in range(3)]
        spread = rng.uniform(0.0, 0.15)
        for c, stretch in enumerate((1 + spread, 1.0, 1 - spread)):
            for peak, width in zip(peaks, widths):
                flare[..., c] += peak * tint[c] * np.exp(-0.5 * (d / (width * stretch)) ** 2)

        flare += _shimmer(dx, dy, d, r, diag, tint, rng, cfg)
        if rng.random() < cfg.ring_prob:  # a ring round the lamp itself
            flare += _ring(d, rng.uniform(0.04, 0.2) * diag, tint, rng, cfg)
        cx, cy = w / 2, h / 2
        for _ in range(int(rng.integers(cfg.ghosts[0], cfg.ghosts[1] + 1))):
            t = rng.uniform(-1.4, 0.7)
            gx, gy = cx + t * (sx - cx), cy + t * (sy - cy)
            flare += _ring(np.hypot(xx - gx, yy - gy), rng.uniform(0.01, 0.08) * diag, tint, rng, cfg)

    contrast = rng.uniform(0.0, 0.6)
    noise = rng.normal(0, rng.uniform(*cfg.noise), linear.shape).astype(np.float32) \
        * np.sqrt(np.clip(linear, 1e-4, 1) * 4 + 0.05)

    def render(light: np.ndarray, noisy: bool = True) -> np.ndarray:
        lin = np.clip(linear + lamps + light + (noise if noisy else 0), 0, 1)  # the sensor clips
        x = lin ** (1 / gamma)
        x = x + contrast * x * (1 - x) * (2 * x - 1)  # an S-curve about mid-grey that keeps 0 and 1
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

    return finish_pair(render, flare, rng, cfg.jpeg_prob, return_layers)


def _shimmer(dx, dy, d, r, diag, tint, rng, cfg) -> np.ndarray:
    """Thin radial rays: an angular profile (a narrow peak per ray, its own length and hue) looked
    up at every pixel's angle, fading with distance along each ray."""
    bins = 4096
    angle = np.arange(bins) * (2 * math.pi / bins)
    gain = np.zeros((bins, 3), np.float32)
    reach = np.full(bins, 1e-3, np.float32)
    longest = rng.uniform(*cfg.ray_reach) * diag
    brightest = rng.uniform(*cfg.ray_gain)
    for _ in range(int(rng.integers(cfg.rays[0], cfg.rays[1] + 1))):
        a = rng.uniform(0, 2 * math.pi)
        width = rng.uniform(0.002, 0.012)  # radians: a ray a pixel or two wide some tens of px out
        off = np.angle(np.exp(1j * (angle - a)))
        shape = np.exp(-0.5 * (off / width) ** 2).astype(np.float32)
        hue = tint * rng.uniform(0.6, 1.0, 3)
        gain += brightest * rng.uniform(0.05, 1.0) ** 2 * shape[:, None] * hue
        reach = np.maximum(reach, longest * rng.uniform(0.1, 1.0) * shape)
    idx = (np.arctan2(dy, dx) % (2 * math.pi) * (bins / (2 * math.pi))).astype(np.int64) % bins
    fall = np.exp(-d / reach[idx]) * np.clip(d / (2 * r), 0, 1)  # rays start outside the lamp
    return gain[idx] * fall[..., None]


def _ring(d, radius, tint, rng, cfg) -> np.ndarray:
    """A hollow coloured annulus of ``radius`` px around the centre of ``d`` (distances to it):
    a Gaussian ring, slightly larger in red than in blue, over a faint dark-centred disc."""
    out = np.zeros(d.shape + (3,), np.float32)
    gain = rng.uniform(*cfg.ghost_gain)
    width = radius * rng.uniform(0.04, 0.2)
    spread = rng.uniform(0.0, 0.08)
    colour = tint * rng.uniform(0.4, 1.0, 3)
    fill = rng.uniform(0.0, 0.3)
    for c, s in enumerate((1 + spread, 1.0, 1 - spread)):
        rr = radius * s
        ring = np.exp(-0.5 * ((d - rr) / width) ** 2)
        disc = np.clip((rr - d) / 2 + 0.5, 0, 1) * (d / rr) ** 2  # darker inside, brighter to the rim
        out[..., c] = gain * colour[c] * (ring + fill * disc)
    return out
