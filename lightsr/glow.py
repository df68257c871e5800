"""Glow: the light a lamp spreads round itself, the same in every direction, which the models leave.

Scattering in a lens (and haze in front of it) spreads some of a bright lamp's light into a bloom
round it: at a given distance from the lamp it adds the same light in every direction, and less
further out. The flare models dim the glow of lamps in dark scenes; on a bright daylight scene
with a lamp in it they take out little or nothing. The scene round a lamp has no such symmetry:
its texture differs from one direction to the next, and a horizon, a wall or a tree through the
lamp darkens one side of it, not both. ``remove_glow`` reads the glow from that difference, in the
model's output at the work size, in linear light:

1. **Lamps**: ``lightsr.ghosts``' lamps (the light sources and the clipped glare discs) whose clipped
   region is round: its area at most ``ROUND``² times the disc its centre's depth spans. A blown
   cloud, a waterfall's white water or sky through leaves is no lamp, and the soft light round it
   is the scene's, not glow.
2. **Bands**: rings round the lamp from ``CLEARANCE`` px beyond its radius out to ``REACH`` times
   its radius (at most ``REACH_FRAME`` of the frame's diagonal), each ``GROW`` times as wide as the
   one inside it; the mean of each channel in each band, at each of ``ANGLES`` directions (clipped
   pixels left out).
3. **Fall**: from each band to the next, in each direction. Of two opposite directions the
   smaller fall stands (glow falls on both sides of the lamp; a horizon through it on one), and the
   glow's fall is the ``QUANTILE`` of those over the pairs: that share of the pairs falls that much or
   more. The smaller of two noisy falls reads low, so a busy scene's texture hides some of the glow:
   the step errs towards leaving light, not taking the scene's.
   Bands where fewer than ``IN_FRAME`` of the pairs lie in the frame end the profile (a lamp at the
   frame's edge), and so do bands more than ``CLIPPED_MAX`` clipped (a lamp amid a blown window's panes);
   the bands nearest the lamp that fail those tests, its own clipped glare disc, are skipped: the
   profile starts at the first band clear of them (the brightest lamps' glare clips well beyond them).
4. **Profile**: the falls summed from the outermost band in, never rising outwards, never below zero.
5. **Subtract** it from every pixel round the lamp, per channel, at most ``SHARE`` of the pixel's
   light (a mistaken profile dims; it never blackens).

Everything is in px of a 512 px frame, scaled with the image.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage

from .ghosts import _lamps, _polar, _window
from .models._common import GAMMA

__all__ = ["glow_profiles", "remove_glow"]

ROUND = 1.25  # a lamp's clipped region spans at most this radius over its centre's depth (1: a disc)
CLEARANCE = 2.0  # px beyond the lamp's radius where the bands start
REACH = 10.0  # lamp radii: how far out the glow is read and taken
REACH_FRAME = 0.1  # of the frame's diagonal: and no further than this
GROW = 1.15  # each band's outer radius over its inner (plus 1 px)
ANGLES = 180  # directions round the lamp (90 opposite pairs)
QUANTILE = 0.35  # of the pairs' changes: at least this share of the pairs falls that much (0.5: the median)
IN_FRAME = 0.5  # of the pairs in the frame at a band, or the profile ends there
CLIPPED_MAX = 0.2  # of a band's pixels in the frame, at most, clipped, or the profile ends there (bands nearer the
# lamp, its own clipped glare disc, are skipped: the profile starts at the first band clear of it)
SHARE = 0.6  # of a pixel's light, at most, taken as glow
MIN_BANDS = 4  # a lamp with fewer bands between it and its reach has no profile read
# (screened with bench_flare's --screen draws of seeds 7 and 11, 16 frames per set, default ensemble. Shipped: gain
# seed 7 / 11, drawn +5.20 -> +5.23 / +5.07 -> +5.10, streaks +4.18 -> +4.19 / +3.82 -> +3.88, held-out shimmer
# +1.85 -> +1.98 / +2.10 -> +2.13, optics and every background PSNR within 0.01 dB; the 42 flare-free photos
# 74.75 -> 74.67 / 22.37. Without the opposite pairs (the median fall over every direction, out to 0.1 of the
# diagonal) the trees below a lamp on a horizon darkened (seed 7 streaks background 43.39 -> 40.77) and, within 10
# lamp radii, the flare-free photos moved (mean 71.62). With the pairs but every lamp, not only round ones, the mist
# round a waterfall's clipped water greyed (flare-free photo 0: 42.3 -> 32.2 dB to the input) and a gap of sky
# through leaves at the frame's top edge went black, which ROUND, IN_FRAME and SHARE stop (flare-free mean 73.95 ->
# 74.67, seed 7 shimmer +0.21 -> +0.13 over no glow step). QUANTILE 0.25: a streak frame lost 0.3 dB and another's
# background 2.8 dB. Skipping the clipped bands next to the lamp, not ending the profile there (before, a lamp whose
# first band was mostly clipped had no glow read at all), with CLIPPED_MAX: shimmer PSNR seed 7 / 11 24.99 -> 25.04 /
# 24.13 -> 24.20, streaks +0.00 / +0.01, drawn, optics and every background unchanged, the flare-free photos
# unchanged. Screened, not shipped: a rise outwards read as no fall rather than cancelling falls inside it, shimmer
# +0.06 / +0.03 more, but a waterfall's foam and a blown window's surround dimmed by up to 29 levels (flare-free mean
# 75.24 -> 74.87 in that screen's units); reaching 20 or 30 lamp radii (0.2 / 0.3 of the diagonal), shimmer seed 7
# +0.14 / +0.18 more but a hand-drawn frame of seed 11 whose lamp the model over-dimmed went from +0.69 to -0.72 dB,
# and a streak set's background 47.02 -> 45.06 at 30. An oracle (the true residual's median per radius taken out)
# says the glow left beyond 10 lamp radii is worth shimmer +0.6 dB and hand-drawn +1.9 dB on seed 7)


def _round(cores: np.ndarray, lamps: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The ``lamps`` (y, x, radius) whose connected clipped region in ``cores`` is round (``ROUND``)."""
    labels, _ = ndimage.label(cores)
    areas = np.bincount(labels.ravel())
    kept = []
    for cy, cx, r in lamps:
        label = labels[int(round(cy)), int(round(cx))]
        if label and math.sqrt(areas[label] / math.pi) <= ROUND * r:
            kept.append((cy, cx, r))
    return kept


def _profile(masked: np.ndarray, cy: float, cx: float, edges: np.ndarray) -> np.ndarray:
    """The glow's (len(edges) - 1, 3) linear light at the middle of each band between ``edges`` (px from
    (``cy``, ``cx``)), read from ``masked`` ((H, W, 3) linear light, NaN where clipped)."""
    radii = np.arange(edges[0], edges[-1] + 1, 1.0, dtype=np.float32)
    band = np.searchsorted(edges, radii, side="right") - 1
    count = len(edges) - 1
    glow = np.zeros((count, 3), np.float32)
    half = ANGLES // 2
    lost = _polar(np.isnan(masked[..., 0]).astype(np.float32), cy, cx, radii, ANGLES)  # clipped; NaN: out of frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lost = np.array([np.nanmean(lost[band == k]) for k in range(count)])
    clear = ~(lost > CLIPPED_MAX)  # (a band wholly out of the frame is judged by IN_FRAME)
    for c in range(3):
        samples = _polar(masked[..., c], cy, cx, radii, ANGLES)  # (len(radii), ANGLES), NaN outside the frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a band or a pair wholly out of the frame: NaN
            means = np.stack([np.nanmean(samples[band == k], axis=0) for k in range(count)])  # (count, ANGLES)
            change = means[1:] - means[:-1]
            change = np.maximum(change[:, :half], change[:, half:])  # a pair's smaller fall (NaN if one is out)
            fall = np.nan_to_num(np.nanquantile(change, QUANTILE, axis=1))
        seen = (np.isfinite(change).mean(axis=1) >= IN_FRAME) & clear[:-1] & clear[1:]
        first = int(np.argmax(seen)) if seen.any() else len(seen)  # past the lamp's clipped glare disc
        end = first + (int(np.argmin(seen[first:])) if not seen[first:].all() else len(seen) - first)
        fall[:first] = 0  # the glow inside the first clear band is read as its level there
        fall[end:] = 0
        level = np.r_[-np.cumsum(fall[::-1])[::-1], 0.0]  # the light at each band over the outermost's
        glow[:, c] = np.clip(np.minimum.accumulate(level), 0, None)  # never rising outwards
    return glow


def glow_profiles(linear: np.ndarray, clipped: np.ndarray, cores: np.ndarray, *,
                  scale: float = 1.0) -> tuple[np.ndarray, list[dict]]:
    """``linear``: (H, W, 3) float linear light (the model's output); ``clipped``: (H, W) bool, the
    input's saturated pixels (left out of the bands); ``cores``: (H, W) bool, its white-clipped ones
    (the lamps); ``scale``: the long side over 512. Returns ``linear`` less each round lamp's glow
    (lamp by lamp, the brightest first, each read after the ones before it are taken out) and the
    glows found: dicts of ``centre`` (y, x), ``radii`` (the bands' middles, px) and ``glow``
    ((bands, 3) linear light)."""
    h, w = cores.shape
    out = linear.astype(np.float32, copy=True)
    found = []
    for cy, cx, r in _round(cores, _lamps(cores, scale)):
        start, reach = r + CLEARANCE * scale, min(REACH * r, REACH_FRAME * math.hypot(h, w))
        edges = [start]
        while edges[-1] < reach:
            edges.append(edges[-1] * GROW + scale)
        if len(edges) - 1 < MIN_BANDS:
            continue
        edges = np.asarray(edges, np.float32)
        glow = _profile(np.where(clipped[..., None], np.nan, out), cy, cx, edges)
        if not glow.any():
            continue
        middles = 0.5 * (edges[:-1] + edges[1:])
        window, yy, xx = _window((h, w), cy, cx, float(edges[-1]))  # the cut is 0 beyond the last band
        d = np.hypot(yy - cy, xx - cx)
        cut = np.stack([np.interp(d, middles, glow[:, c], left=glow[0, c], right=0) for c in range(3)], 2)
        out[window] -= np.minimum(cut, SHARE * out[window])
        found.append({"centre": (cy, cx), "radii": middles, "glow": glow})
    return out, found


def remove_glow(image: np.ndarray, cores: np.ndarray, clipped: np.ndarray, *,
                scale: float = 1.0) -> tuple[np.ndarray, int]:
    """``image``: (H, W, 3) float in [0, 1] (the model's output at the work size, display units);
    ``cores``, ``clipped``: (H, W) bool, the input's white-clipped and saturated pixels; ``scale``:
    its long side over 512. Returns the image with the glow round each round lamp taken out
    (``glow_profiles``), in display units, and the number of lamps it was taken from."""
    linear = np.clip(image, 0, 1).astype(np.float32) ** GAMMA
    out, found = glow_profiles(linear, clipped, cores, scale=scale)
    if not found:
        return image, 0
    changed = (out != linear).any(axis=2)
    result = image.astype(np.float32, copy=True)
    result[changed] = out[changed] ** (1 / GAMMA)
    return result, len(found)
