"""Straight streaks and rays through light sources: found on lines through each lamp, filled from beside them.

The flare models dim glare, haze and halos but leave thin, straight, often saturated lines
through a lamp: the long streak a wiped windscreen or a scratched filter draws through a
street lamp, an anamorphic streak, the spikes of a starburst. At the work size such a line is
1 to 10 px wide and hundreds long; the models, trained on a few thousand frames, never learned
to tell it from a thin bright object. Its geometry tells it: it is a **ridge** (brighter than
the scene on *both* sides at once, unlike an edge) that runs straight **through a light
source**, on both sides of it where the frame allows, for a good part of the frame.

``remove_rays`` looks for exactly that, in the model's output at the work size:

1. **Sources**: the centres of the input's white-clipped regions (every channel clipped: a
   lamp's core), compact ones only (a blown sky is not a point source), the deepest ``MAX_SOURCES``.
   A streak bright enough to clip white along its length is a source of its own (its clipped
   core is a few px deep): it is then found from its own pixels, as a lamp too small or too
   dim to clip may leave it.
2. **Lines**: for each source, ``ANGLES`` directions; along each, from just outside the lamp
   out to ``REACH`` of the frame's diagonal on both sides, the ridge contrast
   ``L(0) - max(L(-SIDE), L(+SIDE))`` (``L``: brightest channel, ``SIDE`` px across). A
   direction is a ray where at least ``SHARE`` of its samples have contrast above ``EXCESS``
   on both sides (each with MIN_SAMPLES in the frame); of neighbouring directions the one with
   the most ridge contrast is kept. A source with more than MAX_RAYS is a starburst and is left
   as it is: its spikes crowd round the lamp, where each one's sides are its neighbours, and
   filling them left dark wedges in a made test scene (examples/flare/night-street.png).
3. **Fill**: the ray's half-width is measured from its cross profile; its pixels, out to where
   the ridge fades, are replaced by the linear interpolation between the two sides at that
   point of the line, wherever the ray is brighter than that (so the scene under a faint ray
   keeps its texture where the ray adds nothing).

A ray is flare, not lamp, so its pixels are also taken out of the lamp mask, and the lamp is
not blended back along it. Everything is in px of a 512 px frame, scaled with the image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["remove_rays", "find_rays"]

ANGLES = 720  # directions over 180 degrees (0.25 degree steps)
SIDE = 4.0  # px: the ridge test's distance to either side of the line
EXCESS = 0.03  # of white: the least ridge contrast a sample of a ray has
SHARE = 0.6  # of a side's samples: a ray has the ridge on at least this many of them
REACH = 0.15  # of the frame's diagonal: how far from the lamp the test runs on each side
MIN_SAMPLES = 24  # px: a side with fewer samples in the frame fails (a lamp at the edge: no ray found)
MAX_RAYS = 2  # through one source (a streak, or a cross); a source with more is a starburst, left as it is
SEPARATION = 3.0  # degrees: of two rays closer in direction, only the stronger is kept
MAX_SOURCES = 32
MIN_SOURCE_RADIUS = 1.4  # px: a smaller white speck (foam, a glint) is no lamp (a plus of 5 px has 1.41)
MAX_SOURCE_RADIUS = 16  # px: a deeper bright region is a sky or a window, not a lamp
PEAK_SPACING = 7  # px: of two lamp centres closer than this, the deeper stands for both
MAX_HALF_WIDTH = 8.0  # px
SKIRT = 0.1  # of a ray's peak: its band reaches out to where its cross profile falls under this
GAP = 60  # px: a ray ends where its ridge is gone for this long
CLEARANCE = 3.0  # px beyond the lamp's radius where the test and the fill start


def _sample(channel: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W) float array at float coordinates; NaN outside the frame."""
    return ndimage.map_coordinates(channel, [ys.ravel(), xs.ravel()], order=1, mode="constant",
                                   cval=np.nan).reshape(ys.shape)


def _ridge(bright: np.ndarray, y0, x0, dy, dx, side: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples of ``bright`` on a line (points ``y0``, ``x0``, direction (``dy``, ``dx``)) and ``side``
    px to its left and right: (centre, left, right), NaN outside the frame."""
    return (_sample(bright, y0, x0), _sample(bright, y0 + side * dx, x0 - side * dy),
            _sample(bright, y0 - side * dx, x0 + side * dy))


def _sources(cores: np.ndarray, scale: float) -> list[tuple[float, float, float]]:
    """(y, x, radius) of the light sources' centres, the deepest first, at most MAX_SOURCES.

    ``cores``: the (H, W) bool white-clipped pixels of the input (every channel clipped: a lamp's
    core). Centres are the local maxima of their distance transform (a lamp is a disc; a
    saturated ray through it is thinner, so the lamp's centre is its deepest point), no deeper
    than MAX_SOURCE_RADIUS (a blown sky or a window is not a point source)."""
    if not cores.any():
        return []
    depth = ndimage.distance_transform_edt(cores)
    size = 2 * int(round(PEAK_SPACING * scale)) + 1
    peaks = (depth == ndimage.maximum_filter(depth, size)) & (depth >= MIN_SOURCE_RADIUS * scale) \
        & (depth <= MAX_SOURCE_RADIUS * scale)
    labels, n = ndimage.label(peaks)  # a plateau of equal depth is one centre
    if not n:
        return []
    centres = ndimage.center_of_mass(peaks, labels, range(1, n + 1))
    found = sorted(((float(depth[int(round(cy)), int(round(cx))]), cy, cx) for cy, cx in centres), reverse=True)
    return [(cy, cx, r) for r, cy, cx in found[:MAX_SOURCES]]


def find_rays(bright: np.ndarray, cores: np.ndarray, *, scale: float = 1.0) -> list[dict]:
    """The rays through the light sources of an image: ``bright`` is its (H, W) brightest channel,
    float in [0, 1]; ``cores`` (H, W) bool, the input's white-clipped pixels; ``scale`` its long
    side over 512. Each ray is a dict:
    ``centre`` (y, x), ``angle`` (radians; direction (sin, cos) in (y, x)), ``start`` (px from the
    centre where it begins) and ``score`` (the share of its samples with the ridge)."""
    h, w = bright.shape
    diag = math.hypot(h, w)
    side = SIDE * scale
    theta = np.arange(ANGLES) * (math.pi / ANGLES)
    dy, dx = np.sin(theta)[:, None], np.cos(theta)[:, None]
    rays = []
    for cy, cx, radius in _sources(cores, scale):
        start = radius + CLEARANCE * scale
        u = np.arange(start, start + REACH * diag)[None, :]
        shares, contrast = [], []
        for sign in (1, -1):
            centre, left, right = _ridge(bright, cy + sign * u * dy, cx + sign * u * dx, dy, dx, side)
            valid = np.isfinite(centre) & np.isfinite(left) & np.isfinite(right)
            e = np.where(valid, centre - np.fmax(left, right), 0)
            count = valid.sum(1)
            share = (e > EXCESS).sum(1) / np.maximum(count, 1)
            shares.append(np.where(count >= MIN_SAMPLES * scale, share, np.nan))
            contrast.append(np.clip(e, 0, None).sum(1) / np.maximum(count, 1))
        score = np.nan_to_num(np.minimum(*shares), nan=0.0)  # both sides, each far enough in the frame
        # of the directions that pass, the one with the most ridge contrast within SEPARATION degrees
        # (a line a few px wide passes over a degree or two; angles wrap around at 180)
        strength = np.where(score >= SHARE, contrast[0] + contrast[1], -1.0)
        window = max(1, int(round(SEPARATION / 180 * ANGLES)))
        peak = ndimage.maximum_filter1d(strength, 2 * window + 1, mode="wrap")
        own = []
        for k in np.flatnonzero((strength >= 0) & (strength == peak)):
            if any(abs((k - r["k"] + ANGLES / 2) % ANGLES - ANGLES / 2) <= window and _off_line(r, cy, cx) <= side
                   for r in rays + own):
                continue  # the same line, found again (a plateau of equal strength, or from another point of it)
            own.append({"centre": (cy, cx), "angle": float(theta[k]), "start": start, "score": float(score[k]),
                        "k": int(k)})
        if len(own) <= MAX_RAYS:  # more is a starburst: its spikes crowd round the lamp, each other's sides
            rays += own
    for r in rays:
        del r["k"]
    return rays


def _off_line(ray: dict, y: float, x: float) -> float:
    """The distance (px) of the point (y, x) from the ray's line."""
    cy, cx = ray["centre"]
    return abs((y - cy) * math.cos(ray["angle"]) - (x - cx) * math.sin(ray["angle"]))


def _half_width(bright: np.ndarray, ray: dict, scale: float, diag: float) -> float:
    """The ray's half-width in px: where its median cross profile falls under SKIRT of its peak
    above the median level MAX_HALF_WIDTH + 2 px out."""
    cy, cx = ray["centre"]
    dy, dx = math.sin(ray["angle"]), math.cos(ray["angle"])
    far = MAX_HALF_WIDTH * scale + 2
    v = np.arange(-far, far + 1)[:, None]
    u = np.concatenate([np.arange(ray["start"], ray["start"] + REACH * diag)] * 2)[None, :]
    u = u * np.repeat([1, -1], u.shape[1] // 2)[None, :]
    profile = _sample(bright, cy + u * dy + v * dx, cx + u * dx - v * dy)
    inside = np.isfinite(profile).all(0)  # the points of the line whose whole cross section is in the frame
    if not inside.any():
        return 1.0
    profile = np.median(profile[:, inside], axis=1)
    base = np.median(np.r_[profile[:2], profile[-2:]])
    excess = profile - base
    mid = len(v) // 2
    above = excess >= SKIRT * max(float(excess[mid]), 1e-6)
    half = 0
    while mid - half - 1 >= 0 and mid + half + 1 < len(v) and above[mid - half - 1] and above[mid + half + 1]:
        half += 1
    return float(np.clip(half + 0.5, 1.0, MAX_HALF_WIDTH * scale))


def remove_rays(image: np.ndarray, cores: np.ndarray, *, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    """``image``: (H, W, 3) float in [0, 1] (the model's output at the work size); ``cores``: (H, W)
    bool, the input's white-clipped pixels (all three channels); ``scale``: its long side over 512.
    Returns the image with the rays through the sources filled from beside them, the (H, W) bool
    pixels changed (the lamp mask should drop them) and the number of rays."""
    bright = image.max(axis=2).astype(np.float32)
    rays = find_rays(bright, cores, scale=scale)
    if not rays:
        return image, np.zeros(cores.shape, bool), 0
    h, w = bright.shape
    diag = math.hypot(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = image.astype(np.float32, copy=True)
    changed = np.zeros((h, w), bool)
    for ray in rays:
        cy, cx = ray["centre"]
        dy, dx = math.sin(ray["angle"]), math.cos(ray["angle"])
        half = _half_width(bright, ray, scale, diag)
        gap = half + 1.5 * scale  # where the sides are read
        along = (yy - cy) * dy + (xx - cx) * dx
        across = (yy - cy) * dx - (xx - cx) * dy
        band = (np.abs(across) <= half + 0.5 * scale) & (np.abs(along) >= ray["start"])
        band &= np.abs(along) <= _extent(bright, ray, scale, diag)
        if not band.any():
            continue
        ys, xs = np.nonzero(band)
        a, c = along[band], across[band]
        t = ((c + gap) / (2 * gap))[:, None]
        py, px = cy + a * dy, cx + a * dx  # the foot of each pixel on the line
        planes = [np.ascontiguousarray(out[..., ch]) for ch in range(3)]  # as earlier rays left them
        sides = [np.stack([_sample(plane, py + off * dx, px - off * dy) for plane in planes], 1) for off in (-gap, gap)]
        fill = (1 - t) * sides[0] + t * sides[1]
        pix = out[ys, xs]
        ok = np.isfinite(fill).all(1)
        over = np.clip((pix.max(1) - np.where(ok, fill.max(1), np.inf)) / EXCESS, 0, 1)[:, None]
        out[ys, xs] = np.where(ok[:, None], pix + over * (np.nan_to_num(fill) - pix), pix)
        changed[ys[over[:, 0] > 0], xs[over[:, 0] > 0]] = True
    return out, changed, len(rays)


def _extent(bright: np.ndarray, ray: dict, scale: float, diag: float) -> float:
    """How far from the centre the ray runs (px), the longer of its two sides: out from the lamp
    for as long as, over a running window of 31 px, at least half of the samples have the ridge,
    gaps of up to GAP px (where it crosses something as bright) included."""
    cy, cx = ray["centre"]
    dy, dx = math.sin(ray["angle"]), math.cos(ray["angle"])
    side = SIDE * scale
    u = np.arange(ray["start"], diag)
    far = ray["start"]
    for sign in (1, -1):
        centre, left, right = _ridge(bright, cy + sign * u * dy, cx + sign * u * dx, dy, dx, side)
        ridge = np.nan_to_num(centre - np.fmax(left, right), nan=-1.0) > EXCESS / 2
        on = ndimage.uniform_filter1d(ridge.astype(np.float32), 31, mode="nearest") >= 0.5
        end, off = -1, 0
        for i, flag in enumerate(on):
            off = 0 if flag else off + 1
            if flag:
                end = i
            elif off > GAP * scale:
                break
        if end >= 0:
            far = max(far, float(u[end]) + 15 * scale)
    return far
