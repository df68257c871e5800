"""lightsr.rays: a thin straight streak through a lamp is filled from beside it; lines elsewhere,
edges through a lamp and specks are left alone; remove_flare applies it unless asked not to."""

import math

import numpy as np
import pytest
from conftest import DATA
from PIL import Image
from scipy import ndimage

from lightsr.flare import remove_flare, white_mask
from lightsr.rays import find_rays, remove_rays, remove_starbursts

H, W = 192, 256
LAMP = (96, 128)


@pytest.fixture
def scene() -> np.ndarray:
    """A real photo, dimmed to night-like levels so that nothing in it clips: (H, W, 3) uint8."""
    path = sorted((DATA / "sr-train").glob("*.jpg"))[1]
    img = np.asarray(Image.open(path).convert("RGB").resize((W, H), Image.BICUBIC)).astype(np.float32)
    return (img * 0.6).astype(np.uint8)


def _lamp(img: np.ndarray, centre=LAMP, radius: float = 4.0) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    out = img.copy()
    out[np.hypot(yy - centre[0], xx - centre[1]) <= radius] = 255
    return out


def _line(img: np.ndarray, degrees: float, through=LAMP, half: float = 1.0, gain: float = 200) -> np.ndarray:
    """A bright straight streak of half-width ``half`` px across the whole frame."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = math.radians(degrees)
    across = np.abs((yy - through[0]) * math.cos(a) - (xx - through[1]) * math.sin(a))
    streak = gain * np.clip(half + 0.5 - across, 0, 1)
    return np.clip(img.astype(np.float32) + streak[..., None], 0, 255).astype(np.uint8)


def _run(img: np.ndarray):
    cores = white_mask(img)
    out, changed, n = remove_rays(img.astype(np.float32) / 255, cores)
    return np.round(out * 255).astype(np.uint8), changed, n


@pytest.mark.parametrize("degrees", [0.0, 30.0, 97.0])
def test_a_streak_through_a_lamp_is_filled_and_nothing_else_changes(scene, degrees):
    clean = _lamp(scene)
    streaked = _line(clean, degrees)
    out, changed, n = _run(streaked)
    assert n == 1
    band = np.any(streaked != clean, axis=2)
    before = np.abs(streaked[band].astype(int) - clean[band]).mean()
    after = np.abs(out[band].astype(int) - clean[band]).mean()
    assert after < 0.25 * before, (before, after)  # the scene beside it continues through the streak
    assert np.array_equal(out[~changed], streaked[~changed])  # only the ray's pixels are touched ...
    assert not (changed & ~_near_line(degrees, 5)).any()  # ... and they lie on it
    lamp = np.hypot(*np.mgrid[0:H, 0:W] - np.array(LAMP)[:, None, None]) <= 4
    assert np.array_equal(out[lamp], streaked[lamp])  # the lamp itself stays


def _near_line(degrees: float, px: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = math.radians(degrees)
    return np.abs((yy - LAMP[0]) * math.cos(a) - (xx - LAMP[1]) * math.sin(a)) <= px


def test_lines_not_through_a_lamp_edges_through_one_and_specks_are_left_alone(scene):
    lamp = _lamp(scene)
    # (the lines here stay under white: a saturated streak is a source of its own, see lightsr.rays)
    offset = _line(lamp, 20.0, through=(LAMP[0] + 25, LAMP[1]), gain=60)  # a bright line that misses the lamp
    edge = lamp.copy()
    edge[:LAMP[0]] = np.clip(edge[:LAMP[0]].astype(int) + 120, 0, 254)  # a step through it, not a ridge
    edge = _lamp(edge)
    speck = _line(scene, 30.0, gain=60)  # a line through no lamp, only a speck of one white pixel
    speck[LAMP] = 255
    for img in (offset, edge, speck, lamp):
        out, changed, n = _run(img)
        assert n == 0 and not changed.any() and np.array_equal(out, img)


def test_a_large_white_region_is_no_light_source(scene):
    """A blown window or sky is deeper than any lamp: a line through it is not a ray."""
    big = _line(_lamp(scene, radius=24), 30.0, gain=60)
    assert find_rays(big.max(axis=2).astype(np.float32) / 255, white_mask(big)) == []


@pytest.mark.parametrize("kind", ["streak", "starburst"])
def test_remove_flare_takes_the_ray_out_unless_told_not_to(scene, kind):
    """With a model that finds no flare, the lowres method changes only the streak or the spikes
    (rays=True, the default) or nothing (rays=False)."""
    import lightsr
    import torch

    model = lightsr.create_model("nf-resunet-flare-test").eval()
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.weight.zero_()  # predicts no flare: the output is the input
    clean = _lamp(scene)
    streaked = _line(clean, 30.0) if kind == "streak" else _spikes(clean, np.arange(7) * 360 / 7 + 10)
    assert np.array_equal(remove_flare(model, streaked, rays=False), streaked)
    out = remove_flare(model, streaked)
    band = np.any(streaked != clean, axis=2)
    assert np.abs(out[band].astype(int) - clean[band]).mean() < 0.3 * np.abs(
        streaked[band].astype(int) - clean[band]).mean()
    near = _near_line(30.0, 8) if kind == "streak" else ndimage.binary_dilation(band, iterations=4)
    assert np.array_equal(out[~near], streaked[~near])


def _spike_layers(degrees, centre=LAMP, gain: float = 120, start: float = 5.0, fade: float = 150.0):
    """Per direction in ``degrees``, a spike of half-width 1 px out of ``centre``, leaving the lamp on one
    side only (as an aperture's diffraction spikes do) and fading along its length (by e every ``fade``
    px): (H, W) float, each pixel's distance across it, and the light it adds there."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for d in degrees:
        a = math.radians(d)
        along = (yy - centre[0]) * math.sin(a) + (xx - centre[1]) * math.cos(a)
        across = np.abs((yy - centre[0]) * math.cos(a) - (xx - centre[1]) * math.sin(a))
        yield across, gain * np.clip(1.5 - across, 0, 1) * (along > start) * np.exp(-np.clip(along, 0, None) / fade)


def _spikes(img: np.ndarray, degrees, **kw) -> np.ndarray:
    """``img`` with the spikes of ``_spike_layers(degrees, **kw)`` added."""
    out = img.astype(np.float32)
    for _, spike in _spike_layers(degrees, **kw):
        out += spike[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _bursts(img: np.ndarray):
    out, changed, n = remove_starbursts(img.astype(np.float32) / 255, white_mask(img))
    return np.round(out * 255).astype(np.uint8), changed, n


def test_a_starburst_is_left_to_remove_starbursts(scene):
    """Six lines through one lamp: more than MAX_RAYS, so remove_rays fills none (their sides are each
    other); seven one-sided spikes, as an aperture draws them, are taken out by remove_starbursts."""
    burst = _lamp(scene)
    for degrees in (0.0, 30.0, 60.0, 90.0, 120.0, 150.0):
        burst = _line(burst, degrees, gain=120)
    out, changed, n = _run(burst)
    assert n == 0 and np.array_equal(out, burst)
    assert _run(_line(_line(_lamp(scene), 20.0, gain=120), 80.0, gain=120))[2] == 2  # a cross is filled
    clean = _lamp(scene)
    spiked = _spikes(clean, np.arange(7) * 360 / 7 + 10)
    out, changed, n = _bursts(spiked)
    assert n == 1
    band = np.any(spiked != clean, axis=2)
    before = np.abs(spiked[band].astype(int) - clean[band]).mean()
    after = np.abs(out[band].astype(int) - clean[band]).mean()
    assert after < 0.25 * before, (before, after)
    assert np.array_equal(out[~changed], spiked[~changed])  # only the spikes' pixels are touched
    assert not (changed & ~ndimage.binary_dilation(band, iterations=3)).any()
    lamp = np.hypot(*np.mgrid[0:H, 0:W] - np.array(LAMP)[:, None, None]) <= 4
    assert np.array_equal(out[lamp], spiked[lamp])  # the lamp itself stays


def test_what_is_no_starburst_is_left_alone(scene):
    """A lamp alone, a streak through it (two spikes: find_rays' work), bright specks and a bright
    line of the scene that does not start at the lamp, and spikes from a speck too small to be a lamp:
    nothing changes."""
    lamp = _lamp(scene)
    streak = _line(lamp, 30.0, gain=120)
    specks = lamp.copy()
    for dy, dx in ((-40, 0), (0, 50), (30, 30), (-20, -60)):
        specks[LAMP[0] + dy - 2:LAMP[0] + dy + 3, LAMP[1] + dx - 2:LAMP[1] + dx + 3] = 230  # windows round the lamp
    far = _spikes(lamp, (20.0, 140.0, 260.0), start=40.0)  # lines that begin far from the lamp
    speck = _spikes(scene, np.arange(7) * 360 / 7)
    speck[LAMP] = 255
    for img in (lamp, streak, specks, far, speck):
        out, changed, n = _bursts(img)
        assert n == 0 and not changed.any() and np.array_equal(out, img)


def test_cli_no_rays(tmp_path, scene):
    """``lightsr deflare --no-rays`` leaves the streak; without it the streak is filled."""
    import lightsr
    import torch
    from lightsr import cli

    model = lightsr.create_model("nf-resunet-flare-test").eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()  # predicts no flare
    model.save_pretrained(tmp_path / "flare")
    streaked = _line(_lamp(scene), 30.0)
    Image.fromarray(streaked).save(tmp_path / "in.png")
    for flag, same in ((["--no-rays"], True), ([], False)):
        out = tmp_path / f"out{len(flag)}.png"
        assert cli.main(["deflare", str(tmp_path / "in.png"), str(out), "--model", str(tmp_path / "flare"), *flag]) == 0
        assert np.array_equal(np.asarray(Image.open(out)), streaked) == same


def test_round_a_glaring_lamp_spikes_may_start_further_out(scene):
    """Spikes that stand out only from 20 px out (near a lamp a dozen of them crowd together, too close for
    the opening to part them) are a starburst where the model dimmed the lamp's glare (``before``, the
    input, brighter round it than the model's output), and not where it did not: a bright hub of radial
    fibres (a dandelion seed) has no glare."""
    clean = _lamp(scene)
    spiked = _spikes(clean, np.arange(7) * 360 / 7 + 10, start=20.0)
    d = np.hypot(*np.mgrid[0:H, 0:W] - np.array(LAMP)[:, None, None])
    glow = 60.0 * np.exp(-np.clip(d - 4, 0, None) / 12)[..., None]
    glaring = np.clip(spiked + glow, 0, 255).astype(np.uint8)  # the input; the model took its glow
    img = spiked.astype(np.float32) / 255
    for before, starburst in ((None, False), (img, False), (glaring.astype(np.float32) / 255, True)):
        out, changed, n = remove_starbursts(img, white_mask(spiked), before=before)
        assert n == int(starburst) and changed.any() == starburst
    out = np.round(out * 255).astype(np.uint8)
    band = np.any(spiked != clean, axis=2)
    assert np.abs(out[band].astype(int) - clean[band]).mean() < 0.25 * np.abs(
        spiked[band].astype(int) - clean[band]).mean()
    assert ndimage.distance_transform_edt(~band)[changed].max() <= 3  # only the spikes' pixels change


def test_a_spike_is_followed_out_to_its_faint_end(scene):
    """A starburst's spikes fade along their length; each is taken out as far as it stands SPIKE_TRACE
    above the scene beside it, also where it has faded under SPIKE_EXCESS (which finds it)."""
    clean = _lamp(scene)
    degrees = np.arange(7) * 360 / 7 + 10
    spiked = _spikes(clean, degrees, fade=40.0)
    far = np.zeros((H, W), bool)
    for across, spike in _spike_layers(degrees, fade=40.0):
        far |= (across < 0.5) & (spike > 3) & (spike < 0.025 * 255)  # its core, under SPIKE_EXCESS of white
    out, changed, n = _bursts(spiked)
    assert n == 1
    left = np.abs(out[far].astype(int) - clean[far]).mean()
    assert left < 0.5 * np.abs(spiked[far].astype(int) - clean[far]).mean(), left


def _hair_rays(img: np.ndarray, degrees, level) -> np.ndarray:
    """``img`` with a hair-thin ray (half-width 1 px) out of LAMP in each of ``degrees``, ``level(along)``
    levels above the scene at ``along`` px from the lamp's centre."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = img.astype(np.float32)
    for d in degrees:
        a = math.radians(d)
        along = (yy - LAMP[0]) * math.sin(a) + (xx - LAMP[1]) * math.cos(a)
        across = np.abs((yy - LAMP[0]) * math.cos(a) - (xx - LAMP[1]) * math.sin(a))
        out += (np.clip(1.5 - across, 0, 1) * (along > 5) * level(np.clip(along, 0, None)))[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def test_round_a_glaring_lamp_faint_long_rays_are_a_starburst_and_short_radial_texture_is_not(scene):
    """A dozen hair-thin rays that stand SPIKE_EXCESS above the scene only in their first 30 px, and
    SPIKE_FAINT above it out to the frame's edge, are a starburst round a lamp whose glare the model dimmed
    (``before``), and are taken out; round a lamp without glare they are left. Radial strokes as faint but
    only 70 px long (stems, branches, fibres round a bright lamp) are left even round a glaring lamp. The
    scene is blurred (a night sky, a wall): faint rays show on smooth surroundings, not on busy ones."""
    scene = ndimage.gaussian_filter(scene, (4, 4, 0))
    d = np.hypot(*np.mgrid[0:H, 0:W] - np.array(LAMP)[:, None, None])
    glow = 60.0 * np.exp(-np.clip(d - 4, 0, None) / 12)[..., None]
    clean = _lamp(scene)
    degrees = np.arange(12) * 30 + 5
    rays = _hair_rays(clean, degrees, lambda along: np.where(along < 30, 14.0, 8.0))
    strokes = _hair_rays(clean, degrees, lambda along: np.where(along < 30, 14.0, 8.0) * (along < 70))
    for img, glaring in ((rays, False), (strokes, True)):  # left
        before = np.clip(img + glow, 0, 255).astype(np.float32) / 255 if glaring else img.astype(np.float32) / 255
        out, changed, n = remove_starbursts(img.astype(np.float32) / 255, white_mask(img), before=before)
        assert n == 0 and not changed.any()
    out, changed, n = remove_starbursts(rays.astype(np.float32) / 255, white_mask(rays),
                                        before=np.clip(rays + glow, 0, 255).astype(np.float32) / 255)
    assert n == 1 and changed.any()  # taken out
    out = np.round(out * 255).astype(np.uint8)
    band = np.any(rays != clean, axis=2)
    assert np.abs(out[band].astype(int) - clean[band]).mean() < 0.75 * np.abs(  # (a faint ray's share of its
        rays[band].astype(int) - clean[band]).mean()  # excess over the opening is part of it: most, not all)
    assert ndimage.distance_transform_edt(~band)[changed].max() <= 3  # only the rays' pixels change
