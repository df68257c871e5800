"""lightsr.ghosts: a disc or a ring of added light centred on a lamp's line through the frame's centre is
taken out; the same off that line, a lamp's own glare and a frame without a lamp are left alone;
remove_flare applies it unless told not to."""

import math

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from lightsr.flare import remove_flare, white_mask
from lightsr.ghosts import EXCESS, RING_EXCESS, _may_pass, _passes, remove_ghosts
from lightsr.models._common import GAMMA

H, W = 192, 256
LAMP = (40.0, 60.0)
CENTRE = ((H - 1) / 2, (W - 1) / 2)


@pytest.fixture
def scene() -> np.ndarray:
    return _scene(1)


def _scene(index: int) -> np.ndarray:
    """The ``index``-th training photo dimmed to night-like levels, with a white lamp of radius 4 px at LAMP:
    (H, W, 3) uint8."""
    path = sorted((DATA / "sr-train").glob("*.jpg"))[index]
    img = np.asarray(Image.open(path).convert("RGB").resize((W, H), Image.BICUBIC)).astype(np.float32)
    out = (img * 0.5).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    out[np.hypot(yy - LAMP[0], xx - LAMP[1]) <= 4] = 255
    return out


def _on_line(t: float, off: float = 0.0) -> tuple[float, float]:
    """The point ``t`` of the way from the frame's centre to the lamp (negative: beyond the centre),
    moved ``off`` px at right angles to that line."""
    dy, dx = LAMP[0] - CENTRE[0], LAMP[1] - CENTRE[1]
    n = math.hypot(dy, dx)
    return CENTRE[0] + t * dy - off * dx / n, CENTRE[1] + t * dx + off * dy / n


def _add_light(img: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``img`` with the (H, W, 3) linear-light ``layer`` added: uint8."""
    lin = (img.astype(np.float32) / 255) ** GAMMA + layer
    return np.round(np.clip(lin, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)


def _ghost(centre, radius: float = 14.0, sides: int = 6, soft: float = 1.0, level: float = 0.06,
           tint=(0.4, 1.0, 0.6)) -> np.ndarray:
    """An aperture's tinted polygon of ``level`` linear light, its edge ``soft`` px wide: (H, W, 3)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = np.arctan2(yy - centre[0], xx - centre[1])
    sector = 2 * math.pi / sides
    rim = radius * math.cos(sector / 2) / np.cos(np.mod(a, sector) - sector / 2)  # a regular polygon's edge
    shape = np.clip((rim - np.hypot(yy - centre[0], xx - centre[1])) / soft + 0.5, 0, 1)
    return level * shape[..., None] * np.asarray(tint, np.float32)


def _ring(centre, kind: str) -> np.ndarray:
    """A hollow ghost of radius 16 px: ``"thin"`` a Gaussian ring 1.5 px wide (0.08 linear light, pink),
    ``"annulus"`` a disc with its middle 11 px cut out (the ghost of an annular aperture): (H, W, 3)."""
    if kind == "annulus":
        return _ghost(centre, radius=16.0, sides=64) - _ghost(centre, radius=11.0, sides=64)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = np.hypot(yy - centre[0], xx - centre[1])
    return 0.08 * np.exp(-0.5 * ((d - 16.0) / 1.5) ** 2)[..., None] * np.float32([1.0, 0.5, 0.7])


def _run(img: np.ndarray):
    out, changed, n = remove_ghosts(img.astype(np.float32) / 255, white_mask(img), scale=W / 512)
    return np.round(out * 255).astype(np.uint8), changed, n


@pytest.mark.parametrize("t, sides, soft", [(-0.6, 6, 1.0), (-1.0, 8, 6.0), (-0.2, 0, 1.0)])
def test_a_ghost_on_the_lamps_line_is_taken_out(scene, t, sides, soft):
    centre = _on_line(t)
    ghosted = _add_light(scene, _ghost(centre, sides=sides or 64, soft=soft))
    out, changed, n = _run(ghosted)
    assert n == 1
    on = np.any(ghosted != scene, axis=2)
    before = np.abs(ghosted[on].astype(int) - scene[on]).mean()
    after = np.abs(out[on].astype(int) - scene[on]).mean()
    assert after < 0.3 * before, (before, after)  # the scene under it comes back
    yy, xx = np.mgrid[0:H, 0:W]
    assert not (changed & (np.hypot(yy - centre[0], xx - centre[1]) > 1.4 * 14 + soft)).any()  # only round it
    assert np.array_equal(out[~changed], ghosted[~changed])
    assert (out.astype(int) <= ghosted).all()  # light is only taken away


@pytest.mark.parametrize("t", [-1.0, -0.6, -0.2])
@pytest.mark.parametrize("kind", ["thin", "annulus"])
def test_a_ring_ghost_on_the_lamps_line_is_taken_out_and_off_it_left(kind, t):
    """A ring's hollow is no brighter than outside it; on this photo's texture the disc test misses it (it
    found none before the ring test), and the ring test (its band brighter than either side, its brightest
    point on the ring all round) finds it."""
    scene = _scene(0)
    centre = _on_line(t)
    ringed = _add_light(scene, _ring(centre, kind))
    out, changed, n = _run(ringed)
    assert n == 1
    on = np.any(ringed != scene, axis=2)
    before = np.abs(ringed[on].astype(int) - scene[on]).mean()
    assert np.abs(out[on].astype(int) - scene[on]).mean() < 0.5 * before  # the texture's light stays in the median
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot(yy - centre[0], xx - centre[1])
    assert not (changed & ((d > 1.6 * 16) | (d < 0.6 * 11))).any()  # the scene in its hollow is left as it is
    assert (out.astype(int) <= ringed).all()
    off_line = _add_light(scene, _ring(_on_line(t, off=30.0), kind))
    out, changed, n = _run(off_line)
    assert n == 0 and np.array_equal(out, off_line)


def test_what_is_no_ghost_is_left_alone(scene):
    """The same disc 30 px off the lamp's line; the disc with no lamp in the frame; a lamp's own
    glare (brighter towards the lamp, a ghost's test fails on that side)."""
    off_line = _add_light(scene, _ghost(_on_line(-0.6, off=30.0)))
    no_lamp = _add_light((scene * (scene < 255)).astype(np.uint8), _ghost(_on_line(-0.6)))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    glare = 0.3 / (1 + (np.hypot(yy - LAMP[0], xx - LAMP[1]) / 6) ** 2)
    glared = _add_light(scene, glare[..., None] * np.float32([1.0, 0.9, 0.7]))
    for img in (off_line, no_lamp, glared, scene):
        out, changed, n = _run(img)
        assert n == 0 and not changed.any() and np.array_equal(out, img)


def test_remove_flare_takes_the_ghost_out_unless_told_not_to(scene, no_flare_model):
    """With a model that finds no flare, the lowres method changes only the ghost (rays=True, the
    default) or nothing (rays=False)."""
    model = no_flare_model
    centre = _on_line(-0.6)
    ghosted = _add_light(scene, _ghost(centre))
    assert np.array_equal(remove_flare(model, ghosted, rays=False), ghosted)
    out = remove_flare(model, ghosted)
    on = np.any(ghosted != scene, axis=2)
    assert np.abs(out[on].astype(int) - scene[on]).mean() < 0.3 * np.abs(ghosted[on].astype(int) - scene[on]).mean()
    yy, xx = np.mgrid[0:H, 0:W]
    far = np.hypot(yy - centre[0], xx - centre[1]) > 24
    assert np.array_equal(out[far], ghosted[far])


def test_a_clipped_glare_disc_is_a_lamp_and_a_blown_sky_band_is_not(scene):
    """A lamp whose glare clips in a disc 14 px deep (too deep for lightsr.rays' light sources) has its
    ghosts looked for on its line; a clipped band of sky across the top of the frame has none."""
    yy, xx = np.mgrid[0:H, 0:W]
    glare = scene.copy()
    glare[np.hypot(yy - LAMP[0], xx - LAMP[1]) <= 14] = 255
    out, changed, n = _run(_add_light(glare, _ghost(_on_line(-0.6))))
    assert n == 1 and changed.any()
    sky = (scene * (scene < 255)).astype(np.uint8)  # no lamp
    sky[:24] = 255
    centre = (CENTRE[0] + 0.6 * (CENTRE[0] - 11.5), CENTRE[1])  # on the band's line through the centre
    ghosted = _add_light(sky, _ghost(centre))
    out, changed, n = _run(ghosted)
    assert n == 0 and np.array_equal(out, ghosted)


def test_a_ghost_crossed_by_a_clipped_streak_is_found_when_the_streak_is_known(scene):
    """A streak clipped white where it crosses a ghost bars it like a lamp would (no clipped pixel may lie
    within a ghost's outer ring) unless the streak's pixels are passed as ``streaks`` (as remove_flare
    passes those lightsr.rays found): then the ghost is taken out, the streak's pixels kept out of it."""
    centre = _on_line(-0.6)
    clean = _add_light(scene, _ghost(centre))
    ghosted = clean.copy()
    row = int(round(centre[0]))
    streak = np.zeros((H, W), bool)
    streak[row, int(centre[1]) - 40:int(centre[1]) + 40] = True
    ghosted[streak] = 255
    assert _run(ghosted)[2] == 0
    out, changed, n = remove_ghosts(ghosted.astype(np.float32) / 255, white_mask(ghosted), scale=W / 512,
                                    streaks=streak)
    assert n == 1
    out = np.round(out * 255).astype(np.uint8)
    on = np.any(clean != scene, axis=2) & ~streak
    assert np.abs(out[on].astype(int) - scene[on]).mean() < 0.3 * np.abs(ghosted[on].astype(int) - scene[on]).mean()


def test_remove_flare_takes_out_a_ghost_its_lamps_streak_crosses(scene, no_flare_model):
    """A streak through the lamp, along its line through the centre, clips white where it crosses the ghost
    on that line: remove_flare (a model that finds no flare) fills the streak and still takes the ghost out."""
    model = no_flare_model
    centre = _on_line(-0.6)
    clean = _add_light(scene, _ghost(centre))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    dy, dx = CENTRE[0] - LAMP[0], CENTRE[1] - LAMP[1]
    off = np.abs((yy - LAMP[0]) * dx - (xx - LAMP[1]) * dy) / math.hypot(dy, dx)
    streaked = _add_light(clean, (0.9 * np.clip(1.5 - off, 0, 1))[..., None] * np.ones(3, np.float32))
    crossing = (np.hypot(yy - centre[0], xx - centre[1]) < 14) & (white_mask(streaked) & ~white_mask(clean))
    assert crossing.any()  # the streak clips inside the ghost
    out = remove_flare(model, streaked)
    ghost = np.any(clean != scene, axis=2) & (off > 3)
    before = np.abs(streaked[ghost].astype(int) - scene[ghost]).mean()
    assert np.abs(out[ghost].astype(int) - scene[ghost]).mean() < 0.3 * before


def test_the_vectorised_screen_never_drops_a_candidate_that_passes():
    """find_ghosts runs the exact per-candidate test (_passes) only where _may_pass, one sort of every radius at
    once, says a candidate might pass: it must keep every one that does (else ghosts would go unfound), and skip
    most of those that do not (else it saves nothing). Random contrasts round the thresholds, directions out of
    the frame included."""
    rng = np.random.default_rng(3)
    c = rng.normal(0.02, 0.03, (4000, 48)).astype(np.float32) * rng.uniform(0.2, 4, (4000, 1)).astype(np.float32)
    valid = rng.random((4000, 48)) > rng.uniform(0, 0.3, (4000, 1))
    c[~valid] = np.nan
    for floor in (EXCESS, RING_EXCESS):
        exact = np.array([float(np.median(row[ok])) > floor and _passes(row[ok]) if ok.any() else False
                          for row, ok in zip(c, valid)])
        maybe = _may_pass(c, valid, floor)
        assert exact.any() and not (exact & ~maybe).any()
        assert (maybe & ~exact).sum() <= 0.01 * len(c)  # only rounding's margin lets more through
