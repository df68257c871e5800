"""The held-out shimmer generator: seeded pairs with a lamp kept, thin rays and rings far from it,
an untouched background; measured by bench_flare, used by no trainer."""

import ast

import numpy as np
from PIL import Image

from conftest import ROOT
from lightsr.data.flare import GENERATORS, HELD_OUT_GENERATORS, MEASURED_GENERATORS, validation_frames
from lightsr.data.shimmer import ShimmerConfig, synthesize_shimmer_pair


def test_the_lamp_is_kept_rays_reach_far_and_the_background_is_untouched(photo):
    photo = np.asarray(Image.fromarray(photo).resize((256, 192)))
    cfg = ShimmerConfig(lamps=(1, 1), bloom_mid=(0.0, 0.0), rays=(60, 60), ray_gain=(0.5, 0.5),
                        ray_reach=(0.4, 0.4), ring_prob=0.0, ghosts=(0, 0), jpeg_prob=0.0)
    for seed in range(4):
        inp, target, layers = synthesize_shimmer_pair(photo, np.random.default_rng(seed), cfg, return_layers=True)
        assert inp.shape == target.shape == photo.shape and inp.dtype == np.uint8
        flare = layers["flare"]
        lamp = target.min(2) == 255  # the lamp: saturated in the target as in the input
        assert lamp.any() and (inp.min(2)[lamp] == 255).all()
        assert (inp.astype(int) >= target.astype(int) - 1).all()  # flare only adds light (noise rounds alike)
        ly, lx = np.argwhere(lamp).mean(0)
        yy, xx = np.nonzero(flare > 4)
        far = np.hypot(yy - ly, xx - lx) > 64
        assert far.any()
        # thin rays: far from the lamp the flare covers few of the directions around it
        angles = np.arctan2(yy[far] - ly, xx[far] - lx)
        assert len(np.unique(np.round(angles * 40))) < 0.8 * 2 * np.pi * 40
        assert (flare == 0).mean() > 0.1
        diff = np.abs(inp[flare == 0].astype(int) - target[flare == 0])
        assert diff.max() <= 1 and (diff == 0).mean() > 0.95


def test_a_ring_ghost_is_hollow():
    scene = np.full((192, 256, 3), 40, np.uint8)
    cfg = ShimmerConfig(lamps=(1, 1), bloom=(0.0, 0.0), bloom_mid=(0.0, 0.0), rays=(0, 0), ring_prob=1.0,
                        ghosts=(0, 0), ghost_gain=(0.3, 0.3), noise=(0.0, 0.0), jpeg_prob=0.0)
    inp, target, layers = synthesize_shimmer_pair(scene, np.random.default_rng(1), cfg, return_layers=True)
    flare = layers["flare"].astype(float)
    ly, lx = np.argwhere(target.min(2) == 255).mean(0)
    yy, xx = np.mgrid[0:192, 0:256]
    d = np.hypot(yy - ly, xx - lx)
    ring = np.unravel_index(np.argmax(np.where(d > 8, flare, 0)), flare.shape)
    radius = d[ring]
    inside = (d > 8) & (d < 0.5 * radius)
    assert flare[ring] > 2 * flare[inside].mean() + 4  # brighter on the rim than inside


def test_seeded_a_validation_set_and_measured_only():
    scene = np.full((96, 128, 3), 90, np.uint8)
    a = synthesize_shimmer_pair(scene, np.random.default_rng(3))
    b = synthesize_shimmer_pair(scene, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    v = validation_frames([scene], "shimmer", count=2, long_side=64)
    assert len(v) == 2 and v[0][0].shape == (48, 64, 3) and set(v[0][2]) == {"flare"}
    assert HELD_OUT_GENERATORS == ("shimmer",) and "shimmer" not in GENERATORS
    assert MEASURED_GENERATORS == GENERATORS + HELD_OUT_GENERATORS


def test_no_trainer_uses_it():
    for script in (ROOT / "train").glob("*.py"):
        tree = ast.parse(script.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        held_out = {"HELD_OUT_GENERATORS", "MEASURED_GENERATORS", "synthesize_shimmer_pair", "ShimmerConfig"}
        assert not names & held_out, script
        assert "shimmer" not in script.read_text(), script
