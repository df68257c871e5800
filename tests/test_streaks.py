"""The streak generator: seeded pairs with a lamp kept, a long streak through it, and an untouched
background; measured by bench_flare, trained on only with train_flare --streaks-prob."""

import numpy as np
from PIL import Image

from lightsr.data.flare import validation_frames
from lightsr.data.streaks import StreakConfig, synthesize_streak_pair


def test_a_streak_runs_through_the_kept_lamp_and_the_background_is_untouched(photo):
    photo = np.asarray(Image.fromarray(photo).resize((256, 192)))
    cfg = StreakConfig(lamps=(1, 1), streak_prob=1.0, ghosts=(0, 0), haze_prob=0.0, jpeg_prob=0.0)
    for seed in range(4):
        inp, target, layers = synthesize_streak_pair(photo, np.random.default_rng(seed), cfg, return_layers=True)
        assert inp.shape == target.shape == photo.shape and inp.dtype == np.uint8
        flare = layers["flare"]
        lamp = target.max(2) == 255  # the lamp: saturated in the target as in the input
        assert lamp.any() and (inp.max(2)[lamp] >= 254).all()
        assert (inp.astype(int) >= target.astype(int)).all()  # flare only adds light
        # the streak reaches far from the lamp, as a thin line: flare > 4/255 over a third of the frame's
        # width or height from the lamp, on few rows/columns there
        ly, lx = np.argwhere(lamp).mean(0)
        yy, xx = np.nonzero(flare > 4)
        assert np.hypot(yy - ly, xx - lx).max() > 64
        # the noise is the same in both: where no flare reaches, input and target agree (within one level,
        # where sub-level flare tips the noisy rounding)
        assert (flare == 0).mean() > 0.2
        diff = np.abs(inp[flare == 0].astype(int) - target[flare == 0])
        assert diff.max() <= 1 and (diff == 0).mean() > 0.95


def test_seeded_and_a_validation_set(photo):
    a = synthesize_streak_pair(photo, np.random.default_rng(3))
    b = synthesize_streak_pair(photo, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    v = validation_frames([photo], "streaks", count=2, long_side=64)
    assert len(v) == 2 and v[0][0].shape == (48, 64, 3) and set(v[0][2]) == {"flare"}
    assert not np.array_equal(v[0][0], v[1][0])
