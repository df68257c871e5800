"""lightsr.glow: the bloom round a round lamp, the same in every direction, is taken out of a textured
photo; a horizon through a lamp, the soft light round a clipped region that is no disc and a frame
without a lamp are left alone; remove_flare applies it unless told not to."""

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from lightsr.flare import clipped_mask, remove_flare, white_mask
from lightsr.glow import SHARE, remove_glow
from lightsr.models._common import GAMMA

H, W = 384, 512  # scale 1: the work size remove_flare reads glow at
LAMP = (150.0, 220.0)
RADIUS = 5.0


def _photo(index: int = 1, gain: float = 0.6) -> np.ndarray:
    """The ``index``-th training photo at (H, W), its light times ``gain``, in linear light: (H, W, 3) float32."""
    path = sorted((DATA / "sr-train").glob("*.jpg"))[index]
    img = np.asarray(Image.open(path).convert("RGB").resize((W, H), Image.BICUBIC), np.float32) / 255
    return img ** GAMMA * gain


def _distance() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.hypot(yy - LAMP[0], xx - LAMP[1])


def _bloom(level: float = 0.12, sigma: float = 14.0, tint=(1.0, 0.9, 0.75)) -> np.ndarray:
    """A lamp's Gaussian bloom: (H, W, 3) linear light."""
    return level * np.exp(-0.5 * (_distance() / sigma) ** 2)[..., None] * np.asarray(tint, np.float32)


def _uint8(linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) linear light as uint8 display values."""
    return np.round(np.clip(linear, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)


def _linear(img: np.ndarray) -> np.ndarray:
    """uint8 display values as (H, W, 3) float32 linear light."""
    return (img.astype(np.float32) / 255) ** GAMMA


def _display(linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with a white lamp of RADIUS px at LAMP."""
    out = _uint8(linear)
    out[_distance() <= RADIUS] = 255
    return out


def _run(img: np.ndarray) -> tuple[np.ndarray, int]:
    """remove_glow on a uint8 image, as remove_flare calls it: the result in linear light, lamps taken from."""
    out, n = remove_glow(img.astype(np.float32) / 255, white_mask(img), clipped_mask(img), scale=1.0)
    return np.clip(out, 0, 1) ** GAMMA, n


@pytest.mark.parametrize("sigma", [8.0, 14.0])
def test_the_bloom_round_a_lamp_is_taken_out(sigma):
    """A night photo's texture is faint beside a lamp's bloom: most of the bloom is read and taken out (a
    bright, busy daylight scene's texture hides more of it: the bands' falls are read conservatively)."""
    scene = _photo(gain=0.15)
    bloomed = _display(scene + _bloom(sigma=sigma))
    out, n = _run(bloomed)
    assert n == 1
    ring = (_distance() > RADIUS + 3) & (_distance() < 3 * sigma)
    before = np.abs(_linear(bloomed) - scene)[ring].mean()
    after = np.abs(out - scene)[ring].mean()
    assert after < 0.5 * before  # more than half the bloom's light is gone
    far = _distance() > 10 * RADIUS + 1  # beyond its reach nothing changes
    assert np.allclose(out[far], _linear(bloomed)[far], atol=1e-6)


def test_the_bloom_beyond_a_clipped_glare_disc_is_read():
    """A lamp so bright that its orange glare clips in red (not in blue) well beyond its white core: the bands
    nearest the core are mostly clipped, and the bloom is read from the first band clear of them."""
    scene = _photo(gain=0.15)
    tint = (1.0, 0.6, 0.3)
    glare = _bloom(level=6.0, sigma=5.0, tint=tint)  # red clips out to ~10 px, blue to ~6 px
    bloomed = _display(scene + glare + _bloom(sigma=14.0, tint=tint))
    assert clipped_mask(bloomed).sum() > 2 * white_mask(bloomed).sum()  # a clipped disc far wider than the core
    out, n = _run(bloomed)
    assert n == 1
    ring = (_distance() > 12) & (_distance() < 40)  # beyond the clipped disc, the glare's tail and the bloom
    assert np.abs(out - scene)[ring].mean() < 0.5 * np.abs(_linear(bloomed) - scene)[ring].mean()


def test_no_pixel_loses_more_than_its_share():
    """Over a black scene the bloom is all there is: it is dimmed to 1 - SHARE, not blackened."""
    bloomed = _display(_bloom(level=0.2))
    out, n = _run(bloomed)
    seen = (_distance() > RADIUS + 3) & (_distance() < 20)
    lin = _linear(bloomed)
    assert n == 1 and np.all(out[seen] >= (1 - SHARE) * lin[seen] - 1e-6)
    assert out[seen].mean() < 0.5 * lin[seen].mean()


def test_what_is_no_glow_is_left_alone():
    """A lamp on a horizon (a bright sky above it, the dark photo below); the soft light round a clipped bar
    (no disc: a blown window, a waterfall); the photo with no lamp."""
    scene = _photo()
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sky = np.where((yy < LAMP[0])[..., None], np.float32([0.35, 0.45, 0.6]) * (1 - 0.3 * yy / H)[..., None], scene)
    bar = np.clip(1 - np.hypot(np.maximum(np.abs(xx - LAMP[1]) - 30, 0), np.maximum(np.abs(yy - LAMP[0]) - 3, 0))
                  / 12, 0, 1)
    barred = _uint8(scene + 0.3 * bar[..., None] ** 2)
    barred[(np.abs(xx - LAMP[1]) <= 30) & (np.abs(yy - LAMP[0]) <= 3)] = 255
    no_lamp = _uint8(scene + _bloom())
    horizon = _display(sky)
    out, n = _run(horizon)
    lin = _linear(horizon)
    assert np.abs(out - lin).max() < 0.01  # at most a trace
    for img in (barred, no_lamp):
        out, n = _run(img)
        assert n == 0 and np.allclose(out, _linear(img), atol=1e-6)


def test_a_lamp_in_a_blown_window_is_left_alone():
    """A lamp amid a window's clipped panes (a third of the pixels round it, from 3 px beyond its rim), the light
    between them falling away from it: the light round it is the window's, not glow."""
    scene = _photo()
    yy, xx = np.mgrid[0:H, 0:W]
    d = _distance()
    near = d < 80
    panes = near & (d > RADIUS + 3) & ((yy // 4) % 2 == 0) & ((xx // 4) % 3 != 1)
    window = _uint8(scene + 0.5 * np.exp(-d / 30)[..., None] * near[..., None])
    window[panes] = 255
    window[d <= RADIUS] = 255
    assert 0.25 < panes[near].mean() < 0.4
    out, _ = _run(window)
    assert np.allclose(out, _linear(window), atol=1e-6)


def test_remove_flare_takes_the_bloom_out_unless_told_not_to(no_flare_model):
    """With a model that finds no flare, the lowres method takes the bloom out (rays=True, the default) or
    changes nothing (rays=False)."""
    scene = _photo(gain=0.3)
    bloomed = _display(scene + _bloom(level=0.2))
    model = no_flare_model
    assert np.array_equal(remove_flare(model, bloomed, rays=False), bloomed)
    out = remove_flare(model, bloomed)
    ring = (_distance() > RADIUS + 3) & (_distance() < 30)
    target = np.round(np.clip(scene, 0, 1) ** (1 / GAMMA) * 255)
    assert np.abs(out[ring] - target[ring]).mean() < 0.6 * np.abs(bloomed[ring] - target[ring]).mean()
