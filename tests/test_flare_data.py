"""Synthetic flare pairs: seeded, physically additive, light sources kept in the target."""

import numpy as np
import pytest
from PIL import Image

import lightsr
from lightsr.data.flare import FlareConfig, FlarePairs, PairFolder, synthesize_pair, validation_pairs
from lightsr.data.flare import _glow, _rimmed_ghost


def test_same_seed_same_pair(photo):
    a1, b1 = synthesize_pair(photo, np.random.default_rng(3))
    a2, b2 = synthesize_pair(photo, np.random.default_rng(3))
    a3, _ = synthesize_pair(photo, np.random.default_rng(4))
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2) and not np.array_equal(a1, a3)
    assert a1.shape == b1.shape == photo.shape and a1.dtype == np.uint8


def test_flare_only_adds_light_and_sources_stay(photo):
    cfg = FlareConfig(noise=(0.0, 0.0))
    for seed in range(5):
        inp, target = synthesize_pair(photo, np.random.default_rng(seed), cfg)
        assert (inp.astype(int) >= target.astype(int) - 1).all()  # light adds, never removes
        assert inp.mean() > target.mean() + 1  # and there is visible flare
        assert (target.max(axis=2) == 255).any()  # the saturated light sources are in the target


def test_a_long_streak_is_optional_and_leaves_the_seeded_sets_alone(photo):
    cfg = FlareConfig(sources=(1, 1), rays=(4, 4), ghosts=(0, 0), veil=(0.0, 0.0), strength=(1.0, 1.0),
                      noise=(0.0, 0.0))
    plain, _, layers = synthesize_pair(photo, np.random.default_rng(2), cfg, return_layers=True)
    again, _ = synthesize_pair(photo, np.random.default_rng(2), FlareConfig(**{**cfg.__dict__, "line_prob": 0.0}))
    assert np.array_equal(plain, again)  # line_prob 0 draws nothing more: seeded sets are unchanged
    lined, _, lined_layers = synthesize_pair(photo, np.random.default_rng(2),
                                             FlareConfig(**{**cfg.__dict__, "line_prob": 1.0}), return_layers=True)
    added = lined_layers["flare"].astype(int) - layers["flare"]
    assert (added > 8).sum() > 5 * (added < -8).sum() + 20  # more light (the later draws, a blur, differ)
    ys, xs = np.nonzero(added > 8)
    assert max(np.ptp(ys), np.ptp(xs)) > 0.3 * max(photo.shape[:2])  # a long one


def test_a_power_law_glow_reaches_farther():
    d = np.array([0.0, 0.5], np.float32)  # at the lamp, and half a diagonal away
    far = {tail: np.median([_glow(d, np.random.default_rng(s), FlareConfig(tail_prob=tail))[1] for s in range(50)])
           for tail in (0.0, 1.0)}
    assert far[1.0] > 3 * far[0.0]  # an exponential glow is all but gone there; a power law is not
    again = [_glow(d, np.random.default_rng(s), FlareConfig())[1] for s in range(50)]
    assert np.median(again) == far[0.0]  # tail_prob 0 draws nothing more


def test_a_rimmed_ghost_has_a_bright_edge_and_coloured_fringes():
    yy, xx = np.mgrid[0:101, 0:101].astype(np.float32)
    ghost = _rimmed_ghost(xx - 50, yy - 50, 30.0, 6, 0.0, rim=2.0, width=0.1, spread=0.05)
    g = ghost[..., 1]
    assert g[50, 50] == pytest.approx(1.0) and g[50, 50 + 28] > 2.0 and g[50, 50 + 36] == 0  # fill, rim, outside
    red, blue = ghost[..., 0] > 0.5, ghost[..., 2] > 0.5
    assert red.sum() > blue.sum() and (red & ~blue).any() and not (blue & ~red).any()  # red larger: a fringe


def test_flare_pairs_and_validation_set(photo):
    pairs = FlarePairs([photo] * 3, patch=48)
    x, y = pairs.sample(np.random.default_rng(0), 4)
    assert x.shape == y.shape == (4, 48, 48, 3)
    v1 = validation_pairs([photo], count=3, size=64)
    v2 = validation_pairs([photo], count=3, size=64)
    assert len(v1) == 3 and all(np.array_equal(a[0], b[0]) for a, b in zip(v1, v2))
    with pytest.raises(lightsr.LightSRError, match="at least 500 px"):
        FlarePairs([photo], patch=500)


def test_pair_folder(tmp_path, photo):
    for sub in ("input", "target"):
        (tmp_path / sub).mkdir()
        Image.fromarray(photo).save(tmp_path / sub / "a.png")
    pairs = PairFolder(tmp_path)
    assert len(pairs) == 1 and pairs[0][0].shape == photo.shape
    Image.fromarray(photo).save(tmp_path / "input" / "b.png")
    with pytest.raises(lightsr.LightSRError, match="do not match: b.png"):
        PairFolder(tmp_path)


def test_real_pairs_in_training_frames_and_as_a_measured_set(tmp_path, photo):
    from lightsr.data.flare import FrameFlarePairs, real_frames

    for sub in ("input", "target"):
        (tmp_path / sub).mkdir()
    target = photo
    flared = np.clip(photo.astype(int) + 40, 0, 255).astype(np.uint8)
    Image.fromarray(target).save(tmp_path / "target" / "a.png")
    Image.fromarray(flared).save(tmp_path / "input" / "a.png")
    pairs = PairFolder(tmp_path)
    frames = FrameFlarePairs([photo], 48, optics_prob=0.0, pairs=pairs, pairs_prob=1.0)
    a, b = frames.sample(np.random.default_rng(0), 3)
    assert a.shape == b.shape == (3, 48, 48, 3)
    # input and target went through the same resize, crop and flip: the flare (+40) is what separates them
    assert np.abs(a.astype(int) - np.clip(b.astype(int) + 40, 0, 255)).mean() < 2
    measured = real_frames(pairs, long_side=64)
    assert len(measured) == 1 and measured[0][0].shape[:2] == measured[0][1].shape[:2]
    assert 38 <= np.median(measured[0][2]["flare"]) <= 40
    with pytest.raises(lightsr.LightSRError, match="needs a folder"):
        FrameFlarePairs([photo], 48, optics_prob=0.0, pairs_prob=0.5)
    empty = tmp_path / "empty"
    (empty / "input").mkdir(parents=True)
    (empty / "target").mkdir()
    with pytest.raises(lightsr.LightSRError, match="holds no images"):
        PairFolder(empty)


def test_flare_free_share_of_training_frames(photo):
    """--clean-prob: that share of synthetic frames has no flare (input equals target); at 0 the
    seeded stream is exactly what it was (no extra random draw); a share outside [0, 1) is refused."""
    from lightsr.data.flare import FrameFlarePairs

    a, b = FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=0.999).sample(np.random.default_rng(0), 4)
    assert np.array_equal(a, b) and a.std() > 0  # the frame itself, not blank
    a, b = FrameFlarePairs([photo], 48, optics_prob=0.0).sample(np.random.default_rng(0), 4)
    assert not np.array_equal(a, b)  # without it every frame gets flare
    c, d = FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=0.0).sample(np.random.default_rng(0), 4)
    assert np.array_equal(a, c) and np.array_equal(b, d)
    with pytest.raises(lightsr.LightSRError, match="flare-free"):
        FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=1.0)


def test_flare_free_frames_over_exposed(photo):
    """--clean-gain: overexpose scales in linear light and clips at white, so a bright photo gets
    large clipped areas with the rest brighter and in order; flare-free training frames drawn with
    a gain range are over-exposed (more clipped pixels than the photo) and still input = target."""
    from lightsr.data.flare import FrameFlarePairs, overexpose

    assert np.array_equal(overexpose(photo, 1.0), photo)  # gain 1 is the photo (the round trip is exact)
    bright = overexpose(photo, 3.0)
    assert (bright >= photo).all() and (bright == 255).mean() > (photo == 255).mean() + 0.05
    threshold = 255 * 3.0 ** (-1 / 2.2)  # every value above it clips
    assert (bright[photo > threshold + 1] == 255).all() and (bright[photo < threshold - 1] < 255).all()
    with pytest.raises(lightsr.LightSRError, match="positive"):
        overexpose(photo, 0.0)
    a, b = FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=0.999, clean_gain=(2.5, 3.0)).sample(
        np.random.default_rng(0), 4)
    plain, _ = FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=0.999).sample(np.random.default_rng(0), 4)
    assert np.array_equal(a, b) and (a == 255).mean() > (plain == 255).mean() + 0.05
    with pytest.raises(lightsr.LightSRError, match="LO <= HI"):
        FrameFlarePairs([photo], 48, optics_prob=0.0, clean_prob=0.5, clean_gain=(2.0, 1.0))
