"""Lens-flare removal on whole photos: whole-frame flare estimation, lamps kept, the rest untouched.

Two ways to handle a photo of any size on 2 cores in bounded memory:

- ``method="lowres"`` (the default): the Flare7K ``test_large`` idea, and the resolution
  the flare models are trained at. The model sees the whole photo at ``work_size`` px on
  its long side, where a streak or a ghost is seen whole; the flare it removed there
  (input minus output in linear light, where flare is additive, never negative) is
  upsampled to full size and subtracted from the full-resolution input. Flare is
  low-frequency, so the photo keeps its own full-resolution detail, and where the model
  finds no flare the photo is returned exactly as it came (no colour or tone shift).
- ``method="tiled"``: ``lightsr.enhance`` over the full-resolution image. A model then
  sees flare at a scale it was not trained at; kept for comparison.

No light source, no flare: lens flare is light from a source bright enough to clip the sensor,
so a photo with no white-clipped pixel (all three channels at ``SATURATED`` or above; fewer
than ``SOURCE_PX`` of them at full resolution) comes back exactly as it came, whatever the
model would make of it. Both shipped models, trained on synthetic flare, read some bright,
low-contrast daylight photos as veiling glare and shift their whole tone (a sunlit plank
turned brown, a backlit leaf black); none of the synthetic validation frames lacks a source.

Light sources are kept, and told from their glare (``lamp_mask``). The glare disc around a
lamp, saturated in the input and many times the lamp's size, is flare the model removes, so
it is not blended back. A saturated input pixel is a lamp where the model leaves it bright;
in a disc the model dims, the bright blob it leaves is the lamp with a ring of glare round it,
and the blob's rim is glare too.
A clipped region where the model leaves no pixel bright has lost its lamp with its glare,
if the model still leaves a peak in it (else it is a clipped ghost or speckle, dimmed whole);
there the lamp is the region's core where the model leaves it among the region's brightest:
a lamp sits at the deepest point of its own glare disc, and a model that dims it with the
glare still leaves it brighter than the glare. Lamp pixels are blended back from the input
through a slightly grown, feathered mask (Flare7K's light-source mask; not grown in a glare
disc, where round the lamp is glare), so a street lamp is never dimmed.

Under the glare disc (saturated in the input, not a lamp) nothing of the scene survives, so
no model can know what lies there: a model trained with L1 predicts its average, a grey
blob with a dark, coloured rim. The lowres method fills that region, grown by a few pixels,
from its surroundings instead (pull-push interpolation, Gortler et al. 1996), which
measured +0.3 dB on the optics validation set and reads as a soft continuation of the scene.

Veiling glare, a lamp's light spread thin over the whole frame, the models take off only in
part. The lowres method reads what is left from the frame's darkest pixels (the dark channel,
He et al. 2009: in a photo with shadows some pixel is black in some channel, and a veil lifts
them all), in bands of distance from the lamps, since the veil is stronger nearer them, and takes
that off too, tinted like the flare the model removed and only where it removed some; a night
photo, whose shadows stay black, loses (nearly) nothing more.

Thin straight streaks through a lamp (a wiped windscreen's), a starburst's spikes and ghosts (discs
and rings of reflected light on a lamp's line through the frame's centre) the models leave; the lowres method
then finds them by their geometry and takes them out (``lightsr.rays``, ``lightsr.ghosts``), and the bloom
they leave round a disc-shaped lamp, the same light in every direction from it, which the scene round a lamp is not
(``lightsr.glow``; on by default: ``rays=False`` turns them all off).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, ImageOps
from scipy import ndimage

from .errors import LightSRError
from .models.base import LightSRModel
from .imaging import alpha_of, fit_long_side, to_rgb8, to_unit_range
from .backends import runner
from .inference import enhance
from .models._common import GAMMA
from .ghosts import remove_ghosts
from .glow import remove_glow
from .rays import remove_rays, remove_starbursts

__all__ = ["remove_flare", "light_source_mask", "lamp_mask", "has_light_source", "METHODS"]

METHODS = ("lowres", "tiled")
SATURATED = 0.97  # of white: a pixel at or above this (any channel) is clipped by the sensor
CLIPPED_LEVEL = int(np.ceil(SATURATED * 255))  # the same as a uint8 level (248): a channel at or above it is clipped
LAMP = 0.7  # of white: where the model's output stays at least this bright, a saturated pixel is a lamp
# (measured on the validation frames with the shipped Pix2Pix: 0.7 keeps 68% of lamp pixels and 3% of glare
# pixels; 0.9 kept 36% and 0%: the models dim lamp cores, which the blend-back exists to undo)


_TO_LINEAR = (np.arange(256, dtype=np.float32) / 255.0) ** GAMMA  # uint8 -> linear light, as a table
# remove_flare's lowres estimate averages the model over the frame and its mirror images (left-right, upside down,
# both). On two screening draws (seed 7, 16 frames, and seed 11, 32 frames per set; shipped Pix2Pix) 4 flips against
# 1 gained +0.06 to +0.32 dB on every set (optics, hand-drawn, streaks and the held-out shimmer), background PSNR up
# 0.2 to 2.4 dB; at 512 px the model's passes are a small part of a 12 MP photo's time
FLIPS = 4
# work_size: the lowres passes see the frame at 512 px, the size the models train at. Screened on frames at the
# held-out photos' own 1024 px (seed 7, 12 per set, default ensemble; gain / background PSNR; flare-free: the 42
# photos at 1024 px, mean / worst PSNR to the input). 512 (as shipped): optics +7.62 / 41.84, hand-drawn +5.67,
# streaks +3.75 / 53.55, shimmer +2.25 / 48.95, flare-free 71.26 / 21.32. 768: +8.55 / 43.26, +5.19, +4.03 / 47.57,
# +2.46 / 45.85; 1024: +8.72 / 39.83, +4.30, +4.10 / 44.05, +2.62 / 40.15. The flare layers found at 512 and at 768 px
# averaged (a scale ensemble): +8.19 / 43.39, +5.46, +3.84 / 48.57, +2.47 / 47.59, flare-free 69.20 / 18.33; at 512
# and 1024: +8.28, +5.41, +4.00, +2.73 / 45.06, 68.00 / 17.36; the 768 px layer taken only where the 512 px one saw
# flare (>= 0.002): flare-free 69.98 / 18.36. A larger view finds more of a flare that is small against the frame
# (the optics generator's PSF is drawn in pixels), and more "flare" in sunlit photos that have none (one Debian photo
# 56 -> 20 dB): 512 stays
# ENSEMBLE: the shipped Pix2Pix with NF-ResUNet (``ensemble=``), their passes averaged like the flips. On the screening
# draw (seed 7, 16 frames per set; gain / background PSNR; flare-free photos: mean / worst PSNR to the input) Pix2Pix
# alone: optics +9.01 / 37.79, hand-drawn +5.40, streaks +2.96 / 38.40, held-out shimmer +1.83 / 44.14, flare-free
# 73.07 / 16.82; NF-ResUNet alone: +6.71 / 41.20, +2.77, +2.08 / 48.69, +1.08 / 46.71, 78.34 / 24.66; the mean of the
# two: +8.06 / 39.90, +4.52, +2.66 / 43.39, +1.61 / 47.35, 75.32 / 22.37: the two models' mistakes (Pix2Pix reading
# sunlit daylight as veiling glare) are rarely the same, so averaging halves them at a smaller cost in gain. Tried
# too: the geometric mean of the two flare layers (+7.56, +3.51, +2.13, +1.24, 78.78 / 27.26: better than NF-ResUNet
# alone on every count) and their minimum (+6.70, +2.61, +1.92, +0.90, 81.26 / 30.61). bench_flare's own 48-frame draw
# confirmed the mean (BENCHMARKS.md): +7.48 / +4.86 / +2.71 / +1.64 (Pix2Pix +8.13 / +5.76 / +2.78 / +1.63), every
# worst frame >= -0.09 dB, 2.4 s per 12 MP photo; zoo.ENSEMBLES makes it the app's and the CLI's default
FILL_GROW = 6  # px at a 512 px work size: the glare disc's rim, where the model's guess is also unreliable
# (measured on 12 optics validation frames with the lamp-trained Pix2Pix: grow 0 / 3 / 6 px gave +6.99 / +7.09 /
# +7.12 dB against +6.82 without the fill; the hand-drawn set, whose glare rarely clips, was unchanged). The rim
# grows from the clipped pixels the model dims only: grown from every clipped pixel, it also filled the edge of
# daylit sky that the model kept: 20 flare-free photos at 512 px (the 8 held out, 12 training scenes) came back
# at a mean 31.2 / 39.1 dB PSNR against the input (Pix2Pix / NF-ResUNet), 35.1 / 46.9 grown from the dimmed ones,
# which cost at most 0.08 dB of gain on the screening sets (bench_flare.py --screen --seed 7 --count 16)
SOURCE_PX = 9  # white-clipped pixels (at full resolution) that make a light source: a 3x3 lamp core
# (measured, seed-7 screening draw, 16 frames per set: every synthetic flare frame has at least 50 at 512 px, so the
# gate changed no score there; of 42 flare-free photos at 512 px, the 8 held out and data/debian-photos, 24 have fewer
# and now come back exact: mean / worst PSNR to the input rose from 43.3 / 11.4 to 72.9 / 16.7 dB for Pix2Pix and
# from 38.3 / 10.6 to 72.5 / 12.6 dB for NF-ResUNet, an exact photo counted as 99)
CORE = 0.3  # of a clipped region's depth (its largest distance to an unclipped pixel): the core a lost lamp may fill
CORE_PX = (2.0, 9.0)  # px at a 512 px work size: the core is at least the deepest 2 px, at most 9 px deep (the
# optics generator's largest lamp radius; a street lamp in a 512 px frame is smaller)
CORE_LEVEL = 0.3  # of the way from the model's median in the region to its maximum: the core's bright part is a lamp
# (measured with bench_flare.py's --screen draw of seed 7, 16 optics frames whose lamps are 1.5 to 9 px in radius
# inside clipped glare discs up to 70 px deep; gain / background PSNR / worst gain / lamp pixels kept. Shipped
# Pix2Pix, by the model's brightness alone: +8.71 / 37.55 / +2.83 / 71%; with lost lamps found (this rule):
# +8.67 / 37.55 / +4.78 / 72%, the worst frame being one whose lamp the model had dimmed away. The core taken in
# every clipped region, not only where the lamp was lost, kept 80% of lamp pixels but cost 0.4 dB (0.5 dB over
# bench_flare's 48 optics frames): where the model keeps a lamp, its own outline of it is the better one. Over those
# 48 frames this rule cost Pix2Pix 0.25 dB (+8.21 to +7.96, lamps 83% to 84%, BG 40.10 to 40.78), mostly from
# clipped ghosts without a lamp that the model dims entirely and whose bright core was kept; PEAK now tells those
# apart and gives back 0.14 dB of it: +8.10, lamps and BG unchanged)
PEAK = 0.1  # of white: a clipped region the model dims whole is a lost lamp only where it leaves a peak this much
# brighter than the region's median (measured, shipped Pix2Pix, bench_flare --screen draws of seeds 7 and 11, 16 frames
# per set: of 164 such regions in the optics frames, the 2 that held a lamp in the target peaked 0.14 and 0.26 above
# their median, the 162 without one (clipped ghosts and speckles, 2,331 px) 0.12 at most and 3 of them over 0.1;
# the hand-drawn and streak frames had no lamp in any. Optics gain +8.67 / +6.72 dB before, +8.82 / +6.83 with this
# gate, background PSNR, worst frame and lamps kept unchanged. Over bench_flare's 48 optics frames: +7.96 to +8.10
# dB (NF-ResUNet +6.33 to +6.40), lamps unchanged; the worst of its 42 flare-free photos went from 17.16 to 16.89 dB
# for Pix2Pix: clipped daylight the model dims without a peak is now filled as glare rather than kept)
GLARE_DISC = 0.6  # of white: a clipped region whose median the model leaves below this is a glare disc it dims
LAMP_RIM = 0.3  # of its depth: in such a disc, the outer part of the blob the model leaves bright is glare, not lamp
# (the model dims the disc towards the scene but leaves a ring of it bright round the lamp. On the seed-7 screening
# draw, default ensemble, the optics frames' kept blobs held 2 to 10 times the lamp's pixels: kept glare pixels,
# at 255 where the scene is 30 to 100, were 61% of the squared error in the clipped region, and keeping none of them
# would have gained +2.1 dB. Each of the blob's parts keeps the pixels at least LAMP_RIM of its own greatest depth from
# its edge. Gain / background PSNR / lamp pixels kept, optics: as shipped +8.20 / 39.79 / 89%; rim 0.3 +9.15 / 38.70
# / 80%; 0.5 +9.82 / 37.69 / 63% (losing lamp pixels, and the lamp's anti-aliased edge, 240 to 254 in the target,
# counts as background). A stricter LAMP in such discs measured worse: 0.8 +8.73 / 38.67 / 83%, 0.85 +9.02 / 37.30 /
# 72%, 0.9 +9.38 / 36.65 / 64%: the model's brightness does not tell the lamp from the ring (at 0.9 it kept 57% of
# the lamp pixels and 3,884 glare pixels, at 0.7 88% and 13,053), where the blob's shape does. The hand-drawn, streak,
# and shimmer frames and the 42 flare-free photos came back unchanged: their clipped regions the model keeps bright.
# A lamp in such a disc is blended back without the 2 px grow (``_keep_lamps``): round it is glare, not its edge;
# optics +9.15 -> +9.62 / 38.70 -> 37.59 / 80%, the rest unchanged; the background PSNR that fell is the lamp's soft
# edge, which evaluate_flare has left out since (LAMP_MARGIN): measured so, 43.66 both, and rim 0.4 / 0.5 +9.92 / 73%,
# +10.09 / 63% (lamp pixels lost for glare pixels), a disc of the blob's inscribed radius +9.72 / 75%: 0.3 stays.
# The grow stays for lamps the model keeps whole and for daylit sky, whose edge it guards: without it anywhere the
# flare-free photos' worst went from 22.37 to 21.09 dB)
LAMP_GROW = 2  # px: a lamp's blend-back mask is grown by this over its clipped pixels (not in a glare disc)
FLARE_FLOOR = 1e-5  # linear light: a smaller estimated flare is rounding noise, and the pixel is left as it is
VEIL_FROM = 0.002  # linear light: where the model removed this much flare or more, it saw the veil too
VEIL_SEEN = (0.4, 0.8)  # share of the frame's unclipped pixels where the model saw flare (VEIL_FROM): from none of
# the veil at the first to all of it at the second (linear between). A veil spreads over the whole frame; a daylight
# scene's own haze (aerial perspective) lifts its darkest pixels the same way, and where the models saw a little
# flare round a bright patch over under half the frame, that haze was taken off as veil: a tone shift of photos
# without flare (of the 42 flare-free photos, aitzgorri 45.5 dB to the input without the veil step, 33.0 with it;
# bridge 39.7 / 32.8; fallenleaf 40.6 / 37.3; the models saw flare over 40 to 47% of each). Screen (seeds 7 / 11,
# 16 frames per set, default ensemble, PSNR), any flare seen over 2% of the frame -> this ramp: optics 24.33 / 24.66
# unchanged, drawn 24.86 / 24.88 -> 24.85 / 24.88, streaks 25.26 / 24.38 -> 25.15 / 24.32, shimmer 25.24 / 24.46 ->
# 25.19 / 24.42; flare-free mean 74.64 -> 75.04 dB (aitzgorri 39.7, bridge 38.9, fallenleaf 40.6), worst 22.37
# unchanged. A hard gate at half the frame: streaks 25.22 / 24.32, shimmer 25.18 / 24.44, flare-free 74.90
VEIL_PERCENTILE = 0.5  # of the darkest channel over the frame (lamps aside): what is still there is veil, not scene
VEIL_TINT_FLOOR = 0.25  # the veil's weakest channel over its strongest is read as at least this
VEIL_CAP = 0.03  # linear light: the most veil taken off in any channel (8 levels at mid-grey)
VEIL_BAND_PERCENTILE = 2.0  # of the darkest channel in a band round the lamps: the veil there, at most
VEIL_BAND_FIRST = 8.0  # px (of a 512 px frame) from the lamps: the first band's outer edge
VEIL_BAND_GROW = 1.3  # each band's outer edge over its inner
VEIL_BAND_PIXELS = 200  # a band with fewer unclipped pixels reads nothing (the bands round it set its level)
VEIL_FALL = 2.0  # the veil falls at most this much from a band to the next one out (a lit wall next to a lamp is
# no veil when the dark pixels further out say the veil is small)
VEIL_NEAR_SHARE = 1.0  # and a band's veil exceeds the frame's floor by at most this share of how much more flare the
# model removed there than in the band where it removed least (a model that saw the same flare everywhere left a flat
# veil, whatever a lit scene's darkest pixels near a lamp say)
# (veiling glare, ISO 9358: a lens spreads a little of a lamp's light over the whole frame. The models leave some of
# a flat veil: on the seed-7 screening draw, default ensemble, the darkest 0.5% of the output in linear light sat
# 0.004 (hand-drawn) and 0.005 (streaks) above the target's, with 12 and 14 levels of mean haze bias. What the dark
# channel still holds (He et al., CVPR 2009) is taken off where the model saw flare, tinted like the flare it
# removed. Gain / background PSNR, optics, drawn, streaks, shimmer; the 42 flare-free photos' mean / worst PSNR to
# the input: without +9.62 / 43.66, +4.73 / 50.51, +3.37 / 43.40, +1.68 / 47.41; 75.32 / 22.37. Shipped (the
# frame's darkest pixels, cap 0.03): +9.62 / 43.66, +5.20 / 50.51, +3.98 / 43.40, +1.69 / 47.40; 74.76 / 22.37.
# Cap 0.05: drawn +5.25, streaks +4.01. The darkest pixels only where the model saw flare: +5.24, +4.02, shimmer
# +1.73 / 47.31, flare-free mean 74.37; at percentile 1 / 2: +5.34 / +5.46 on drawn, streaks background 43.35 /
# 43.00. The veil over the whole frame, not only where the model saw flare: +5.17, +4.10, shimmer background 47.18.
# A grey veil (no tint): +5.10, +3.81. The veil falls away from the lamps: read per band of distance to them
# (VEIL_BAND_*), never rising outwards nor falling faster than VEIL_FALL per band, nor above the floor by more than
# VEIL_NEAR_SHARE of the flare the model removed there beyond its least, the frame's darkest pixels as its floor.
# Screen (seed 7 / 11, 16 frames per set, default ensemble), PSNR flat -> banded: drawn 24.43 -> 24.77 /
# 24.77 -> 24.83, streaks 25.22 -> 25.26 / 24.37 -> 24.38, shimmer 25.04 -> 25.09 / 24.20 -> 24.25, optics
# 24.32 -> 24.33 / 24.67 -> 24.66, every worst frame unchanged, backgrounds within 0.13 dB (seed 11 streaks 47.02
# -> 46.89), the flare-free photos 75.24 -> 75.22 / 22.37. Without VEIL_NEAR_SHARE: drawn 24.82 / 24.83, streaks
# 25.29 / 24.39, but a flat veil over a lit scene round a lamp was read as stronger there (test_flare); at 0.5:
# drawn 24.75 / 24.82. Without the VEIL_FALL bound a lamp in a bright scene (sky round it, shadows only far off) lost
# up to 1.1 dB (optics / drawn worst +1.49 / +0.69 -> +0.54 / +0.12, flare-free 75.07); the veil read as a share of
# the flare the model removed (the darkest pixels' share, 1st percentile) took the flare-free photos to 74.07 / 21.45)


def _linear(x: np.ndarray) -> np.ndarray:
    return _TO_LINEAR[x]


def _channel_max(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) maximum over channels (three slices: much faster than max(axis=2))."""
    return np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])


@torch.inference_mode()
def _subtract_flare(rgb: np.ndarray, flare: np.ndarray, rows: int = 512) -> np.ndarray:
    """(H, W, 3) uint8 photo minus an (h, w, 3) linear flare layer upsampled (bilinear) to its size.

    In torch, a band of ``rows`` at a time (a 12 MP photo takes about a second on 2 cores,
    memory bounded by the band). Only pixels the flare reaches change: where it is under
    FLARE_FLOOR the photo's own pixel is returned exactly."""
    h, w = rgb.shape[:2]
    small = torch.from_numpy(np.ascontiguousarray(flare)).permute(2, 0, 1)[None]
    lut = torch.from_numpy(_TO_LINEAR)
    src = torch.from_numpy(np.require(rgb, requirements=["C", "W"]))  # a copy only if read-only
    out = np.empty_like(rgb)
    dst = torch.from_numpy(out)
    sh, sw = flare.shape[:2]
    for y0 in range(0, h, rows):
        y1 = min(y0 + rows, h)
        # the band's rows, sampled from the small layer (half-pixel centres, as align_corners=False)
        ys = ((torch.arange(y0, y1, dtype=torch.float32) + 0.5) * sh / h - 0.5).clamp_(0, sh - 1)
        lo = ys.floor().long()
        hi = (lo + 1).clamp_(max=sh - 1)
        t = (ys - lo)[:, None, None]
        band = small[0, :, lo] * (1 - t[None, :, :, 0]) + small[0, :, hi] * t[None, :, :, 0]  # (3, r, sw)
        band = F.interpolate(band[None], size=(y1 - y0, w), mode="bilinear", align_corners=False)[0]
        band = band.permute(1, 2, 0)  # (r, w, 3)
        pix = src[y0:y1]
        clean = (lut[pix.long()] - band).clamp_(0, 1).pow_(1 / GAMMA).mul_(255).round_().to(torch.uint8)
        touched = band.amax(dim=2, keepdim=True) > FLARE_FLOOR
        dst[y0:y1] = torch.where(touched, clean, pix)
    return out


@torch.inference_mode()
def _toward(rgb: np.ndarray, out: np.ndarray, strength: float, rows: int = 512) -> np.ndarray:
    """The uint8 (H, W, 3) photo ``rgb`` moved ``strength`` (0 to 1) of the way to ``out`` (uint8, the same
    size) in linear light, ``rows`` at a time, in place of ``out`` (which it returns)."""
    lut = torch.from_numpy(_TO_LINEAR)
    src, dst = torch.from_numpy(np.require(rgb, requirements=["C", "W"])), torch.from_numpy(out)
    for y0 in range(0, rgb.shape[0], rows):
        a, b = lut[src[y0:y0 + rows].long()], lut[dst[y0:y0 + rows].long()]
        dst[y0:y0 + rows] = a.lerp_(b, strength).pow_(1 / GAMMA).mul_(255).round_().to(torch.uint8)
    return out


def clipped_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W, 3) uint8 photo with a channel clipped by the sensor (SATURATED)."""
    return _channel_max(rgb) >= CLIPPED_LEVEL


def white_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W, 3) uint8 photo clipped white (all three channels at
    SATURATED or above): the cores of lamps."""
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) >= CLIPPED_LEVEL


def has_light_source(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 photo holds a light source: at least SOURCE_PX pixels clipped
    white (``white_mask``), the core of anything bright enough to flare."""
    return int(np.count_nonzero(white_mask(rgb))) >= SOURCE_PX


def lamp_mask(rgb: np.ndarray, bright: np.ndarray, *, scale: float = 1.0,
              clipped: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: which pixels of the uint8 (H, W, 3) input ``rgb`` are lamps, given ``bright``, the
    (H, W) brightest channel of the model's output at the same size, float in [0, 1] or uint8 (read
    as / 255, region by region: a 12 MP float copy would take 48 MB); ``scale`` is the image's long
    side over 512 (the pixel sizes below are for a 512 px frame); ``clipped``, the (H, W) bool
    saturated pixels of ``rgb`` (``clipped_mask``) where the caller has them already.

    A pixel is a lamp where the model leaves it at LAMP or brighter; in a clipped region the
    model dims (its median under GLARE_DISC: a glare disc), less the outer LAMP_RIM of each
    bright blob's depth, which is the glare round the lamp. A clipped region of the
    input (saturated pixels, connected) where the model leaves no pixel that bright has lost its
    lamp, if the model still leaves a peak in it (PEAK above the region's median; else it is a
    ghost or a speckle dimmed whole): there the lamp is the region's core (within CORE of its
    depth of its deepest point, at least CORE_PX[0] and at most CORE_PX[1] px) where the model
    leaves it above CORE_LEVEL of the way from the region's median to its maximum, and always
    the deepest CORE_PX[0] px (so a region that thin is a lamp core, all of it). Every other
    saturated pixel is glare."""
    return _lamps_and_discs(rgb, bright, scale=scale, clipped=clipped)[0]


def _lamps_and_discs(rgb: np.ndarray, bright: np.ndarray, *, scale: float = 1.0,
                     clipped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``lamp_mask``, and the (H, W) bool glare discs it found: the clipped regions the model dims
    (median under GLARE_DISC) in which it keeps a lamp."""
    unit = np.float32(255) if bright.dtype == np.uint8 else np.float32(1)
    lamp = bright >= LAMP * unit
    discs = np.zeros(lamp.shape, bool)
    if clipped is None:
        clipped = clipped_mask(rgb)
    labels, _ = ndimage.label(clipped)
    least, most = CORE_PX[0] * scale, CORE_PX[1] * scale
    h, w = clipped.shape
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        own = labels[box] == i
        level = bright[box][own] / unit
        median = float(np.median(level))
        if (lamp[box] & own).any():  # the model keeps its lamp: its verdict stands, less the glare round it
            if median < GLARE_DISC:
                lamp[box] &= ~own | _without_rim(lamp[box] & own)
                discs[box] |= own
            continue
        if float(level.max()) - median < PEAK:
            continue  # the model leaves no peak in it: a ghost or speckle dimmed whole, not a lamp
        if min(own.shape) <= 2 * least + 2:
            lamp[box] |= own  # too thin to be more than a core: all of it (also a 3x3 lamp)
            continue
        # the region, with a ring of its surroundings so that its depth counts from its edge
        box = (slice(max(box[0].start - 1, 0), min(box[0].stop + 1, h)),
               slice(max(box[1].start - 1, 0), min(box[1].stop + 1, w)))
        region = labels[box] == i
        depth = ndimage.distance_transform_edt(region)
        deepest = float(depth.max())
        core = depth >= deepest - float(np.clip(CORE * deepest, least, most))
        core &= bright[box] / unit >= median + CORE_LEVEL * (float(level.max()) - median)
        lamp[box] |= region & (core | (depth >= deepest - least))
    return lamp, discs


def _without_rim(blob: np.ndarray) -> np.ndarray:
    """(h, w) bool: the parts of a (h, w) bool ``blob`` at least LAMP_RIM of each part's own greatest
    depth (distance to its edge) inside it, and never less than its 1 px deep core."""
    parts, count = ndimage.label(blob)
    depth = ndimage.distance_transform_edt(np.pad(blob, 1))[1:-1, 1:-1]
    deepest = np.asarray(ndimage.maximum(depth, parts, np.arange(1, count + 1)), np.float32)
    least = np.concatenate([[np.inf], np.maximum(1.0, LAMP_RIM * deepest)])
    return blob & (depth >= least[parts])


def _veil_level(dark: np.ndarray, removed: np.ndarray, clipped: np.ndarray, cores: np.ndarray,
                scale: float) -> np.ndarray:
    """The veil's (h, w) float32 level in the darkest channel, from ``dark`` ((h, w) linear light, the
    darkest channel of what the model left): the VEIL_PERCENTILE of the frame (``clipped`` pixels
    aside), and more nearer the lamps (``cores``, (h, w) bool): in bands of distance to them
    (VEIL_BAND_*), what the band's VEIL_BAND_PERCENTILE still holds, never rising outwards nor falling
    faster than VEIL_FALL from a band to the next, nor above the floor by more than VEIL_NEAR_SHARE of
    the excess of ``removed`` ((h, w), the darkest channel of the flare the model took) there.
    ``scale``: the long side over 512."""
    floor = float(np.percentile(dark[~clipped], VEIL_PERCENTILE))
    if not cores.any():
        return np.full(dark.shape, floor, np.float32)
    distance = ndimage.distance_transform_edt(~cores)
    edges = [0.0, VEIL_BAND_FIRST * scale]
    while edges[-1] <= distance.max():
        edges.append(edges[-1] * VEIL_BAND_GROW)
    band = np.searchsorted(edges, distance, side="right") - 1
    level = np.full(len(edges) - 1, np.inf)
    seen = np.full(len(edges) - 1, np.nan)  # the flare the model removed (its darkest channel), the band's median
    for k in range(len(level)):
        inside = (band == k) & ~clipped
        if np.count_nonzero(inside) >= VEIL_BAND_PIXELS:
            level[k] = np.percentile(dark[inside], VEIL_BAND_PERCENTILE)
            seen[k] = np.median(removed[inside])
    level = np.minimum.accumulate(level)  # the veil falls away from the lamps
    for k in range(len(level) - 2, -1, -1):  # and not faster than VEIL_FALL per band
        level[k] = min(level[k], level[k + 1] * VEIL_FALL)
    if np.isfinite(seen).any():  # nor rises above the floor where the model saw no more flare than anywhere
        level = np.minimum(level, floor + VEIL_NEAR_SHARE * np.nan_to_num(seen - np.nanmin(seen)))
    level = np.maximum(np.nan_to_num(level, posinf=floor), floor)  # no band read: the floor
    middles = 0.5 * (np.asarray(edges[:-1]) + np.asarray(edges[1:]))
    return np.interp(distance, middles, level).astype(np.float32)


def _with_veil(small: np.ndarray, flare: np.ndarray, clipped: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The (h, w, 3) linear flare layer the model removed from the uint8 (h, w, 3) ``small``, plus
    the veiling glare it left: what the darkest channel of what remains still holds (``_veil_level``,
    ``clipped`` the (h, w) bool saturated pixels, ``cores`` the white-clipped lamps), tinted like the
    flare removed, at most VEIL_CAP, where the model removed VEIL_FROM or more, feathered at
    that region's edge, and weighted by how much of the frame that is (VEIL_SEEN). A photo with
    black shadows gets (nearly) nothing."""
    removed = flare.max(axis=2)
    seen = removed >= VEIL_FROM
    share = np.count_nonzero(seen & ~clipped) / max(np.count_nonzero(~clipped), 1)
    weight = float(np.clip((share - VEIL_SEEN[0]) / (VEIL_SEEN[1] - VEIL_SEEN[0]), 0, 1))
    if weight == 0:  # a veil spreads over the whole frame: where the model saw flare over less, none is read
        return flare
    rest = np.clip(_linear(small) - flare, 0, None).min(axis=2)
    dark = _veil_level(rest, flare.min(axis=2), clipped, cores, max(small.shape[:2]) / 512)
    if not dark.any():
        return flare
    tint = flare[seen].mean(axis=0)
    tint = tint / max(float(tint.max()), 1e-8)
    # the darkest channel holds the veil's weakest: the strongest is that over its share
    veil = np.minimum(dark[..., None] * tint / max(float(tint.min()), VEIL_TINT_FLOOR), VEIL_CAP).astype(np.float32)
    feather = ndimage.gaussian_filter(seen.astype(np.float32), 4.0 * max(small.shape[:2]) / 512)
    feather *= removed > FLARE_FLOOR  # where the model removed nothing, nothing changes
    return flare + (weight * feather)[..., None] * veil


def _fill_from_surroundings(image: np.ndarray, unknown: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(H, W, 3) float image with its ``unknown`` (H, W) bool pixels replaced by a smooth
    interpolation of its ``source`` pixels (pull-push: mask-weighted averages down a pyramid,
    then back up, each level's own source pixels kept)."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    w = torch.from_numpy(source).float()[None, None]
    levels = []
    x = x * w
    while min(x.shape[-2:]) > 1:
        levels.append((x, w))
        x, w = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)
    filled = x / w.clamp(min=1e-8)
    for x, w in reversed(levels):  # each level: its own data where it has some, the coarser fill elsewhere
        up = F.interpolate(filled, size=x.shape[-2:], mode="bilinear", align_corners=False)
        own = w.clamp(max=1)
        filled = torch.where(w > 0, x / w.clamp(min=1e-8) * own + up * (1 - own), up)
    filled = filled[0].permute(1, 2, 0).numpy()
    return np.where(unknown[..., None], filled, image)


def _keep_lamps(rgb: np.ndarray, out: np.ndarray, lamp_at, clipped: np.ndarray, disc_at=None) -> np.ndarray:
    """Blend the lamps back from ``rgb`` into ``out`` (in place): saturated input pixels (``clipped``)
    for which ``lamp_at(ys, xs)`` is true, through light_source_mask, computed only around them;
    those for which ``disc_at(ys, xs)`` is true lie in a glare disc, and their mask is not grown
    (round them is glare, not the lamp's edge)."""
    ys, xs = np.nonzero(clipped)
    if len(ys):
        keep = lamp_at(ys, xs)
        ys, xs = ys[keep], xs[keep]
    if not len(ys):
        return out
    in_disc = disc_at(ys, xs) if disc_at is not None else np.zeros(len(ys), bool)
    pad = 8  # covers light_source_mask's grow (LAMP_GROW, 2) and feather (1.5 px, blurred to about 3 sigma)
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, rgb.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, rgb.shape[1])
    box_in, box_out = rgb[y0:y1, x0:x1], out[y0:y1, x0:x1]
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    for part, grow in ((~in_disc, LAMP_GROW), (in_disc, 0)):
        if part.any():
            lamp = np.zeros(m.shape, bool)
            lamp[ys[part] - y0, xs[part] - x0] = True
            m = np.maximum(m, light_source_mask(box_in, lamp, grow=grow))
    m = m[..., None]
    out[y0:y1, x0:x1] = np.round(m * box_in + (1 - m) * box_out).astype(np.uint8)
    return out


def light_source_mask(rgb: np.ndarray, lamp: np.ndarray | None = None, *, threshold: float = SATURATED,
                      grow: int = LAMP_GROW, feather: float = 1.5) -> np.ndarray:
    """(H, W) float mask in [0, 1]: 1 on light sources, grown and feathered.

    ``rgb`` is the (H, W, 3) uint8 input. ``lamp``, an (H, W) bool, says which saturated
    pixels are lamps rather than glare (``remove_flare`` passes where the model's output
    stays saturated); without it every saturated pixel counts.
    """
    saturated = _channel_max(rgb) >= threshold * 255
    if lamp is not None:
        saturated &= lamp
    mask = Image.fromarray((saturated * 255).astype(np.uint8))
    if grow:
        mask = mask.filter(ImageFilter.MaxFilter(2 * grow + 1))
    if feather:
        mask = mask.filter(ImageFilter.GaussianBlur(feather))
    # the feather fades outwards only: saturated pixels themselves are always fully kept
    return np.maximum(np.asarray(mask, dtype=np.float32) / 255.0, saturated.astype(np.float32))


def remove_flare(model: LightSRModel, image, *, method: str = "lowres", work_size: int = 512,
                 keep_sources: bool = True, progress=None, backend: str | None = None, precision: str | None = None,
                 flips: int | None = None, rays: bool = True, ensemble: Sequence[LightSRModel] = (),
                 strength: float = 1.0):
    """Remove lens flare from a photo: a PIL image (any mode, as ``to_rgb8`` reads it: 16-bit and float grey
    scaled, not clipped) or a uint8 (H, W, 3) RGB array; the same kind back, 8-bit RGB (RGBA where the image
    has an alpha channel or a transparent colour: the alpha comes back as it was).

    ``method``: ``"lowres"`` (the flare is estimated on the whole photo at ``work_size`` px
    on its long side and subtracted, upsampled, at full resolution; the default) or
    ``"tiled"`` (full-resolution inference in tiles). ``keep_sources`` blends the lamps
    (saturated pixels the model keeps saturated) back from the input. ``backend``: "auto",
    "torch" or "openvino" (``lightsr.backends.runner``; None reads ``$LIGHTSR_BACKEND``,
    default "auto": per model, the fastest of PyTorch and OpenVINO fp32 here);
    ``precision``: "fp32" or "bf16" on OpenVINO (None: fp32; bf16 is faster on a CPU with AMX, and
    cost Pix2Pix 0.1 dB on the hand-drawn set: the lamp and fill decisions flip).
    ``flips`` (lowres only): 1, 2 or 4 passes of the low-resolution frame, as it is, mirrored left to
    right, upside down, and both, their estimates mirrored back and averaged (a geometric
    self-ensemble; None: FLIPS for lowres, 1 for tiled). ``rays`` (lowres only): also fill the thin straight
    streaks through the light sources and the spikes of starbursts, and take out the ghosts on their
    lines through the centre and the bloom round disc-shaped lamps, which the models leave (``lightsr.rays``,
    ``lightsr.ghosts``, ``lightsr.glow``).
    ``ensemble`` (lowres only): further flare-removal models; the low-resolution estimate is then
    the mean of every model's passes, as it is of the flips (ENSEMBLE says what that measured).
    ``strength``: the share of the flare found that is taken out, in linear light, from 0 (the photo as it
    is) to 1 (all of it, the default): a lighter touch where the models take too much, as they can on sunlit
    highlights in daylight (BENCHMARKS.md measures the trade, bench_flare_strength.py); the lamps are kept at any
    strength. A photo without a light source (``has_light_source``) comes back unchanged.
    """
    models = [model, *ensemble]
    for m in models:
        if not isinstance(m, LightSRModel) or m.task != "flare-removal":
            raise LightSRError(f"flare removal needs flare-removal models, not {getattr(m, 'task', type(m).__name__)}")
    if method not in METHODS:
        raise LightSRError(f"method must be 'lowres' or 'tiled', got {method!r}")
    if ensemble and method != "lowres":
        raise LightSRError("an ensemble of flare models runs with the lowres method only")
    flips = (FLIPS if method == "lowres" else 1) if flips is None else flips
    if flips not in (1, 2, 4) or (method == "tiled" and flips != 1):
        raise LightSRError(f"flips must be 1, 2 or 4, and 1 for the tiled method, got {flips} ({method})")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise LightSRError(f"strength must be a number from 0 to 1, got {strength!r}")
    if precision == "int8":  # calibrated on daylight photo squares (lightsr.backends), not on flare
        raise LightSRError("flare removal runs at precision 'fp32' or 'bf16'; int8 is for super-resolution")
    nets = [runner(m, backend, precision=precision) for m in models]  # before the image is read: a bad name fails first
    as_pil, alpha = isinstance(image, Image.Image), None
    if as_pil:
        image = ImageOps.exif_transpose(image)
        alpha = alpha_of(image)  # kept as it is: flare is in the colour
        rgb = np.asarray(to_rgb8(image))
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        rgb = image
    else:
        raise LightSRError("remove_flare takes a PIL image or a uint8 (H, W, 3) array")
    h, w = rgb.shape[:2]
    if strength == 0 or not has_light_source(rgb):  # nothing taken out, or no source bright enough to flare
        if progress:
            progress(1, 1)
        return _as_given(rgb if as_pil else rgb.copy(), as_pil, alpha)  # (a PIL photo's rgb is a fresh array)
    if method == "lowres":
        f = min(1.0, work_size / max(h, w))
        small = rgb if f == 1.0 else fit_long_side(rgb, work_size)
        # whole-frame passes (a work_size above 1536 px goes through tiles, memory bounded), one per flip and model
        clean_small = np.zeros(small.shape, np.float32)
        whole = max(small.shape[:2]) <= 1536
        passes = [(m, n, k) for m, n in zip(models, nets) for k in range(flips)]
        for i, (m, n, k) in enumerate(passes):
            view = (slice(None, None, -1 if k & 2 else 1), slice(None, None, -1 if k & 1 else 1))
            x = np.ascontiguousarray(small[view])
            if whole:
                y = _model_float(m, n, x)
            else:  # the passes' tiles counted as one job, so a progress bar does not restart with each pass
                step = (lambda done, total, i=i: progress(i * total + done, len(passes) * total)) if progress else None
                y = enhance(m, x, progress=step, backend=backend, precision=precision).astype(np.float32) / 255.0
            clean_small += y[view]
        clean_small /= len(passes)
        clipped_small = clipped_mask(small)
        lamp_small, disc_small = _lamps_and_discs(small, _channel_max(clean_small),
                                                  scale=max(small.shape[:2]) / 512, clipped=clipped_small)
        # the clipped glare disc (and its rim): the scene is lost there, so fill it from around it. Only
        # what the model dims is glare: the rim of a clipped region it keeps (a lamp, daylit sky) is left alone
        grow = max(1, round(FILL_GROW * max(small.shape[:2]) / 512))
        unknown = clipped_small & ~lamp_small
        if unknown.any():
            grown = Image.fromarray(unknown.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * grow + 1))
            unknown = (np.asarray(grown) > 0) & ~lamp_small
            source = ~unknown & ~lamp_small  # the scene around: not the disc, nor its lamp (its white would glow)
            if source.any():  # (unknown still holds the clipped pixels it grew from)
                clean_small = _fill_from_surroundings(clean_small, unknown, source)
        cores = white_mask(small)  # the lamps: the rays' and glow's sources, and the veil's centres
        if rays:  # thin straight streaks, spikes, ghosts and bloom, which the model leaves (rays, ghosts, glow)
            scale = max(small.shape[:2]) / 512
            clean_small, on_rays, _ = remove_rays(clean_small, cores, scale=scale)
            # many spikes: a starburst (round a lamp whose glare the model dimmed, spikes may start further out)
            clean_small, on_spikes, _ = remove_starbursts(clean_small, cores, scale=scale,
                                                          before=small.astype(np.float32) / 255)
            streaks = on_rays | on_spikes  # flare, not lamp: no lamp blended back along them, no ghost barred by them
            # discs and rings on the lines through the centre
            clean_small, _, _ = remove_ghosts(clean_small, cores, scale=scale, streaks=streaks)
            clean_small, _ = remove_glow(clean_small, cores, clipped_small, scale=scale)  # lamps' bloom
            lamp_small &= ~streaks
        # the flare the model removed, in linear light; never negative: removal only takes light away
        flare = np.clip(_linear(small) - clean_small ** GAMMA, 0, None)
        flare = _with_veil(small, flare, clipped_small, cores) * np.float32(strength)
        out = _subtract_flare(rgb, flare)
        clipped = clipped_mask(rgb)  # at full resolution: the lamps are blended back among these
        lamp, discs = lamp_small, disc_small
        if progress:
            progress(1, 1)
    else:
        out = enhance(model, rgb, progress=progress, backend=backend, precision=precision)
        if strength < 1:
            out = _toward(rgb, np.require(out, requirements=["C", "W"]), strength)
        clipped = clipped_mask(rgb)  # after the model's pass, so not held through its peak
        lamp, discs = _lamps_and_discs(rgb, _channel_max(out), scale=max(h, w) / 512, clipped=clipped)

    if keep_sources:
        sh, sw = lamp.shape

        def at(mask):  # the verdict, made at (sh, sw) (low resolution or full), looked up at full-resolution pixels
            return lambda ys, xs: mask[np.minimum((ys * sh) // h, sh - 1), np.minimum((xs * sw) // w, sw - 1)]

        out = _keep_lamps(rgb, out, at(lamp), clipped, at(discs))
    return _as_given(out, as_pil, alpha)


def _as_given(rgb: np.ndarray, as_pil: bool, alpha: Image.Image | None):
    """The (H, W, 3) uint8 result as the caller gave the photo: the array, or an RGB image (RGBA with ``alpha``)."""
    if not as_pil:
        return rgb
    img = Image.fromarray(rgb)
    if alpha is not None:
        img.putalpha(alpha)
    return img


@torch.inference_mode()
def _model_float(model: LightSRModel, net, rgb: np.ndarray) -> np.ndarray:
    """The model's (H, W, 3) float32 output in [0, 1] for one small uint8 image, run by ``net``
    (the model or its compiled form), not rounded to 8 bits (rounding would leave a faint bias
    in the subtracted flare)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was = model.training
    model.eval()
    x = to_unit_range(rgb, device)
    y = net(x)[0].permute(1, 2, 0).float().cpu().numpy()
    model.train(was)
    if not np.isfinite(y).all():
        raise LightSRError("the model's output is not finite (are these weights broken?)")
    return np.clip(y, 0, 1)
