"""Ghosts: aperture-shaped blobs of reflected light on the line from each lamp through the frame's centre.

Light reflected between the surfaces of a lens forms images of the aperture (a disc, or a polygon
of its blades) on the line from each bright source through the optical centre, on either side of
it: tinted by the coatings, some sharp and some soft, some rings. They add light; the scene under
them stays. The flare models, trained on a few thousand frames, dim the glare round a lamp but
leave most ghosts whole. Their geometry tells them: a ghost is a **disc of added light** (brighter
than just outside it by nearly the same amount all the way round) **centred on a lamp's line
through the frame's centre**. A scene's own round bright thing (a window, a wheel) is rarely
centred on such a line, and a lamp's glare, centred on the lamp, is brighter on the side facing it.

``remove_ghosts`` looks for exactly that, in the model's output at the work size, in linear light:

1. **Lamps**: ``lightsr.rays``' light sources (the centres of the white-clipped cores) and the
   compact clipped glare discs too deep to be one (a lamp so bright that its glare clips, the
   lamp with the brightest ghosts: at its centroid), the largest ``MAX_LAMPS``.
2. **Candidates**: centres every ``STEP`` px along each lamp's line through the centre, from the
   lamp's far side of the frame to ``NEAR`` of the way back to the lamp, and radii from
   ``MIN_RADIUS`` to ``MAX_RADIUS`` px. A candidate's contrast at each of ``ANGLES`` directions is
   the mean of the brightness (the sum of the channels) just inside its rim (``INSIDE`` of its
   radius) less the mean just outside (``OUTSIDE``). It is a ghost where that contrast is above
   ``EXCESS`` in at least ``SHARE`` of the directions and ``EVEN`` of its median in a quarter of
   them (an additive disc raises every direction alike), where in ``RIM_SHARE`` of the directions
   the brightness falls fastest at its rim (``RIM`` of its radius: a disc's rim is round, a
   polygon's nearly so, a bright patch of the scene's is not), with no white-clipped pixel within
   its outer ring (a lamp, or the sky; a streak's pixels, which clip where it crosses a bright ghost,
   do not count when they are known) and the frame holding ``SHARE`` of its rim. A **ring** (the
   ghost of an annulus, or a bright-rimmed disc on a busy scene), whose hollow is no brighter than
   outside it, fails that test: a candidate is a ring where a narrow band round its radius
   (``RING_BAND``) is brighter than just inside and just outside it (``RING_BESIDE``), by
   ``RING_EXCESS`` and as evenly, and where in ``RING_SHARE`` of the directions the brightest point
   lies on the band (``RING_PEAK``). Bands this close together see little of the scene's texture.
   Overlapping ghosts: the one with the highest contrast stands.
3. **Profile**: the ghost's rim at each direction is where the brightness falls fastest near its
   radius (a polygon's rim is nearer the centre between its corners); its radial profile, in units of
   that rim, is the median over directions of each channel less its level well outside (``LEVEL``
   rims, past a soft edge), which the scene's texture, different in each direction, leaves out. It
   is never below zero. A ring's profile is only the bump above the straight line through its levels
   just inside and just outside its band (``RING_BESIDE``), in each direction: the scene under its
   hollow stays (a disc's profile, centred on a hollow over sky and trees, would darken it all).
4. **Subtract** the profile, in linear light, from every pixel of the ghost.

Everything is in px of a 512 px frame, scaled with the image.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage

from .models._common import GAMMA
from .rays import MIN_SOURCE_RADIUS, _sample, _sources

__all__ = ["find_ghosts", "remove_ghosts"]

MAX_LAMPS = 4  # lamps whose lines are searched: the brightest make the ghosts one sees
STEP = 2.0  # px between candidate centres along a line
NEAR = 0.9  # candidates reach back to this fraction of the way from the centre to the lamp
MIN_RADIUS = 6.0  # px
MAX_RADIUS = 56.0  # px
RADIUS_RATIO = 1.08  # between neighbouring candidate radii
ANGLES = 48  # directions round a candidate
INSIDE = (0.55, 0.75)  # of the radius: the ring just inside the rim (a pentagon's sides come in to 0.81)
OUTSIDE = (1.1, 1.3)  # of the radius: the ring just outside
EXCESS = 0.006  # linear light, summed over the channels: the least contrast of a direction
SHARE = 0.8  # of the directions (in the frame) above EXCESS
EVEN = 0.4  # the lower quartile of the contrast over its median
RIM = (0.75, 1.1)  # of the radius: where a direction's steepest fall (between RIM_SEARCH) must be
RIM_SEARCH = (0.4, 1.6)
RIM_SHARE = 0.8  # of the directions: a disc's rim is round (a polygon's within RIM); a bright patch's is not
# (screened on bench_flare's seed-7 draw, 16 frames per set, default ensemble, gain / background PSNR, without
# this step -> with it: optics +8.06 / 39.90 -> +8.08 / 39.90, hand-drawn +4.68 -> +4.71 / 50.51, streaks +2.77 ->
# +3.37 / 43.39 -> 43.37, held-out shimmer +1.64 -> +1.68 / 47.35, every worst frame and the 45 flare-free photos
# unchanged. At 0.7: +0.01 to +0.03 dB more, but flare-free 75.32 -> 75.24 and streaks background 42.46; without
# the rim test (and from 4 px), bright patches of the scene (foam, sky through leaves) passed: flare-free 73.11.
# With the clipped glare discs among the lamps (_lamps): optics +8.08 / 39.90 -> +8.20 / 39.79, hand-drawn +4.73,
# streaks, shimmer and the flare-free photos as without them)
MAX_GLARE = 64.0  # px: the equivalent radius of the largest clipped glare disc taken for a lamp
GLARE_FILL = 0.6  # a clipped region fills at least this share of the ellipse in its box (a disc, not a sky)
LAMP_CLEARANCE = 6.0  # px between a candidate's outer ring and the lamp's core
# (a streak's clipped pixels bar no ghost (``streaks``): a bright ghost a streak crosses clips white along the
# streak, and barred it as a lamp would. Screened with bench_flare's --screen draws of seeds 7 and 11, 16 frames per
# set, default ensemble, gain / background PSNR: streaks +3.98 / 43.40 -> +4.07 / 43.39 and +3.68 / 47.18 -> +3.77 /
# 47.15; the optics, hand-drawn and shimmer sets and the 42 flare-free photos unchanged to the digit)
# rings: a candidate that fails as a disc is a ring where the band round its radius is brighter than just inside and
# just outside it (the mean of the two), by RING_EXCESS and as _passes asks, and where in RING_SHARE of the directions
# the brightest point between RING_SEARCH lies within RING_PEAK (a ring is round, a bright line of the scene is not)
RING_BAND = (0.9, 1.1)  # of the radius
RING_BESIDE = ((0.7, 0.82), (1.18, 1.3))  # of the radius: just inside and just outside that band
RING_EXCESS = 0.05  # linear light, summed over the channels: the least median contrast of a ring
RING_SEARCH = (0.6, 1.4)  # of the radius
RING_PEAK = (0.85, 1.15)  # of the radius
RING_SHARE = 0.6  # of the directions (a polygon's or a bright-rimmed disc's rim wanders from a circle)
RING_MIN_SCALE = 0.5  # rings are looked for in images of at least 256 px: in a smaller one a ring's band and sides
# are a pixel or two wide, and the texture of a 96 px test photo passed as a 6 px ring
# (screened on bench_flare's --screen draws, 16 frames per set, default ensemble, gain / background PSNR / worst gain,
# without rings -> with: seed 7 streaks +4.07 / 43.39 / +0.15 -> +4.18 / 43.39 / +0.70, shimmer +1.69 -> +1.86 /
# 47.40, optics +9.62 (worst +4.47 -> +4.36), hand-drawn unchanged; seed 11 streaks +3.77 / 47.15 -> +3.82 / 47.02,
# shimmer +1.94 -> +2.10 / 48.49, worst +0.14 -> +0.39, optics and hand-drawn unchanged; the 42 flare-free photos
# 74.76 -> 74.75 / 22.37. Without the peak test (RING_SHARE 0) or at RING_EXCESS 0: rings found in 9 of the
# flare-free photos (textured edges, small radii), flare-free mean 74.52; RING_SHARE 0.8: half the streak set's gain,
# its bright-rimmed polygons failing it. A ring taken out with a disc's profile (its hollow too) gained more, seed 7
# streaks +4.49, shimmer +1.91, but cost background (seed 11 shimmer 48.49 -> 47.52) and darkened a hollow over sky
# and trees to black; a bright-rimmed disc's fill is now left, its rim taken)
LEVEL = (1.35, 1.6)  # of the rim: where the level outside a ghost is read (a soft edge reaches past 1.3)
PROFILE = np.linspace(0, LEVEL[0], 55, dtype=np.float32)  # radial samples of the profile, in rims


def _polar(plane: np.ndarray, cy: float, cx: float, radii: np.ndarray, count: int) -> np.ndarray:
    """Bilinear samples of an (H, W) array on circles round (``cy``, ``cx``): (len(radii), count),
    angle k * 360 / count degrees in column k, NaN outside the frame."""
    theta = np.arange(count, dtype=np.float32) * np.float32(2 * math.pi / count)
    ys = cy + radii[:, None] * np.sin(theta)[None, :]
    xs = cx + radii[:, None] * np.cos(theta)[None, :]
    return _sample(plane, ys, xs)


def _lamps(cores: np.ndarray, scale: float) -> list[tuple[float, float, float]]:
    """(y, x, radius) of the lamps whose ghosts are looked for, the largest first, at most MAX_LAMPS:
    ``lightsr.rays``' light sources, and the clipped glare discs too deep to be one (a lamp so bright
    that its glare clips round it, the lamp whose ghosts are the brightest) at their centroid, when
    compact (a disc; a blown sky is not)."""
    lamps = _sources(cores, scale)
    labels, n = ndimage.label(cores)
    if n:
        have = {int(labels[int(round(y)), int(round(x))]) for y, x, _ in lamps}
        idx = [i for i in range(1, n + 1) if i not in have]
        boxes = ndimage.find_objects(labels)
        for i, area, (cy, cx) in zip(idx, ndimage.sum_labels(cores, labels, idx),
                                     ndimage.center_of_mass(cores, labels, idx)):
            radius = math.sqrt(area / math.pi)
            bh, bw = (sl.stop - sl.start for sl in boxes[i - 1])
            if MIN_SOURCE_RADIUS * scale <= radius <= MAX_GLARE * scale and area >= GLARE_FILL * math.pi / 4 * bh * bw:
                lamps.append((float(cy), float(cx), radius))
    return sorted(lamps, key=lambda s: -s[2])[:MAX_LAMPS]


def _passes(c: np.ndarray) -> bool:
    """Whether a candidate's contrasts ``c`` (one per direction in the frame) are those of added light:
    above EXCESS in SHARE of the directions and even (the lower quartile at least EVEN of the median)."""
    median = float(np.median(c))
    return median > EXCESS and (c > EXCESS).mean() >= SHARE and np.percentile(c, 25) >= EVEN * median


def _may_pass(c: np.ndarray, valid: np.ndarray, floor: float = EXCESS) -> np.ndarray:
    """(candidates,) bool: which rows of ``c`` ((candidates, directions), read where ``valid``) can pass
    ``_passes`` with a median above ``floor``: the same tests on every row at once, from one sort, each with a
    margin for rounding, so that ``_passes`` then runs only on the few that might (a scan of every radius of
    every centre with np.median was three quarters of remove_flare's time)."""
    n = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, c, np.inf), axis=1).astype(np.float64)  # each row's values first, in order
    ordered[~np.isfinite(ordered)] = 0  # (read only in a row with none: it fails on n)

    def at(q):  # the q-quantile of each row (linear interpolation, as np.percentile)
        pos = np.maximum(n - 1, 0) * q
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        below = np.take_along_axis(ordered, lo[:, None], 1)[:, 0]
        above = np.take_along_axis(ordered, hi[:, None], 1)[:, 0]
        return below + (pos - lo) * (above - below)  # (at the last value, pos - lo is 0 and above is below)

    median, quartile = at(0.5), at(0.25)
    share = (np.where(valid, c, -np.inf) > EXCESS).sum(axis=1) / np.maximum(n, 1)
    margin = 1e-5  # linear light: far above float32 rounding of contrasts under 3
    return (n > 0) & (median > max(floor, EXCESS) - margin) & (share >= SHARE - 1e-9) \
        & (quartile >= EVEN * median - margin)


def find_ghosts(linear: np.ndarray, cores: np.ndarray, *, scale: float = 1.0,
                streaks: np.ndarray | None = None) -> list[dict]:
    """The ghosts of an image: ``linear`` is its (H, W, 3) float linear light, ``cores`` (H, W) bool
    its white-clipped pixels, ``scale`` its long side over 512, ``streaks`` (H, W) bool the pixels of
    streaks and spikes (``lightsr.rays``' changed pixels), whose clipping bars no ghost. Each ghost is a
    dict: ``centre`` (y, x), ``radius`` (px: a disc's rim, a ring's band), ``contrast`` (its median rim
    or band contrast, linear light summed over channels) and, for a ring, ``ring``: True."""
    h, w = cores.shape
    bright = linear.sum(axis=2)
    # a candidate's outer ring must hold no clipped pixel (a lamp, the sky): a streak's pixels, clipped where it
    # crosses a bright ghost, are neither
    clear = cores if streaks is None else cores & ~streaks
    clip = ndimage.binary_dilation(clear, iterations=max(1, int(round(LAMP_CLEARANCE * scale)))).astype(np.float32)
    radii = MIN_RADIUS * scale * RADIUS_RATIO ** np.arange(
        int(math.log(MAX_RADIUS / MIN_RADIUS) / math.log(RADIUS_RATIO)) + 1)
    rings = np.arange(0, OUTSIDE[1] * radii[-1] + 1, 0.5 * scale, dtype=np.float32)
    # each radius' rings as index ranges [start, stop) of ``rings``: inside, outside and where its rim is looked for
    bounds = {name: (np.searchsorted(rings, lo * radii), np.searchsorted(rings, hi * radii, side="right"))
              for name, (lo, hi) in (("inner", INSIDE), ("outer", OUTSIDE), ("search", RIM_SEARCH),
                                     ("band", RING_BAND), ("in", RING_BESIDE[0]), ("out", RING_BESIDE[1]),
                                     ("peak", RING_SEARCH))}
    oy, ox = (h - 1) / 2, (w - 1) / 2
    look_for_rings = scale >= RING_MIN_SCALE
    found = []
    for ly, lx, lr in _lamps(cores, scale):
        dy, dx = ly - oy, lx - ox
        length = math.hypot(dy, dx)
        if length < 1:
            continue  # a lamp at the centre: its ghosts sit on it
        uy, ux = dy / length, dx / length
        # t: px from the centre towards the lamp; the far end is where the line leaves the frame
        far = min((abs((e - o) / u) for e, o, u in ((0, oy, uy), (h - 1, oy, uy), (0, ox, ux), (w - 1, ox, ux))
                   if u * (e - o) < 0 and abs(u) > 1e-6), default=max(h, w))
        for t in np.arange(-far, NEAR * length, STEP * scale):
            cy, cx = oy + t * uy, ox + t * ux
            ring = _polar(bright, cy, cx, rings, ANGLES)
            lamp = _polar(clip, cy, cx, rings, ANGLES) > 0
            first = int(np.argmax(lamp.any(axis=1))) if lamp.any() else len(rings)  # the first ring with a clip
            # the radii whose outer ring holds no clipped pixel (a lamp, the sky) and stays clear of the lamp
            fits = (bounds["outer"][1] <= first) & (OUTSIDE[1] * radii + lr + LAMP_CLEARANCE * scale <= length - t)
            if not fits.any():
                continue
            total = np.concatenate([np.zeros((1, ANGLES), np.float32), np.cumsum(ring, axis=0)])  # NaN from the frame
            means = {k: (total[b] - total[a]) / np.maximum(b - a, 1)[:, None] for k, (a, b) in bounds.items()
                     if k not in ("search", "peak")}
            contrast = means["inner"] - means["outer"]  # (radii, angles), NaN where the ring leaves the frame
            ringed = means["band"] - 0.5 * (means["in"] + means["out"])
            valid = np.isfinite(contrast)
            fits &= valid.sum(axis=1) >= SHARE * ANGLES
            maybe = _may_pass(contrast, valid)
            if look_for_rings:
                maybe |= _may_pass(ringed, valid, RING_EXCESS)
            smooth = fall = None  # the brightness along each direction, smoothed, and its fall: made once
            for k in np.flatnonzero(fits & maybe):
                r = radii[k]
                c = contrast[k][valid[k]]
                band = ringed[k][valid[k]]
                disc = _passes(c)
                ringlike = look_for_rings and np.median(band) > RING_EXCESS and _passes(band)
                if not (disc or ringlike):
                    continue
                if smooth is None:
                    smooth = ndimage.uniform_filter1d(np.nan_to_num(ring), 5, axis=0)
                    fall = -np.gradient(smooth, axis=0)
                if disc:  # the brightness falls fastest at its rim
                    a, b = bounds["search"][0][k], bounds["search"][1][k]
                    edge = rings[a + np.argmax(fall[a:b], axis=0)][valid[k]]
                    if ((edge >= RIM[0] * r) & (edge <= RIM[1] * r)).mean() >= RIM_SHARE:
                        found.append({"centre": (float(cy), float(cx)), "radius": float(r),
                                      "contrast": float(np.median(c))})
                        continue
                if ringlike:  # the brightest point is on its ring
                    a, b = bounds["peak"][0][k], bounds["peak"][1][k]
                    top = rings[a + np.argmax(smooth[a:b], axis=0)][valid[k]]
                    if ((top >= RING_PEAK[0] * r) & (top <= RING_PEAK[1] * r)).mean() >= RING_SHARE:
                        found.append({"centre": (float(cy), float(cx)), "radius": float(r),
                                      "contrast": float(np.median(band)), "ring": True})
    # overlapping candidates: the strongest stands (one ghost is found at several centres and radii)
    kept = []
    for g in sorted(found, key=lambda g: -g["contrast"]):
        if all(math.hypot(g["centre"][0] - k["centre"][0], g["centre"][1] - k["centre"][1])
               > OUTSIDE[1] * (g["radius"] + k["radius"]) for k in kept):
            kept.append(g)
    return kept


def _profile(linear: np.ndarray, ghost: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ghost's rim, px at each of ANGLES directions, and its (len(PROFILE), 3) added light along the
    radius in units of that rim (the median over directions of each channel less its level outside)."""
    cy, cx = ghost["centre"]
    r = ghost["radius"]
    radii = np.arange(0, LEVEL[1] * RIM[1] * r + 1, 0.5, dtype=np.float32)
    polar = np.stack([_polar(np.ascontiguousarray(linear[..., c]), cy, cx, radii, ANGLES) for c in range(3)], 2)
    fall = -np.gradient(ndimage.uniform_filter1d(np.nan_to_num(polar.sum(2)), 3, axis=0), axis=0)
    window = (radii >= RIM[0] * r) & (radii <= RIM[1] * r)
    rim = radii[window][np.argmax(fall[window], axis=0)]
    rim = ndimage.median_filter(rim, size=5, mode="wrap")
    u = radii[:, None] / rim[None, :]  # (radii, angles) in rims
    outside = (u >= LEVEL[0]) & (u <= LEVEL[1])
    profile = np.empty((len(PROFILE), 3), np.float32)
    with warnings.catch_warnings():  # a direction that leaves the frame has no level: NaN, left out of the median
        warnings.simplefilter("ignore", RuntimeWarning)
        for c in range(3):
            plane = polar[..., c]
            level = np.nanmedian(np.where(outside, plane, np.nan), axis=0)
            along = np.stack([np.interp(PROFILE, u[:, k], plane[:, k], right=np.nan) for k in range(ANGLES)], 1)
            profile[:, c] = np.nanmedian(along - level[None, :], axis=1)
    profile = np.nan_to_num(np.clip(profile, 0, None))
    profile[-1] = 0  # nothing is taken beyond LEVEL[0] rims
    return rim, profile


def _ring_profile(linear: np.ndarray, ring: dict) -> tuple[np.ndarray, np.ndarray]:
    """A ring's added light: (u, (len(u), 3)) at radii u (in units of its radius) from
    RING_BESIDE's inner band to its outer one, the median over directions of each channel less the straight
    line through its levels in those two bands (what lies across the ring, the scene under its hollow or a
    lamp's glare, stays; only the bump above it is taken)."""
    cy, cx = ring["centre"]
    r = ring["radius"]
    u = np.arange(RING_BESIDE[0][0], RING_BESIDE[1][1] + 1e-6, 0.5 / r, dtype=np.float32)
    inner, outer = (u >= RING_BESIDE[0][0]) & (u <= RING_BESIDE[0][1]), (u >= RING_BESIDE[1][0])
    ui, uo = float(u[inner].mean()), float(u[outer].mean())
    profile = np.empty((len(u), 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for c in range(3):
            polar = _polar(np.ascontiguousarray(linear[..., c]), cy, cx, u * r, ANGLES)
            li, lo = np.nanmean(polar[inner], axis=0), np.nanmean(polar[outer], axis=0)
            base = li[None, :] + (lo - li)[None, :] * ((u - ui) / (uo - ui))[:, None]
            profile[:, c] = np.nanmedian(polar - base, axis=1)
    profile = np.nan_to_num(np.clip(profile, 0, None))
    profile[inner] = 0  # the beside bands are the level
    profile[outer] = 0
    return u, profile


def _take_ring(linear: np.ndarray, out: np.ndarray, changed: np.ndarray, ring: dict) -> None:
    """Subtract a ring's added light, measured in ``linear`` (``_ring_profile``), from ``out``
    (both (H, W, 3) linear light) in place, and mark the pixels it changes in ``changed`` ((H, W) bool)."""
    u, profile = _ring_profile(linear, ring)
    cy, cx = ring["centre"]
    window, yy, xx = _window(changed.shape, cy, cx, u[-1] * ring["radius"] + 1)
    d = np.hypot(yy - cy, xx - cx) / ring["radius"]
    _subtract(out, changed, window, np.stack([np.interp(d, u, profile[:, c], left=0, right=0) for c in range(3)], 2))


def _window(shape: tuple[int, int], cy: float, cx: float, reach: float):
    """The part of an (H, W) frame within ``reach`` px of (``cy``, ``cx``): its (rows, cols) slices and the
    float y and x of its pixels."""
    h, w = shape
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, h)
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, w)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), yy, xx


def _subtract(out: np.ndarray, changed: np.ndarray, window, cut: np.ndarray) -> None:
    """Take ``cut`` (linear light, the window's (h, w, 3)) from ``out`` there, never below zero, in place, and mark
    the pixels it touches in ``changed``."""
    out[window] = np.clip(out[window] - cut, 0, None)
    changed[window] |= cut.max(axis=2) > 0


def remove_ghosts(image: np.ndarray, cores: np.ndarray, *, scale: float = 1.0,
                  streaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``image``: (H, W, 3) float in [0, 1] (the model's output at the work size, display units);
    ``cores``: (H, W) bool, the input's white-clipped pixels; ``scale``: its long side over 512;
    ``streaks``: None or (H, W) bool, the pixels of the streaks and spikes taken out before (``find_ghosts``).
    Returns the image with every ghost's light taken out, the (H, W) bool pixels changed and the
    number of ghosts."""
    h, w = cores.shape
    linear = np.clip(image, 0, 1).astype(np.float32) ** GAMMA
    ghosts = find_ghosts(linear, cores, scale=scale, streaks=streaks)
    changed = np.zeros((h, w), bool)
    if not ghosts:
        return image, changed, 0
    out = linear.copy()
    for g in ghosts:
        if g.get("ring"):
            _take_ring(linear, out, changed, g)
            continue
        rim, profile = _profile(linear, g)
        cy, cx = g["centre"]
        window, yy, xx = _window((h, w), cy, cx, LEVEL[0] * float(rim.max()) + 1)
        a = np.mod(np.arctan2(yy - cy, xx - cx), 2 * math.pi) * np.float32(ANGLES / (2 * math.pi))
        at = ndimage.map_coordinates(np.r_[rim, rim[:1]], [a.ravel()], order=1).reshape(a.shape)
        u = np.hypot(yy - cy, xx - cx) / at
        _subtract(out, changed, window, np.stack([np.interp(u, PROFILE, profile[:, c], right=0) for c in range(3)], 2))
    result = image.astype(np.float32, copy=True)
    result[changed] = out[changed] ** (1 / GAMMA)
    return result, changed, len(ghosts)
