"""Lens flare synthesised from optics: a bank of wave-optics PSFs, ghosts, over-exposed lamps.

After Wu et al., "How to Train Neural Networks for Flare Removal" (ICCV 2021), whose
scattering flare is simulated as the point spread function of a dirty, scratched aperture,
and the physically based flare rendering that followed it:

**Scattering flare.** Fraunhofer diffraction: the PSF at wavelength lambda is
``|FFT(pupil)|**2`` with the pupil ``aperture * (1 - dust) * (1 - scratches) *
exp(2 pi i W / lambda)``:

- the aperture is a disc or a polygon of 5 to 9 blades (the polygon's edges give the
  starburst spikes, at right angles to each edge);
- dust specks of partial opacity scatter light widely (glare, haze);
- scratches, thin opaque lines, give long streaks at right angles to them;
- ``W`` is a wavefront error of defocus, astigmatism and coma, in waves at 550 nm.

The PSF's size on the sensor scales with lambda, so each wavelength's PSF is resampled by
``lambda / 550 nm`` before it is added to R, G and B with CIE 1931 colour matching weights
(the multi-lobe Gaussian fit of Wyman, Sloan and Shirley, JCGT 2013) turned into linear
sRGB. A spectral sum of 16 wavelengths gives the rainbow fringes of real streaks.

**Reflective flare (ghosts).** Inter-reflections between lens surfaces image the aperture
onto the line from each source through the optical centre: aperture-shaped, tinted by the
coatings, of several sizes, some sharp and some blurred, with energy 1e-4 to 1e-2 of the
source's.

**Over-exposure.** Lamps are 10**2 to 10**4 times the sensor's white, so their cores, the
glare disc around them and the brightest streaks clip, as in real night photos. The scene,
the lamps and the flare are added in linear light, clipped at the sensor's white, then
encoded with a random tone curve; noise and JPEG are applied identically to input and
target, so every pixel that no flare reaches is the same in both. The target keeps each
lamp itself (a clipped disc of its own size), and loses its flare, glare disc included.

**The PSF bank.** PSFs take FFTs of a 1024 px pupil at 16 wavelengths, about half a second
each, so ``psf_bank`` computes a seeded bank once and caches it (``.npy``, no pickle) under
``$LIGHTSR_CACHE`` or ``~/.cache/lightsr``. ``python -m lightsr.data.optics`` regenerates
it. Training then only rotates, scales and convolves.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import LightSRError
from ..imaging import cache_dir, write_atomically

__all__ = ["OpticsConfig", "PSFBank", "psf_bank", "compute_psf", "synthesize_optics_pair", "spectral_weights"]

WAVELENGTHS_NM = np.linspace(410.0, 690.0, 16)
REFERENCE_NM = 550.0
XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
# Anti-reflection coatings reflect a little of the spectrum: ghosts are tinted.
GHOST_TINTS = np.array([
    [0.45, 1.00, 0.55],  # green (the commonest coating residual)
    [1.00, 0.45, 1.00],  # magenta
    [1.00, 0.75, 0.35],  # amber
    [0.50, 0.70, 1.00],  # blue
    [1.00, 1.00, 1.00],  # neutral
])
LAMP_TINTS = np.array([
    [1.00, 0.62, 0.25],  # sodium-vapour street lamp
    [1.00, 0.85, 0.65],  # tungsten / warm white
    [0.85, 0.92, 1.00],  # cool LED
    [1.00, 1.00, 0.95],  # sun / white
    [1.00, 0.40, 0.35],  # red tail light
    [0.55, 1.00, 0.70],  # green signal
])


@dataclass(frozen=True)
class OpticsConfig:
    """How PSFs are drawn (the bank) and how pairs are composed (the synthesis)."""
    # bank
    bank_size: int = 64
    seed: int = 2021
    pupil: int = 1024  # FFT grid; the aperture diameter is ``aperture`` of it
    psf_size: int = 512  # stored PSF, px at 550 nm (the Airy core is about 1.22 / aperture px in radius)
    aperture: tuple[float, float] = (0.16, 0.28)
    circle_prob: float = 0.3  # else a polygon of 5..9 blades
    dust: tuple[int, int] = (0, 400)
    scratches: tuple[int, int] = (0, 8)
    defocus_waves: tuple[float, float] = (0.0, 1.2)
    # synthesis
    lamps: tuple[int, int] = (1, 4)
    lamp_radius: tuple[float, float] = (1.5, 9.0)  # px on a ~512 px frame; scaled with the frame
    lamp_log10: tuple[float, float] = (1.5, 3.7)  # brightness in units of the sensor's white
    psf_scale: tuple[float, float] = (0.6, 1.6)
    exposure: tuple[float, float] = (0.04, 0.7)
    ghosts: tuple[int, int] = (2, 8)
    ghost_log10_energy: tuple[float, float] = (-4.0, -2.0)
    noise: tuple[float, float] = (0.0, 0.006)
    jpeg_prob: float = 0.5


def _gauss(x: np.ndarray, mu: float, s1: float, s2: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / np.where(x < mu, s1, s2)) ** 2)


def spectral_weights(wavelengths_nm: np.ndarray = WAVELENGTHS_NM) -> np.ndarray:
    """(L, 3) non-negative linear-sRGB weight of each wavelength, each column summing to 1."""
    lam = np.asarray(wavelengths_nm, dtype=np.float64)
    x = 1.056 * _gauss(lam, 599.8, 37.9, 31.0) + 0.362 * _gauss(lam, 442.0, 16.0, 26.7) \
        - 0.065 * _gauss(lam, 501.1, 20.4, 26.2)
    y = 0.821 * _gauss(lam, 568.8, 46.9, 40.5) + 0.286 * _gauss(lam, 530.9, 16.3, 31.1)
    z = 1.217 * _gauss(lam, 437.0, 11.8, 36.0) + 0.681 * _gauss(lam, 459.0, 26.0, 13.8)
    rgb = np.clip(np.stack([x, y, z], 1) @ XYZ_TO_LINEAR_SRGB.T, 0, None)
    return rgb / rgb.sum(0, keepdims=True)


def _polygon(dx: np.ndarray, dy: np.ndarray, radius: float, sides: int, angle: float) -> np.ndarray:
    """Signed distance (px, positive inside) to a regular polygon, or a circle with sides=0."""
    r = np.hypot(dx, dy)
    if not sides:
        return radius - r
    theta = np.arctan2(dy, dx) - angle
    sector = 2 * math.pi / sides
    apothem = radius * math.cos(math.pi / sides)
    return apothem - r * np.cos((theta % sector) - sector / 2)


def _pupil(rng: np.random.Generator, cfg: OpticsConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Amplitude and wavefront error (waves at 550 nm) of one random dirty, scratched lens."""
    n = cfg.pupil
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) - n / 2
    radius = rng.uniform(*cfg.aperture) * n / 2
    sides = 0 if rng.random() < cfg.circle_prob else int(rng.integers(5, 10))
    amp = np.clip(_polygon(xx, yy, radius, sides, rng.uniform(0, math.pi)) + 0.5, 0, 1)  # 1 px anti-aliased edge
    for _ in range(int(rng.integers(cfg.dust[0], cfg.dust[1] + 1))):  # dust: soft specks of partial opacity
        r0, a = rng.uniform(0, radius), rng.uniform(0, 2 * math.pi)
        cx, cy, size = r0 * math.cos(a), r0 * math.sin(a), radius * 10 ** rng.uniform(-2.0, -1.3)
        y0, y1 = int(max(cy + n / 2 - size - 2, 0)), int(min(cy + n / 2 + size + 3, n))
        x0, x1 = int(max(cx + n / 2 - size - 2, 0)), int(min(cx + n / 2 + size + 3, n))
        inside = np.clip(size - np.hypot(xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy) + 0.5, 0, 1)
        amp[y0:y1, x0:x1] *= 1 - rng.uniform(0.3, 1.0) * inside
    n_scratch = int(rng.integers(cfg.scratches[0], cfg.scratches[1] + 1))
    base_angle = rng.uniform(0, math.pi)  # wiping leaves near-parallel scratches
    for _ in range(n_scratch):
        a = base_angle + rng.normal(0, 0.25) if rng.random() < 0.6 else rng.uniform(0, math.pi)
        px, py = rng.uniform(-radius, radius, 2)
        half_len, width = rng.uniform(0.2, 1.2) * radius, rng.uniform(0.5, 2.0)
        along = (xx - px) * math.cos(a) + (yy - py) * math.sin(a)
        across = -(xx - px) * math.sin(a) + (yy - py) * math.cos(a)
        line = np.clip(width / 2 - np.abs(across) + 0.5, 0, 1) * (np.abs(along) < half_len)
        amp *= 1 - rng.uniform(0.5, 1.0) * line
    rho2 = (xx**2 + yy**2) / radius**2
    theta = np.arctan2(yy, xx)
    rho = np.sqrt(rho2)
    wavefront = rng.uniform(*cfg.defocus_waves) * (2 * rho2 - 1) \
        + rng.normal(0, 0.15) * rho2 * np.cos(2 * (theta - rng.uniform(0, math.pi))) \
        + rng.normal(0, 0.1) * (3 * rho2 - 2) * rho * np.cos(theta - rng.uniform(0, 2 * math.pi))
    return amp, wavefront, {"sides": sides, "radius_px": radius, "scratches": n_scratch}


def compute_psf(amp: np.ndarray, wavefront: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) float32 linear-sRGB PSF, each channel summing to at most 1, centred.

    One FFT per wavelength; each wavelength's intensity is resampled by lambda / 550 nm
    about the centre (a longer wavelength spreads wider) and weighted into R, G, B.
    """
    n = amp.shape[0]
    weights = torch.from_numpy(spectral_weights()).float()
    amp_t = torch.from_numpy(amp)
    w_t = torch.from_numpy(wavefront)
    total = amp_t.square().sum()
    out = torch.zeros(3, size, size)
    # grid_sample coordinates of the output pixels in the unscaled (550 nm) FFT image
    lin = (torch.arange(size, dtype=torch.float64) - size // 2) / (n / 2)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    for lam, wgt in zip(WAVELENGTHS_NM, weights):
        field = amp_t * torch.exp(2j * math.pi * w_t * (REFERENCE_NM / lam))
        intensity = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(field)).abs().square())
        intensity = (intensity / (total * n * n)).float()  # Parseval: the full PSF sums to 1
        s = REFERENCE_NM / lam  # sample the FFT image at x * 550 / lambda: the PSF grows with lambda
        grid = torch.stack([gx * s, gy * s], -1)[None].float()
        # half-pixel offset: fftshift puts the zero frequency at index n/2, not at n/2 - 0.5
        grid = grid + 0.5 / (n / 2)
        sampled = F.grid_sample(intensity[None, None], grid, mode="bilinear", align_corners=False)[0, 0]
        out += wgt[:, None, None] * (sampled * s * s)[None]  # density: resampling by s scales area by s**2
    # a smooth fade to zero at the border, so the finite PSF has no hard edge
    r = torch.hypot(gx, gy).float() * (n / 2) / (size / 2)
    out *= torch.clamp((1 - r) / 0.5, 0, 1).square()
    return out.numpy()


class PSFBank:
    """``psfs`` (B, 3, S, S) float32 linear PSFs, and what each pupil was (``meta``)."""

    def __init__(self, psfs: np.ndarray, meta: list[dict]):
        if psfs.ndim != 4 or psfs.shape[1] != 3 or len(meta) != len(psfs):
            raise LightSRError(f"a PSF bank is (B, 3, S, S) with B metadata entries, got {psfs.shape}")
        self.psfs, self.meta = psfs, meta

    def __len__(self) -> int:
        return len(self.psfs)


def psf_bank(cfg: OpticsConfig | None = None, *, cache: bool = True, refresh: bool = False,
             progress=None) -> PSFBank:
    """The seeded PSF bank of ``cfg``: loaded from the cache, else (or with ``refresh``) computed and cached."""
    cfg = cfg or OpticsConfig()
    bank_fields = {k: v for k, v in asdict(cfg).items()
                   if k in ("bank_size", "seed", "pupil", "psf_size", "aperture", "circle_prob", "dust", "scratches",
                            "defocus_waves")}
    key = hashlib.sha256(json.dumps(bank_fields, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"psf-bank-{key}.npy"
    meta_path = path.with_suffix(".json")
    if cache and not refresh and path.exists() and meta_path.exists():
        return PSFBank(np.load(path, allow_pickle=False), json.loads(meta_path.read_text()))
    rng = np.random.default_rng(cfg.seed)
    psfs = np.empty((cfg.bank_size, 3, cfg.psf_size, cfg.psf_size), np.float32)
    meta = []
    for i in range(cfg.bank_size):
        amp, wavefront, info = _pupil(rng, cfg)
        psfs[i] = compute_psf(amp, wavefront, cfg.psf_size)
        meta.append(info)
        if progress:
            progress(i + 1, cfg.bank_size)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: np.save(f, psfs, allow_pickle=False))
        write_atomically(meta_path, lambda f: f.write(json.dumps(meta).encode()))
    return PSFBank(psfs, meta)


def _warp_psf(psf: np.ndarray, out_size: int, scale: float, angle: float, flip: bool) -> torch.Tensor:
    """(3, out, out) PSF rotated by ``angle``, magnified by ``scale`` (energy kept), maybe mirrored."""
    s = psf.shape[-1]
    c, si = math.cos(angle), math.sin(angle)
    k = out_size / s / scale  # output pixel -> input normalised coordinates
    theta = torch.tensor([[c * k * (-1 if flip else 1), -si * k, 0.0], [si * k * (-1 if flip else 1), c * k, 0.0]],
                         dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 3, out_size, out_size], align_corners=False)
    warped = F.grid_sample(torch.from_numpy(np.ascontiguousarray(psf))[None], grid, mode="bilinear",
                           align_corners=False)[0]
    return warped / (scale * scale)


def _fast_len(n: int) -> int:
    """The smallest 2**a * 3**b * 5**c >= n: FFT sizes that factor into small primes run several times faster."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p235 = p35
            while p235 < n:
                p235 *= 2
            best = min(best, p235)
            p35 *= 3
        p5 *= 5
    return best


def _fft_convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(3, H, W) * (3, K, K) centred kernel -> (3, H, W), linear (zero-padded) convolution."""
    _, h, w = image.shape
    k = kernel.shape[-1]
    fh, fw = _fast_len(h + k), _fast_len(w + k)
    spec = torch.fft.rfft2(image, s=(fh, fw)) * torch.fft.rfft2(kernel, s=(fh, fw))
    full = torch.fft.irfft2(spec, s=(fh, fw))
    o = k // 2
    return full[:, o:o + h, o:o + w].clamp_(min=0)


def _tone(x: np.ndarray, gamma: float, contrast: float) -> np.ndarray:
    """Linear [0, 1] -> display [0, 1]: a power law blended with a smoothstep S-curve."""
    y = x ** (1 / gamma)
    return (1 - contrast) * y + contrast * y * y * (3 - 2 * y)


def _ghosts(h: int, w: int, lamps: list[tuple[float, float, float, np.ndarray]], sides: int,
            rng: np.random.Generator, cfg: OpticsConfig) -> np.ndarray:
    """(H, W, 3) linear reflective flare: aperture-shaped ghosts on each source's line through the centre."""
    layer = np.zeros((h, w, 3), np.float32)
    cx, cy = w / 2, h / 2
    angle = rng.uniform(0, math.pi)
    diag = math.hypot(h, w)
    for sx, sy, energy, _tint in lamps:
        for _ in range(int(rng.integers(cfg.ghosts[0], cfg.ghosts[1] + 1))):
            t = rng.uniform(-1.4, 0.8)  # 1 is the source, 0 the centre, negative beyond it
            gx, gy = cx + t * (sx - cx), cy + t * (sy - cy)
            radius = rng.uniform(0.006, 0.08) * diag
            soft = 0.7 if rng.random() < 0.4 else rng.uniform(0.05, 0.5) * radius  # some are sharp
            x0, x1 = int(np.clip(gx - radius - soft - 2, 0, w)), int(np.clip(gx + radius + soft + 3, 0, w))
            y0, y1 = int(np.clip(gy - radius - soft - 2, 0, h)), int(np.clip(gy + radius + soft + 3, 0, h))
            if x1 <= x0 or y1 <= y0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            shape = np.clip(_polygon(xx - gx, yy - gy, radius, sides, angle) / soft + 0.5, 0, 1)
            if rng.random() < 0.25:  # a ring: the ghost of an out-of-focus annulus
                shape *= 1 - np.clip(_polygon(xx - gx, yy - gy, radius * rng.uniform(0.5, 0.9), sides, angle)
                                     / soft + 0.5, 0, 1)
            area = max(math.pi * radius**2, 1.0)  # the whole ghost, even where the frame cuts it
            brightness = energy * 10 ** rng.uniform(*cfg.ghost_log10_energy) / area
            brightness = min(brightness, 0.6)
            tint = GHOST_TINTS[rng.integers(len(GHOST_TINTS))] * rng.uniform(0.8, 1.2, 3)
            layer[y0:y1, x0:x1] += (brightness * shape)[..., None] * (tint / tint.max())
    return layer


def synthesize_optics_pair(scene: np.ndarray, rng: np.random.Generator, bank: PSFBank,
                           cfg: OpticsConfig | None = None, *, return_layers: bool = False):
    """(H, W, 3) uint8 clean photo -> (input with flare, target without) uint8 (H, W, 3).

    With ``return_layers`` also a dict of noise-free (H, W) uint8 masks in display units:
    ``flare`` (max over channels of |input - target| before noise and JPEG), ``scatter`` and
    ``ghost`` (each component alone), for region metrics.
    """
    cfg = cfg or OpticsConfig()
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 photo, got {scene.shape} {scene.dtype}")
    h, w = scene.shape[:2]
    size = math.hypot(h, w) / math.hypot(512, 384)  # lamp sizes are drawn for a ~512 px frame
    linear = (scene.astype(np.float32) / 255.0) ** 2.2 * rng.uniform(*cfg.exposure)

    lamps_img = np.zeros((h, w, 3), np.float32)
    lamps: list[tuple[float, float, float, np.ndarray]] = []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(cfg.lamps[0], cfg.lamps[1] + 1))):
        sx, sy = rng.uniform(0.03 * w, 0.97 * w), rng.uniform(0.03 * h, 0.85 * h)
        r = rng.uniform(*cfg.lamp_radius) * size
        tint = LAMP_TINTS[rng.integers(len(LAMP_TINTS))] * rng.uniform(0.9, 1.1, 3)
        tint = tint / tint.max()
        level = 10 ** rng.uniform(*cfg.lamp_log10)
        disc = np.clip(r - np.hypot(xx - sx, yy - sy) + 0.5, 0, 1)
        lamps_img += (disc * level)[..., None] * tint
        lamps.append((sx, sy, float(disc.sum() * level), tint))

    # scattering: every lamp convolved with one PSF of this lens (one lens per photo)
    index = int(rng.integers(len(bank)))
    scale = rng.uniform(*cfg.psf_scale)
    reach = min(2 * max(h, w), int(bank.psfs.shape[-1] * scale)) | 1  # the PSF fades to 0 at its border
    psf = _warp_psf(bank.psfs[index], reach, scale, rng.uniform(0, 2 * math.pi),
                    bool(rng.random() < 0.5))
    lamps_t = torch.from_numpy(lamps_img).permute(2, 0, 1).contiguous()
    scattered = _fft_convolve(lamps_t, psf).permute(1, 2, 0).numpy()
    # the lamp's own light lands in the PSF's core; what falls outside the lamp is flare
    scatter = np.clip(scattered - lamps_img, 0, None)
    ghost = _ghosts(h, w, lamps, bank.meta[index]["sides"], rng, cfg)

    gamma, contrast = rng.uniform(1.8, 2.6), rng.uniform(0.0, 0.5)
    noise = rng.normal(0, rng.uniform(*cfg.noise), linear.shape).astype(np.float32) \
        * np.sqrt(np.clip(linear, 1e-4, 1) * 4 + 0.05)  # more noise on brighter pixels (shot noise)

    def render(flare: np.ndarray, noisy: bool = True) -> np.ndarray:
        lin = np.clip(linear + lamps_img + flare + (noise if noisy else 0), 0, 1)  # the sensor clips
        return np.round(_tone(lin, gamma, contrast) * 255).astype(np.uint8)

    inp, target = render(scatter + ghost), render(np.zeros_like(scatter))
    if rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(75, 96))
        inp, target = jpeg_roundtrip(inp, quality), jpeg_roundtrip(target, quality)
    if not return_layers:
        return inp, target
    clean = render(np.zeros_like(scatter), noisy=False).astype(np.int16)

    def diff(flare: np.ndarray) -> np.ndarray:
        return np.abs(render(flare, noisy=False).astype(np.int16) - clean).max(2).astype(np.uint8)

    return inp, target, {"flare": diff(scatter + ghost), "scatter": diff(scatter), "ghost": diff(ghost)}


def check_scene(scene: np.ndarray) -> None:
    """Refuse anything but the (H, W, 3) uint8 photo a generator draws flare on."""
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 photo, got {scene.shape} {scene.dtype}")


def draw_lamp(xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator, radius: tuple[float, float],
              log10: tuple[float, float], size: float):
    """One lamp of the streak and shimmer generators, drawn on the pixel grid ``xx``, ``yy``: its
    centre (anywhere but the frame's edges and bottom), tint (LAMP_TINTS, peak 1), radius
    (``radius`` px at a ~512 px frame, times ``size``) and radiance (10 ** ``log10`` x the sensor's
    white). Returns (sx, sy, tint, r, dx, dy, d, light): the centre, tint and radius, each pixel's
    offset and distance from the centre, and the lamp's (H, W, 3) linear light."""
    h, w = xx.shape
    sx, sy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.85 * h)
    tint = LAMP_TINTS[rng.integers(len(LAMP_TINTS))]
    tint = tint / tint.max()
    r = rng.uniform(*radius) * size
    dx, dy = xx - sx, yy - sy
    d = np.hypot(dx, dy)
    light = (np.clip(r - d + 0.5, 0, 1) * 10 ** rng.uniform(*log10))[..., None] * tint
    return sx, sy, tint, r, dx, dy, d, light


def finish_pair(render, flare: np.ndarray, rng: np.random.Generator, jpeg_prob: float, return_layers: bool):
    """A generator's pair from its ``render(light, noisy=True)`` (linear-light flare -> uint8 frame):
    input = render(flare), target = render(no flare), both through the same JPEG at ``jpeg_prob``;
    with ``return_layers`` also ``{"flare": (H, W) uint8}``, the noise-free max-over-channels
    |input - target| that ``lightsr.evaluate.evaluate_flare`` reads its regions from."""
    none = np.zeros_like(flare)
    inp, target = render(flare), render(none)
    if rng.random() < jpeg_prob:
        quality = int(rng.integers(70, 96))
        inp, target = jpeg_roundtrip(inp, quality), jpeg_roundtrip(target, quality)
    if not return_layers:
        return inp, target
    layer = np.abs(render(flare, noisy=False).astype(np.int16) - render(none, noisy=False)).max(2).astype(np.uint8)
    return inp, target, {"flare": layer}


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Compute (or recompute) the PSF bank and cache it.")
    parser.add_argument("--force", action="store_true", help="recompute even if cached")
    args = parser.parse_args()
    t0 = time.time()
    bank = psf_bank(OpticsConfig(), refresh=args.force,
                    progress=lambda i, n: print(f"\rPSF {i}/{n}", end="", flush=True))
    print(f"\n{len(bank)} PSFs in {cache_dir()} ({time.time() - t0:.0f} s)")
