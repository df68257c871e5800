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
   the most ridge contrast is kept. A source with more than MAX_RAYS is a starburst, left to step
   4: its spikes crowd round the lamp, where each one's sides are its neighbours, and filling
   them so left dark wedges in a made test scene (examples/flare/night-street.png).
3. **Fill**: the ray's half-width is measured from its cross profile; its pixels, out to where
   the ridge fades, are replaced by the linear interpolation between the two sides at that
   point of the line, wherever the ray is brighter than that (so the scene under a faint ray
   keeps its texture where the ray adds nothing).
4. **Starbursts** (``remove_starbursts``, after ``remove_rays``): the spikes of an aperture or a
   scratched lens leave the lamp on one side each, and crowd round it, so the test above leaves
   them. Around each lamp, in polar coordinates, a spike is narrow across the angle, long along the
   radius and reaches in to the lamp (or near it, round a lamp whose glare the model dimmed: a dozen
   spikes crowd its first few px): a lamp with SPIKE_MIN such spikes loses them, out along each one's
   line as far as it stands out, each pixel down to the scene beside it (a grey opening across the
   angle), never darker.

A ray is flare, not lamp, so its pixels are also taken out of the lamp mask, and the lamp is
not blended back along it. Everything is in px of a 512 px frame, scaled with the image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["remove_rays", "find_rays", "remove_starbursts"]

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


# Starbursts: many spikes out of one lamp (an aperture's blades, a scratched or dirty lens), each a
# thin bright line leaving the lamp on one side only. find_rays leaves them (more than MAX_RAYS
# directions). Around the lamp, in polar coordinates (radius down, angle across), a spike is a
# column: narrow across the angle, long down the radius, and reaching in to the lamp. So:
# a grey opening across the angle (over SPIKE_ARC px of arc) takes out everything narrower than
# that, leaving the scene and the glare; of what it took out (the top-hat), only what runs at
# least SPIKE_LENGTH px down the radius (a second opening, along it) and starts within
# SPIKE_INNER px of the lamp is spike (SPIKE_INNER_GLARE px round a lamp whose glare the model dimmed:
# there a dozen spikes crowd the first few px, too close for the opening to part them). A small bright
# object (a window, a second lamp) is short along the radius; a bright line of the scene does not start
# at the lamp. A lamp with at least SPIKE_MIN spikes, each running SPIKE_RUN * SPIKE_LENGTH px out, is
# a starburst: its spikes are subtracted, down to the opening (so the scene under a spike keeps its own
# level, and only light is taken away).
SPIKE_ARC = 7.0  # px of arc: a spike is narrower than this across
SPIKE_LENGTH = 24.0  # px: and runs at least this long along the radius
SPIKE_INNER = 6.0  # px beyond CLEARANCE: a spike reaches the lamp, starting within this (pieces of it
# farther out, on the same line within a degree, count with it)
SPIKE_EXCESS = 0.03  # of white: the least a spike stands above the opening
SPIKE_TRACE = 0.01  # of white: along a found spike's line, it is followed out while it stands this much above the
# opening (its faint far end, which a single SPIKE_EXCESS threshold cut off)
SPIKE_GLARE = 0.05  # of white: the model dimmed the ring round a lamp by this much (the median of its brightest
# channel's drop over the SPIKE_INNER_GLARE px beyond CLEARANCE) or more: the lamp glares, as a lamp bright
# enough to draw spikes does
SPIKE_INNER_GLARE = 20.0  # px beyond CLEARANCE: round such a lamp, a spike may start this far out (its first px
# lie in the crowd of spikes, or in glare the model left). Without the glare test, starting 20 px out made false
# starbursts of a dandelion seed's fibres round its white hub and of a building's white ribbons (flare-free
# photos 56.3 -> 20.9 and 46.9 -> 31.6 dB to the input), which no model dims round them. (Screened with
# bench_flare's --screen draws of seeds 7 and 11, 16 frames per set, default ensemble, PSNR: SPIKE_GLARE and
# SPIKE_INNER_GLARE with SPIKE_TRACE, held-out shimmer 25.09 -> 25.24 / 24.25 -> 24.46 (its background 47.40 ->
# 47.37 / 48.49 -> 48.25), hand-drawn 24.77 -> 24.86 / 24.83 -> 24.87, optics and streaks unchanged, the 42
# flare-free photos 75.22 -> 75.21 / 22.37 (mean / worst). SPIKE_TRACE alone: hand-drawn +0.01 / +0.02.
# SPIKE_GLARE 0.02: seed-7 shimmer background 47.05; SPIKE_INNER_GLARE 30: optics and streaks background 49.00 ->
# 46.00 and 46.89 -> 44.01 on seed 11)
SPIKE_MIN = 3  # spikes that make a lamp a starburst (fewer: a streak or a cross, find_rays' work), each
SPIKE_RUN = 2  # SPIKE_LENGTHs out from the lamp at least
# (measured on bench_flare's screening draw, seed 7, 16 frames per set, and the app's night-street example: the
# starbursts of the hand-drawn frames had 6 to 14 spikes, 3 or more of them running 48 px; the false ones, white
# specks of sky through foliage in daylit frames, had 3 spikes, one at most that long. Default ensemble, gain /
# background PSNR, without this step and with it: hand-drawn +4.52 / 50.51 -> +4.68 / 50.51, streaks +2.66 /
# 43.39 -> +2.77 / 43.39, optics unchanged, held-out shimmer +1.61 -> +1.64; the 45 flare-free photos unchanged
# (75.32 / 22.37 dB). Without the run test, 3 short spikes made foliage a starburst: streaks background 38.61)
SPIKE_FAINT = 0.015  # of white: round a lamp that glares (SPIKE_GLARE), where no starburst stands SPIKE_EXCESS
SPIKE_FAINT_RUN = 4  # above the opening, a spike may be a run this much above it with a part SPIKE_EXCESS above
SPIKE_FAINT_SHARE = 0.5  # (hair-thin rays, broken where the scene beside them is as bright), if it runs this many
# SPIKE_LENGTHs out, and such long runs are at least this share of the runs found (else radial scene texture round
# a bright lamp: branches, stems, a dandelion seed's fibres, is no starburst). Looked for only where SPIKE_EXCESS
# finds no starburst. Built on the held-out shimmer generator's hair-thin rays, which the step left whole (one
# frame 23.99 -> 25.63 dB). Screen (bench_flare's --screen draws of seeds 7 / 11, 16 frames per set, default
# ensemble, PSNR): shimmer 25.19 -> 25.35 / 24.42 -> 24.43 (background 47.37 -> 47.26 / 48.26 -> 48.20), drawn
# 24.85 -> 24.87 / 24.88 -> 24.89, streaks 25.15 / 24.32 -> 24.33 (its background on seed 11 46.91 -> 45.90: the
# branches round a sunlit lamp, one frame), optics unchanged, the 42 flare-free photos unchanged (75.04 / 22.37).
# The faint runs tried in place of SPIKE_EXCESS's, not after it: drawn -0.10 / -0.07 (starbursts it found whole
# cut to their long spikes); round every lamp, glaring or not, and without the run and share tests: flare-free
# 73.88 (grey.jpg, a dandelion seed, 56.3 -> 22.6 dB; streaks background 44.21 on seed 11)
SPIKE_DETECT = 0.15  # of the frame's diagonal: how far out from the lamp the spikes are looked for
SPIKE_REACH = 0.5  # of the frame's diagonal: how far out a starburst's spikes are taken out


def _circles(cy: float, cx: float, radii: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The (len(radii), count) y and x of points on circles around (``cy``, ``cx``), angle k * 360 / count
    degrees in column k."""
    theta = np.arange(count, dtype=np.float32) * np.float32(2 * math.pi / count)
    return cy + radii[:, None] * np.sin(theta)[None, :], cx + radii[:, None] * np.cos(theta)[None, :]


def _polar(planes: np.ndarray, cy: float, cx: float, radii: np.ndarray, count: int) -> np.ndarray:
    """Bilinear samples of an (H, W, C) array on circles around (``cy``, ``cx``): (len(radii), count, C),
    angle k * 360 / count degrees in column k (edge pixels repeated outside the frame)."""
    ys, xs = _circles(cy, cx, radii, count)
    return np.stack([ndimage.map_coordinates(planes[..., c], [ys, xs], order=1, mode="nearest")
                     for c in range(planes.shape[2])], axis=2)


def _in_frame(shape: tuple[int, int], cy: float, cx: float, radii: np.ndarray, count: int) -> np.ndarray:
    """(len(radii), count) bool: which of ``_polar``'s samples lie in a frame of ``shape`` (H, W)."""
    ys, xs = _circles(cy, cx, radii, count)
    return (ys >= 0) & (ys <= shape[0] - 1) & (xs >= 0) & (xs <= shape[1] - 1)


def _spike_runs(long: np.ndarray, length: int, inner: int, faint: bool,
                whole: bool) -> tuple[np.ndarray, list, list[int]] | None:
    """The runs of ``long`` (radii, angles: what stands above the opening for ``length`` radii) that are
    spikes: (their labels, boxes and the ids of those that reach in within ``inner`` radii of the lamp and
    SPIKE_RUN lengths out), or None where they are fewer than SPIKE_MIN. A spike is a run above SPIKE_EXCESS;
    ``faint``: a run above SPIKE_FAINT holding a part above SPIKE_EXCESS, and where ``whole`` (the radii
    reach out to the starburst's end, not only the first look near the lamp), only the runs SPIKE_FAINT_RUN
    long count, and none where they are under SPIKE_FAINT_SHARE of the runs."""
    labels, count_labels = ndimage.label(long > (SPIKE_FAINT if faint else SPIKE_EXCESS))
    if faint:  # a faint run is a spike where part of it stands SPIKE_EXCESS above the opening
        strong = np.asarray(ndimage.maximum(long, labels, np.arange(1, count_labels + 1))) > SPIKE_EXCESS
        labels = np.where(np.concatenate([[False], strong])[labels], labels, 0)
    near = labels[:inner]
    boxes = ndimage.find_objects(labels)
    spikes = [i for i in np.unique(near[near > 0]) if boxes[i - 1][0].stop >= SPIKE_RUN * length]
    if faint and whole and spikes:  # long runs, most of them: rays, not the scene's radial texture
        longer = [i for i in spikes if boxes[i - 1][0].stop >= SPIKE_FAINT_RUN * length]
        if len(longer) < SPIKE_FAINT_SHARE * len(spikes):
            return None
        spikes = longer
    return (labels, boxes, spikes) if len(spikes) >= SPIKE_MIN else None


def _spikes(polar: np.ndarray, radii: np.ndarray, scale: float, inside: np.ndarray,
            reach_in: float = SPIKE_INNER, faint: bool = False,
            whole: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """The spikes of a polar image (radii, angles, channels; ``inside``: (radii, angles) bool, its
    samples in the frame, the rest repeat the frame's edge): (its opening across the angle, the share
    of what the opening took out that is spike, (radii, angles) in [0, 1]), or None where fewer than
    SPIKE_MIN spikes reach in to the lamp (start within ``reach_in`` px of the first radius). ``faint``
    (round a glaring lamp): where the runs above SPIKE_EXCESS make no starburst, faint runs may
    (``_spike_runs``; ``whole``: the radii reach out to the starburst's end)."""
    count = polar.shape[1]
    opened = np.empty_like(polar)
    lo = 0
    while lo < len(radii):  # in bands of doubling radius, the window covers SPIKE_ARC px at the band's inner edge
        hi = max(lo + 1, int(np.searchsorted(radii, 2 * radii[lo])))
        k = int(math.ceil(SPIKE_ARC * scale * count / (2 * math.pi * max(float(radii[lo]), 1.0))))
        k = min(k | 1, count // 4 | 1)
        for c in range(polar.shape[2]):
            opened[lo:hi, :, c] = ndimage.grey_opening(polar[lo:hi, :, c], size=(1, k), mode="wrap")
        lo = hi
    # outside the frame is no spike: the edge's pixels, repeated out along the radius, would lengthen whatever
    # the scene has there into a spike
    peak = np.where(inside, (polar - opened).max(axis=2), 0)
    length = max(3, int(round(SPIKE_LENGTH * scale)))
    long = ndimage.grey_opening(peak, size=(length, 1), mode="nearest")
    inner = max(1, int(round(reach_in * scale)))
    found = _spike_runs(long, length, inner, False, whole)
    if found is None and faint:  # the opening and its runs' lengths serve both looks
        found = _spike_runs(long, length, inner, True, whole)
    if found is None:
        return None
    labels, boxes, spikes = found
    # a spike is then its angle, read where it is farthest from the lamp (near the lamp a spike a few px wide
    # spans many degrees, so there all of it counts): farther out it may be broken where it crosses something
    # as bright, and the pieces on its line (within a degree) count with it; what only crosses the line (a
    # ledge, a wire) counts only there
    line = np.zeros(count, bool)
    for i in spikes:
        rows, cols = boxes[i - 1]
        outer = labels[(rows.start + rows.stop) // 2:rows.stop, cols] == i
        line[cols.start + np.flatnonzero(outer.any(axis=0))] = True
    line = ndimage.maximum_filter1d(line, 2 * max(1, round(count / 360)) + 1, mode="wrap")
    spike = (labels > 0) & line[None, :]
    near = int(round(2 * SPIKE_LENGTH * scale))
    spike[near:] |= (long[near:] > SPIKE_TRACE) & line[None, :]  # and its faint far end
    spike[:near] |= np.isin(labels[:near], spikes)  # near the lamp, a spike is all of its own width
    share = np.where(spike, np.clip(long / np.maximum(peak, 1e-6), 0, 1), 0)
    return opened, share


def remove_starbursts(image: np.ndarray, cores: np.ndarray, *, scale: float = 1.0,
                      before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``image``: (H, W, 3) float in [0, 1] (the model's output at the work size); ``cores``: (H, W)
    bool, the input's white-clipped pixels; ``scale``: its long side over 512; ``before``: the (H, W, 3)
    float input the model saw, if known (round a lamp whose glare the model dimmed, SPIKE_GLARE, spikes may
    start further out, SPIKE_INNER_GLARE; without it, SPIKE_INNER). Returns the image with
    the spikes of every starburst taken out, the (H, W) bool pixels changed (the lamp mask should drop
    them) and the number of starbursts."""
    h, w = cores.shape
    diag = math.hypot(h, w)
    out = image.astype(np.float32, copy=True)
    bright = out.max(axis=2, keepdims=True)
    changed = np.zeros((h, w), bool)
    dimmed = None if before is None else before.astype(np.float32) - image.astype(np.float32)
    found = 0
    for cy, cx, radius in _sources(cores, scale):
        start = radius + CLEARANCE * scale
        corner = max(math.hypot(cy - y, cx - x) for y in (0, h - 1) for x in (0, w - 1))
        reach = min(SPIKE_REACH * diag, corner)
        if reach <= start + 2 * SPIKE_LENGTH * scale:
            continue
        count = int(math.ceil(2 * math.pi * reach))  # 1 px of arc at the far end
        near = np.arange(start, min(reach, start + max(2 * SPIKE_LENGTH * scale, SPIKE_DETECT * diag)),
                         dtype=np.float32)
        glares = False
        if dimmed is not None:  # how much the model dimmed round the lamp: its glare
            ring = near[:max(1, int(round(SPIKE_INNER_GLARE * scale)))]
            glares = bool(np.median(_polar(dimmed, cy, cx, ring, count).max(axis=2)) >= SPIKE_GLARE)
        reach_in = SPIKE_INNER_GLARE if glares else SPIKE_INNER
        if _spikes(_polar(bright, cy, cx, near, count), near, scale, _in_frame((h, w), cy, cx, near, count),
                   reach_in, faint=glares, whole=False) is None:
            continue  # first, cheaply: the brightest channel near the lamp
        radii = np.arange(start, reach, dtype=np.float32)
        spikes = _spikes(_polar(out, cy, cx, radii, count), radii, scale, _in_frame((h, w), cy, cx, radii, count),
                         reach_in, faint=glares)
        if spikes is None:
            continue
        opened, share = spikes
        # back to the frame: the opening and the spikes' share (widened by a sample across, as the resampling
        # blurs them); each pixel loses that share of its excess over the opening, so a pixel beside a
        # spike, at the opening's level, is never darkened
        share = ndimage.grey_dilation(share, size=(1, 3), mode="wrap")
        planes = np.concatenate([opened, share[..., None]], axis=2)
        planes = np.concatenate([planes, planes[:, :1]], axis=1)  # the angle wraps round
        y0, y1 = max(int(cy - reach) - 1, 0), min(int(cy + reach) + 2, h)
        x0, x1 = max(int(cx - reach) - 1, 0), min(int(cx + reach) + 2, w)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        r = np.hypot(yy - cy, xx - cx) - start
        a = np.mod(np.arctan2(yy - cy, xx - cx), 2 * math.pi) * np.float32(count / (2 * math.pi))
        back = np.stack([ndimage.map_coordinates(planes[..., c], [r, a], order=1, mode="nearest")
                         for c in range(4)], axis=2)
        base, share = back[..., :3], back[..., 3]
        share = np.where((r < 0) | (r > len(radii) - 1), 0, share)
        box = out[y0:y1, x0:x1]
        cut = share[..., None] * np.clip(box - base, 0, None)
        box -= cut
        changed[y0:y1, x0:x1] |= cut.max(axis=2) > 0
        found += 1
    return np.clip(out, 0, 1), changed, found
