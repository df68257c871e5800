"""A third flare synthesis that no model trains on: a held-out generator for measurement.

Both training generators (``lightsr.data.optics``, ``lightsr.data.flare``) are what the
shipped models learned from, so their validation sets cannot show how a model does on flare
drawn some other way, which is what real photos and other people's generators are. This one
is built from different primitives, and only ``benchmarks/bench_flare.py`` uses it:

- **glow:** a Moffat profile ``(1 + (d/alpha)^2)^-beta`` around each lamp (the drawn
  generator's glow is exponential, the optics one is a PSF);
- **streaks:** one or two long, thin lines through the lamp with a squared-Lorentzian
  cross-section and an exponential fall-off along them, mostly near horizontal (anamorphic
  lenses, wiped windscreens, the "long diagonal streak through a street lamp" of night photos);
- **iris ghosts:** a chain of hexagonal or round ghosts on the line from the lamp through
  the centre, each with a brighter rim and lateral chromatic aberration (the red, green and
  blue images of a ghost differ in size, so its edges are coloured);
- **haze:** a flat veil tinted like the lamp.

Composition follows the others (flare is light: linear light, lamps 20 to 2,000 times the
sensor's white, the sensor clips, then a tone curve, noise identical in input and target,
JPEG), but the tone curve is a filmic shoulder and the sRGB curve rather than a power law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .optics import check_scene, draw_lamp, finish_pair

__all__ = ["StreakConfig", "synthesize_streak_pair"]


@dataclass
class StreakConfig:
    exposure: tuple[float, float] = (0.2, 0.9)  # scene brightness scale
    lamps: tuple[int, int] = (1, 3)
    lamp_radius: tuple[float, float] = (1.5, 7.0)  # px at a ~512 px frame
    lamp_log10: tuple[float, float] = (1.3, 3.3)  # lamp radiance over the sensor's white
    glow: tuple[float, float] = (0.3, 3.0)  # peak glow over white, before the sensor clips
    streak_prob: float = 0.8
    streak_gain: tuple[float, float] = (0.3, 3.0)  # streak peak over white
    ghosts: tuple[int, int] = (0, 6)
    ghost_gain: tuple[float, float] = (0.02, 0.25)
    haze_prob: float = 0.4  # a veil over the whole frame (then no pixel is background)
    haze: tuple[float, float] = (0.0, 0.03)
    noise: tuple[float, float] = (0.0, 0.006)
    jpeg_prob: float = 0.5


def synthesize_streak_pair(scene: np.ndarray, rng: np.random.Generator, cfg: StreakConfig | None = None, *,
                           return_layers: bool = False):
    """(H, W, 3) uint8 clean photo -> (input with flare, target without) uint8 (H, W, 3); with
    ``return_layers`` also ``{"flare": (H, W) uint8}``, the noise-free max-over-channels
    |input - target| that ``lightsr.evaluate.evaluate_flare`` reads its regions from."""
    cfg = cfg or StreakConfig()
    check_scene(scene)
    h, w = scene.shape[:2]
    diag = math.hypot(h, w)
    size = diag / math.hypot(512, 384)
    linear = (scene.astype(np.float32) / 255.0) ** 2.2 * rng.uniform(*cfg.exposure)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lamps = np.zeros((h, w, 3), np.float32)
    flare = np.zeros((h, w, 3), np.float32)
    for _ in range(int(rng.integers(cfg.lamps[0], cfg.lamps[1] + 1))):
        sx, sy, tint, r, dx, dy, d, lamp = draw_lamp(xx, yy, rng, cfg.lamp_radius, cfg.lamp_log10, size)
        lamps += lamp

        alpha, beta = rng.uniform(0.5, 2.0) * r, rng.uniform(1.2, 2.2)
        fade = np.clip(2 - d / (rng.uniform(10, 30) * alpha), 0, 1)  # the glow ends, where a lens's does
        layer = rng.uniform(*cfg.glow) * (1 + (d / alpha) ** 2) ** -beta * fade

        if rng.random() < cfg.streak_prob:
            base = rng.normal(0, 0.25) if rng.random() < 0.7 else rng.uniform(0, math.pi)  # mostly horizontal
            for k in range(1 + int(rng.random() < 0.3)):  # sometimes a cross
                phi = base + k * rng.uniform(0.3, math.pi / 2)
                along = dx * math.cos(phi) + dy * math.sin(phi)
                across = -dx * math.sin(phi) + dy * math.cos(phi)
                half = rng.uniform(0.6, 2.5) * size  # width of the squared-Lorentzian cross-section, px
                reach = rng.uniform(0.15, 0.9) * diag
                layer = layer + rng.uniform(*cfg.streak_gain) / (1 + (across / half) ** 2) ** 2 \
                    * np.exp(-np.abs(along) / reach) * np.clip(d / (2 * r) + 0.2, 0, 1)

        flare += layer[..., None] * tint * rng.uniform(0.85, 1.0, 3)
        flare += _ghost_chain(xx, yy, sx, sy, w, h, diag, tint, rng, cfg)
        if rng.random() < cfg.haze_prob:
            flare += rng.uniform(*cfg.haze) * tint

    shoulder = rng.uniform(0.0, 1.5)
    noise = rng.normal(0, rng.uniform(*cfg.noise), linear.shape).astype(np.float32) \
        * np.sqrt(np.clip(linear, 1e-4, 1) * 4 + 0.05)

    def render(light: np.ndarray, noisy: bool = True) -> np.ndarray:
        lin = np.clip(linear + lamps + light + (noise if noisy else 0), 0, 1)  # the sensor clips
        toned = lin * (1 + shoulder) / (1 + shoulder * lin)  # a shoulder that keeps 0 and 1 where they are
        # then the sRGB curve, whose linear toe keeps the slope finite at black (a pure power would
        # turn a trace of flare on a noisy black pixel into several levels)
        srgb = np.where(toned <= 0.0031308, 12.92 * toned, 1.055 * toned ** (1 / 2.4) - 0.055)
        return np.round(srgb * 255).astype(np.uint8)

    return finish_pair(render, flare, rng, cfg.jpeg_prob, return_layers)


def _ghost_chain(xx, yy, sx, sy, w, h, diag, tint, rng, cfg) -> np.ndarray:
    """Iris ghosts on the line from the lamp through the centre, flat with a brighter rim, each
    drawn three times at slightly different sizes for red, green and blue (lateral colour)."""
    out = np.zeros((h, w, 3), np.float32)
    cx, cy = w / 2, h / 2
    sides = int(rng.choice([0, 6, 6, 8]))
    turn = rng.uniform(0, math.pi)
    for _ in range(int(rng.integers(cfg.ghosts[0], cfg.ghosts[1] + 1))):
        t = rng.uniform(-1.3, 0.6)
        gx, gy = cx + t * (sx - cx), cy + t * (sy - cy)
        radius = rng.uniform(0.01, 0.07) * diag
        spread = rng.uniform(0.02, 0.1)  # lateral colour: relative size difference of R and B
        gain = rng.uniform(*cfg.ghost_gain)
        rim = rng.uniform(0.0, 1.5)
        colour = tint * rng.uniform(0.5, 1.0, 3)
        dx, dy = xx - gx, yy - gy
        dist = np.hypot(dx, dy)
        if sides:  # distance to a regular polygon's edge, as a fraction of its apothem
            sector = 2 * math.pi / sides
            ang = (np.arctan2(dy, dx) - turn) % sector - sector / 2
            dist = dist * np.cos(ang)
        for c, s in enumerate((1 + spread, 1.0, 1 - spread)):
            rr = radius * s
            edge = np.clip((rr - dist) / 1.5 + 0.5, 0, 1)
            ring = np.exp(-((dist - rr) / max(1.0, 0.08 * rr)) ** 2)
            out[..., c] += gain * colour[c] * (edge + rim * ring)
    return out
