"""Synthetic lens-flare pairs from clean photos, made on the fly and reproducible by seed.

After Wu et al., "How to Train Neural Networks for Flare Removal" (ICCV 2021) and Dai et
al., Flare7K (NeurIPS 2022): flare is light, so it is composed in **linear** light:

1. decode the clean photo to linear light with a random gamma (1.8 to 2.2) and scale its
   exposure down (night and backlit scenes are where flare shows);
2. place one to three light sources (small saturated discs, tinted like street lamps,
   LEDs or the sun). The sources belong to the scene: they are in the target too, since
   removing the street lamp itself would be wrong (Flare7K++ keeps them as well);
3. build a flare layer per source: a glow with radial falloff and a halo ring, starburst
   streaks (random ray count, sharpness, length, rotation), ghosts (soft discs or aperture
   polygons of several sizes and tints on the line from the source through the image
   centre, mirrored beyond it) and a veiling glare; random overall strength; a mild blur;
4. input = scene + sources + flare (+ sensor noise), target = scene + sources, both
   clipped and re-encoded with the same gamma.

``FlarePairs`` draws training patches from a list of photos; ``validation_pairs`` is a
fixed, seeded set from held-out photos; ``PairFolder`` reads real pairs from a folder
with ``input/`` and ``target/`` (the layout of camera image-quality competitions), which
``FrameFlarePairs`` can mix into training and ``real_frames`` turns into a measured set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import LightSRError
from ..imaging import image_files
from ..imaging import fit_long_side, open_image
from .optics import synthesize_optics_pair
from .shimmer import synthesize_shimmer_pair
from .streaks import synthesize_streak_pair

__all__ = ["FlareConfig", "synthesize_pair", "FlarePairs", "FrameFlarePairs", "validation_pairs", "validation_frames",
           "overexpose", "exposure_gain", "GENERATORS", "HELD_OUT_GENERATORS", "MEASURED_GENERATORS", "PairFolder",
           "real_frames"]

# what a trainer may draw from: lightsr.data.optics and the hand-drawn one in this file always, lightsr.data.streaks
# with train_flare --streaks-prob
GENERATORS = ("optics", "drawn", "streaks")
HELD_OUT_GENERATORS = ("shimmer",)  # measured only (lightsr.data.shimmer): flare drawn some other way
MEASURED_GENERATORS = GENERATORS + HELD_OUT_GENERATORS  # what validation_frames draws

# Colours of common light sources in linear RGB (normalised to a max of 1).
LIGHT_TINTS = np.array([
    [1.00, 0.62, 0.25],  # sodium-vapour street lamp
    [1.00, 0.85, 0.65],  # tungsten / warm white
    [0.85, 0.92, 1.00],  # cool LED
    [1.00, 1.00, 0.95],  # sun / white
    [1.00, 0.40, 0.35],  # red traffic / tail light
    [0.55, 1.00, 0.70],  # green signal
])


@dataclass
class FlareConfig:
    gamma: tuple[float, float] = (1.8, 2.2)
    exposure: tuple[float, float] = (0.15, 0.8)  # scene brightness scale: dim scenes flare most
    sources: tuple[int, int] = (1, 3)
    source_radius: tuple[float, float] = (0.004, 0.02)  # fraction of the image diagonal
    strength: tuple[float, float] = (0.3, 1.2)  # overall flare intensity
    rays: tuple[int, int] = (4, 16)
    ghosts: tuple[int, int] = (2, 7)
    veil: tuple[float, float] = (0.0, 0.06)
    noise: tuple[float, float] = (0.0, 0.01)  # sensor noise std in linear light
    # a long thin streak through a source (a smeared or scratched front element, a windscreen):
    # the streak of real night photos. 0 leaves the draws, and so every seeded set, as they were
    line_prob: float = 0.0
    line_gain: tuple[float, float] = (0.3, 2.5)  # peak over the sensor's white, before strength
    # how far real glare reaches: the glow's peak (over the sensor's white, before strength; above
    # about 1 it clips into a disc), and the share of glows with a power-law tail (scattering glare
    # falls off as a power of the angle, not exponentially, so it reaches across the frame)
    glow_gain: tuple[float, float] = (0.15, 0.6)
    tail_prob: float = 0.0
    # the share of sources whose ghosts have a bright rim and lateral colour (the red, green and blue
    # images of a ghost differ in size, as a real lens's do). 0, like tail_prob 0, draws nothing extra
    rim_prob: float = 0.0


def _u(rng: np.random.Generator, lo_hi) -> float:
    return float(rng.uniform(*lo_hi))


def _tint(rng: np.random.Generator) -> np.ndarray:
    t = LIGHT_TINTS[rng.integers(len(LIGHT_TINTS))] * rng.uniform(0.9, 1.1, 3)
    return t / t.max()


def _polygon_mask(dx: np.ndarray, dy: np.ndarray, radius: float, sides: int, angle: float, soft: float) -> np.ndarray:
    """A soft regular polygon (an aperture-shaped ghost) or, with sides=0, a soft disc."""
    r = np.hypot(dx, dy)
    if sides:
        theta = np.arctan2(dy, dx) - angle
        sector = 2 * math.pi / sides
        # distance to the polygon edge along the ray: apothem / cos(angle within the sector)
        edge = radius * math.cos(math.pi / sides) / np.cos((theta % sector) - sector / 2)
    else:
        edge = radius
    return np.clip((edge - r) / max(soft, 1e-3) + 0.5, 0, 1)


def _glow(d: np.ndarray, rng: np.random.Generator, cfg: FlareConfig) -> np.ndarray:
    """A lamp's glow at ``d`` (distance as a fraction of the diagonal): an exponential fall-off, or with
    probability ``cfg.tail_prob`` mostly a power law ``(d0 / (d0 + d))^p``: a sharp core and a tail
    that an exponential lacks (scattering glare falls off as a power of the angle)."""
    glow = _u(rng, cfg.glow_gain) * np.exp(-d / _u(rng, (0.02, 0.12)))
    if cfg.tail_prob and rng.random() < cfg.tail_prob:
        d0, p = _u(rng, (0.003, 0.03)), _u(rng, (1.0, 2.5))
        glow = glow * 0.3 + _u(rng, cfg.glow_gain) * (d0 / (d0 + d)) ** p
    return glow


def _rimmed_ghost(dx: np.ndarray, dy: np.ndarray, radius: float, sides: int, angle: float, rim: float,
                  width: float, spread: float) -> np.ndarray:
    """(H, W, 3) an aperture ghost with a sharp edge and a bright rim (``rim`` times its fill, ``width``
    of its radius wide), drawn per channel at sizes 1 + spread, 1, 1 - spread (lateral colour)."""
    out = np.empty((*dx.shape, 3), np.float32)
    for c, s in enumerate((1 + spread, 1.0, 1 - spread)):
        outer = _polygon_mask(dx, dy, radius * s, sides, angle, soft=1.0)
        inner = _polygon_mask(dx, dy, radius * s * (1 - width), sides, angle, soft=1.0)
        out[..., c] = outer + rim * (outer - inner)
    return out


def _flare_layer(h: int, w: int, sx: float, sy: float, rng: np.random.Generator, cfg: FlareConfig,
                 diag: float) -> np.ndarray:
    """(H, W, 3) linear flare light of one source at (sx, sy)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - sx, yy - sy
    d = np.hypot(dx, dy) / diag
    tint = _tint(rng)
    layer = np.zeros((h, w, 3), np.float32)

    # glow with radial falloff, and a faint halo ring
    glow = _glow(d, rng, cfg)
    ring_r, ring_w = _u(rng, (0.05, 0.25)), _u(rng, (0.005, 0.03))
    halo = _u(rng, (0.0, 0.08)) * np.exp(-((d - ring_r) ** 2) / (2 * ring_w**2))
    layer += (glow + halo)[..., None] * tint

    # starburst: rays at regular angles, each a narrow angular lobe decaying with distance
    n = int(rng.integers(cfg.rays[0], cfg.rays[1] + 1))
    theta = np.arctan2(dy, dx) - _u(rng, (0, 2 * math.pi))
    spacing = 2 * math.pi / n
    off = np.abs(((theta + spacing / 2) % spacing) - spacing / 2)  # angle to the nearest ray
    width = _u(rng, (0.004, 0.03))
    rays = np.exp(-((off / width) ** 2)) * np.exp(-d / _u(rng, (0.05, 0.35)))
    layer += (_u(rng, (0.1, 0.8)) * rays)[..., None] * tint

    if cfg.line_prob and rng.random() < cfg.line_prob:
        phi = _u(rng, (0, math.pi))
        along = dx * math.cos(phi) + dy * math.sin(phi)
        across = -dx * math.sin(phi) + dy * math.cos(phi)
        sigma = _u(rng, (0.4, 2.5)) * diag / 640  # px at a 512 x 384 frame
        length = _u(rng, (0.3, 1.2)) * diag
        fall = np.clip(1 - np.abs(along) / length, 0, 1) ** _u(rng, (1.0, 3.0))
        layer += (_u(rng, cfg.line_gain) * np.exp(-0.5 * (across / sigma) ** 2) * fall)[..., None] * tint

    # ghosts on the line from the source through the centre
    cx, cy = w / 2, h / 2
    sides = int(rng.choice([0, 5, 6, 7, 8]))
    angle = _u(rng, (0, math.pi))
    rimmed = bool(cfg.rim_prob) and rng.random() < cfg.rim_prob
    for _ in range(int(rng.integers(cfg.ghosts[0], cfg.ghosts[1] + 1))):
        t = _u(rng, (-1.6, 0.7))  # 1 is the source, 0 the centre, negative beyond it
        gx, gy = cx + t * (sx - cx), cy + t * (sy - cy)
        radius = _u(rng, (0.01, 0.09)) * diag
        soft = _u(rng, (0.5, 0.25 * radius + 1))
        colour = _tint(rng) * rng.uniform(0.4, 1.0, 3)
        gain = _u(rng, (0.01, 0.12))
        if not rimmed:
            ghost = _polygon_mask(xx - gx, yy - gy, radius, sides, angle, soft=soft)
            layer += (gain * ghost)[..., None] * colour
        else:
            rim, width, spread = _u(rng, (0.5, 3.0)), _u(rng, (0.04, 0.2)), _u(rng, (-0.08, 0.08))
            layer += _rimmed_ghost(xx - gx, yy - gy, radius, sides, angle, rim, width, spread) * (gain * colour)

    # veiling glare: a low-frequency haze over the whole frame, stronger near the source
    veil = _u(rng, cfg.veil) * (0.6 + 0.4 * np.exp(-d / 0.5))
    layer += veil[..., None] * tint
    return layer


def _box_blur(img: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return img
    k = 2 * radius + 1
    pad = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    c = pad.cumsum(0)
    c = np.concatenate([c[k - 1:k], c[k:] - c[:-k]], axis=0)
    c = c.cumsum(1)
    c = np.concatenate([c[:, k - 1:k], c[:, k:] - c[:, :-k]], axis=1)
    return c / (k * k)


def synthesize_pair(scene: np.ndarray, rng: np.random.Generator, cfg: FlareConfig | None = None, *,
                    return_layers: bool = False):
    """(H, W, 3) uint8 clean photo -> (input with flare, target without), both uint8 (H, W, 3).

    Sensor noise is part of the scene: the same noise is in the input and the target, so a
    pixel no flare reaches is identical in both (a model is never taught to denoise, which
    would change the photo away from the flare). With ``return_layers`` also
    ``{"flare": (H, W) uint8}``, the noise-free max-over-channels |input - target|.
    """
    cfg = cfg or FlareConfig()
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 photo, got {scene.shape} {scene.dtype}")
    h, w = scene.shape[:2]
    diag = math.hypot(h, w)
    gamma = _u(rng, cfg.gamma)
    linear = (scene.astype(np.float32) / 255.0) ** gamma * _u(rng, cfg.exposure)
    sources = np.zeros_like(linear)
    flare = np.zeros_like(linear)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(cfg.sources[0], cfg.sources[1] + 1))):
        sx, sy = _u(rng, (0.05 * w, 0.95 * w)), _u(rng, (0.05 * h, 0.9 * h))
        r = _u(rng, cfg.source_radius) * diag + 1.0
        core = np.exp(-((np.hypot(xx - sx, yy - sy) / r) ** 4))  # a flat-topped, saturated disc
        sources += (core * _u(rng, (3.0, 20.0)))[..., None] * _tint(rng)
        flare += _flare_layer(h, w, sx, sy, rng, cfg, diag)
    flare *= _u(rng, cfg.strength)
    flare = _box_blur(flare, int(rng.integers(0, 3)))
    noise = rng.normal(0, _u(rng, cfg.noise), linear.shape).astype(np.float32)
    target = linear + sources

    def encode(x: np.ndarray) -> np.ndarray:
        return np.round(np.clip(x, 0, 1) ** (1 / gamma) * 255).astype(np.uint8)

    inp, clean = encode(target + flare + noise), encode(target + noise)
    if not return_layers:
        return inp, clean
    diff = np.abs(encode(target + flare).astype(np.int16) - encode(target)).max(2).astype(np.uint8)
    return inp, clean, {"flare": diff}


class FlarePairs:
    """Random training patches: a crop of a random photo (flips/rotations) with fresh flare."""

    def __init__(self, photos: list[np.ndarray], patch: int, cfg: FlareConfig | None = None):
        self.photos = [p for p in photos if min(p.shape[:2]) >= patch]
        if not self.photos:
            raise LightSRError(f"no photo is at least {patch} px on its short side")
        self.patch, self.cfg = patch, cfg or FlareConfig()

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(batch, patch, patch, 3) uint8 inputs and targets."""
        xs, ys = [], []
        p = self.patch
        for _ in range(batch):
            img = self.photos[rng.integers(len(self.photos))]
            y, x = rng.integers(img.shape[0] - p + 1), rng.integers(img.shape[1] - p + 1)
            crop = img[y:y + p, x:x + p]
            k = int(rng.integers(8))
            crop = np.ascontiguousarray(np.rot90(crop[:, ::-1] if k >= 4 else crop, k % 4))
            a, b = synthesize_pair(crop, rng, self.cfg)
            xs.append(a)
            ys.append(b)
        return np.stack(xs), np.stack(ys)


def exposure_gain(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A gain for ``overexpose`` drawn log-uniformly from ``bounds`` (lo, hi): as many frames a
    stop over as two stops over."""
    return math.exp(rng.uniform(*np.log(bounds)))


def overexpose(photo: np.ndarray, gain: float) -> np.ndarray:
    """(H, W, 3) uint8 ``photo`` exposed ``gain`` times longer: scaled in linear light (gamma 2.2)
    and clipped at the sensor's white, as a daylight shot with blown sky or highlights is. Above
    gain 1 every pixel over 255 * gain ** (-1 / 2.2) clips: a third of the range at gain 2.4. Clean
    training samples made this way teach a model that large clipped areas are scenery, not glare."""
    if gain <= 0:
        raise LightSRError(f"the exposure gain must be positive, got {gain}")
    linear = (photo.astype(np.float32) / 255.0) ** 2.2 * gain
    return np.round(np.clip(linear, 0.0, 1.0) ** (1 / 2.2) * 255.0).astype(np.uint8)


def validation_pairs(photos: list[np.ndarray], *, count: int = 24, size: int = 256, seed: int = 1234,
                     cfg: FlareConfig | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed validation set: centre crops of held-out photos, ``count`` pairs, seeded."""
    if not photos:
        raise LightSRError("validation needs at least one held-out photo")
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        img = photos[i % len(photos)]
        s = min(size, *img.shape[:2])
        y, x = (img.shape[0] - s) // 2, (img.shape[1] - s) // 2
        pairs.append(synthesize_pair(np.ascontiguousarray(img[y:y + s, x:x + s]), rng, cfg))
    return pairs


class FrameFlarePairs:
    """Whole-frame training pairs: most of a photo, at the resolution flare is removed at.

    Each sample resizes a random photo so its short side is 1 to 1.4 times ``frame``, crops a
    ``frame`` x ``frame`` square (so a crop keeps at least 70% of the short side: a streak is
    seen whole), flips/rotates it and adds fresh flare from the ``optics`` generator with
    probability ``optics_prob``, else from the hand-drawn one; with ``streaks_prob``, that share of
    the flare pairs comes from the streak generator (``lightsr.data.streaks``) first, and the rest
    is split as before (0, the default, draws nothing for it). With ``pairs`` (a PairFolder of
    real flare pairs), a share ``pairs_prob`` of the samples is instead a real pair, resized,
    cropped and flipped the same way in input and target. A share ``clean_prob`` of the
    synthetic samples gets no flare at all (input = target = the frame as it is), so a model
    also learns to leave flare-free photos alone, clipped daylight skies and highlights included;
    with ``clean_gain`` (lo, hi) each such frame is first over-exposed (``overexpose``) by a gain
    drawn log-uniformly from it, so that large clipped areas are among them too.
    """

    def __init__(self, photos: list[np.ndarray], frame: int, *, bank=None, optics_prob: float = 0.7,
                 cfg: FlareConfig | None = None, optics_cfg=None, pairs: PairFolder | None = None,
                 pairs_prob: float = 0.0, clean_prob: float = 0.0,
                 clean_gain: tuple[float, float] | None = None, streaks_prob: float = 0.0):
        if not photos:
            raise LightSRError("no training photos")
        if optics_prob > 0 and bank is None:
            raise LightSRError("the optics generator needs a PSF bank")
        if pairs_prob > 0 and not pairs:
            raise LightSRError("a share of real pairs needs a folder of them (--pairs)")
        if not 0.0 <= clean_prob < 1.0:
            raise LightSRError(f"the share of flare-free samples must be in [0, 1), got {clean_prob}")
        if not 0.0 <= streaks_prob <= 1.0:
            raise LightSRError(f"the share of streak-generator pairs must be in [0, 1], got {streaks_prob}")
        if clean_gain is not None and not 0 < clean_gain[0] <= clean_gain[1]:
            raise LightSRError(f"the flare-free samples' exposure gain needs 0 < LO <= HI, got {clean_gain}")
        self.photos, self.frame, self.bank, self.clean_prob = photos, frame, bank, clean_prob
        self.optics_prob, self.cfg, self.optics_cfg = optics_prob, cfg or FlareConfig(), optics_cfg
        self.pairs, self.pairs_prob, self.clean_gain = pairs, pairs_prob, clean_gain
        self.streaks_prob = streaks_prob

    def _frame(self, rng: np.random.Generator, *images: np.ndarray) -> list[np.ndarray]:
        """The same random resize (short side 1 to 1.4 frames), square crop and flip/rotation of each image."""
        p = self.frame
        h, w = images[0].shape[:2]
        f = rng.uniform(1.0, 1.4) * p / min(h, w)
        size = (max(p, round(w * f)), max(p, round(h * f)))
        y, x = rng.integers(size[1] - p + 1), rng.integers(size[0] - p + 1)
        k = int(rng.integers(8))
        out = []
        for img in images:
            crop = np.asarray(Image.fromarray(img).resize(size, Image.BOX))[y:y + p, x:x + p]
            out.append(np.ascontiguousarray(np.rot90(crop[:, ::-1] if k >= 4 else crop, k % 4)))
        return out

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(batch, frame, frame, 3) uint8 inputs and targets."""
        xs, ys = [], []
        for _ in range(batch):
            if self.pairs_prob and rng.random() < self.pairs_prob:
                a, b = self._frame(rng, *self.pairs[int(rng.integers(len(self.pairs)))])
                xs.append(a)
                ys.append(b)
                continue
            (crop,) = self._frame(rng, self.photos[rng.integers(len(self.photos))])
            if self.clean_prob and rng.random() < self.clean_prob:  # no draw at 0: seeded streams unchanged
                if self.clean_gain:
                    crop = overexpose(crop, exposure_gain(rng, self.clean_gain))
                a, b = crop, crop
            elif self.streaks_prob and rng.random() < self.streaks_prob:  # no draw at 0, as above
                a, b = synthesize_streak_pair(crop, rng)
            elif rng.random() < self.optics_prob:
                a, b = synthesize_optics_pair(crop, rng, self.bank, self.optics_cfg)
            else:
                a, b = synthesize_pair(crop, rng, self.cfg)
            xs.append(a)
            ys.append(b)
        return np.stack(xs), np.stack(ys)


def validation_frames(photos: list[np.ndarray], generator: str, *, count: int = 24, long_side: int = 512,
                      seed: int = 1234, bank=None) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """A fixed validation set of whole frames: held-out photos at ``long_side`` px, flare from
    ``generator`` ("optics", "drawn", "streaks", or the held-out "shimmer" that no trainer uses), ``count``
    seeded pairs with their flare layers."""
    if not photos:
        raise LightSRError("validation needs at least one held-out photo")
    if generator not in MEASURED_GENERATORS:
        raise LightSRError(f"generator must be one of {', '.join(MEASURED_GENERATORS)}, got {generator!r}")
    if generator == "optics" and bank is None:
        raise LightSRError("the optics generator needs a PSF bank")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        scene = fit_long_side(photos[i % len(photos)], long_side)
        if generator == "optics":
            out.append(synthesize_optics_pair(scene, rng, bank, return_layers=True))
        elif generator == "streaks":
            out.append(synthesize_streak_pair(scene, rng, return_layers=True))
        elif generator == "shimmer":
            out.append(synthesize_shimmer_pair(scene, rng, return_layers=True))
        else:
            out.append(synthesize_pair(scene, rng, return_layers=True))
    return out


def real_frames(pairs: PairFolder, *, long_side: int = 512) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """Real pairs as a validation set like ``validation_frames``: both at ``long_side`` px, with the
    flare layer estimated from the pair (max over channels of input minus target, 0..255: it
    holds the pair's noise and misalignment too, so its region masks are approximate)."""
    out = []
    for i in range(len(pairs)):
        a, b = (fit_long_side(x, long_side) for x in pairs[i])
        flare = np.clip(a.astype(np.int16) - b.astype(np.int16), 0, 255).max(axis=2).astype(np.uint8)
        out.append((a, b, {"flare": flare}))
    return out


class PairFolder:
    """Real pairs: ``root/input/NAME`` and ``root/target/NAME`` with matching file names (the
    layout of Flare7K++'s real test set and of camera image-quality competitions). Read on
    use: ``pairs[i]`` is the (input, target) pair of uint8 (H, W, 3) arrays."""

    def __init__(self, root: str | Path):
        root = Path(root)
        inputs = {p.name: p for p in image_files(root / "input")}
        targets = {p.name: p for p in image_files(root / "target")}
        missing = sorted(set(inputs) ^ set(targets))
        if missing:
            raise LightSRError(f"{root}: input/ and target/ do not match: {', '.join(missing[:3])}")
        self.names = sorted(inputs)
        self.root = root

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(open_image(self.root / "input" / self.names[i]).convert("RGB"))
        b = np.asarray(open_image(self.root / "target" / self.names[i]).convert("RGB"))
        if a.shape != b.shape:
            raise LightSRError(f"{self.names[i]}: input {a.shape[:2]} and target {b.shape[:2]} differ in size")
        return a, b
