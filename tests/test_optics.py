"""The optics flare generator: wave-optics PSFs, the cached bank, and pairs whose background is untouched."""

import math

import numpy as np
import torch
import pytest
from PIL import Image

import lightsr
from lightsr.data.flare import FrameFlarePairs, validation_frames
from lightsr.data.optics import (OpticsConfig, PSFBank, compute_psf, psf_bank, spectral_weights,
                                 synthesize_optics_pair)

TINY = OpticsConfig(bank_size=3, pupil=128, psf_size=64, seed=7)


def _clean_pupil(n=128, radius=24):
    yy, xx = np.mgrid[0:n, 0:n] - n / 2
    return (np.hypot(xx, yy) <= radius).astype(np.float64)


def test_spectral_weights_are_colour_matching():
    w = spectral_weights()
    assert np.allclose(w.sum(0), 1) and (w >= 0).all()
    lam = np.linspace(410, 690, 16)
    # red peaks at long wavelengths, blue at short ones
    assert lam[w[:, 0].argmax()] > 580 and lam[w[:, 2].argmax()] < 470


def test_psf_of_a_clean_aperture_is_an_airy_pattern_wider_in_red():
    amp = _clean_pupil()
    psf = compute_psf(amp, np.zeros_like(amp), 64)
    assert psf.shape == (3, 64, 64) and np.all(psf >= 0)
    assert 0.9 < psf[1].sum() <= 1.0 + 1e-6  # Parseval: (nearly) all light is in the stored window
    assert np.unravel_index(psf[1].argmax(), psf[1].shape) == (32, 32)  # centred
    # the Airy core radius is 1.22 lambda / D: in px, 1.22 * 128 / 48 = 3.3 at 550 nm; red is wider
    yy, xx = np.mgrid[0:64, 0:64] - 32
    r = np.hypot(xx, yy)
    spread = [(psf[c] * r**2).sum() / psf[c].sum() for c in range(3)]
    assert spread[0] > spread[1] > spread[2]


def test_a_scratch_makes_a_streak_at_right_angles_to_it():
    amp = _clean_pupil()
    amp[:, 63:65] = 0  # a vertical opaque scratch across the pupil
    psf = compute_psf(amp, np.zeros_like(amp), 64)[1]
    clean = compute_psf(_clean_pupil(), np.zeros_like(amp), 64)[1]
    streak = psf - clean
    # the diffracted light goes along the horizontal axis (perpendicular to the scratch)
    horizontal = streak[32, 2:20].sum() + streak[32, 44:62].sum()
    vertical = streak[2:20, 32].sum() + streak[44:62, 32].sum()
    assert horizontal > 5 * abs(vertical)


def test_bank_is_seeded_cached_and_pickle_free(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path))
    bank = psf_bank(TINY)
    assert isinstance(bank, PSFBank) and bank.psfs.shape == (3, 3, 64, 64) and len(bank.meta) == 3
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".npy"]  # plain arrays and JSON, no pickle
    again = psf_bank(TINY)  # from the cache
    fresh = psf_bank(TINY, cache=False)  # recomputed from the seed
    assert np.array_equal(bank.psfs, again.psfs) and np.array_equal(bank.psfs, fresh.psfs)
    other = psf_bank(OpticsConfig(bank_size=3, pupil=128, psf_size=64, seed=8), cache=False)
    assert not np.array_equal(bank.psfs, other.psfs)


@pytest.fixture
def bank(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path_factory.mktemp("bank")))
    return psf_bank(TINY)


def test_pairs_keep_the_lamp_lose_the_glare_and_leave_the_background_alone(photo, bank):
    photo = np.asarray(Image.fromarray(photo).resize((256, 192)))
    for seed in range(6):
        cfg = OpticsConfig(lamps=(1, 1), lamp_log10=(3.0, 3.0), jpeg_prob=1.0 if seed % 2 else 0.0)
        inp, target, layers = synthesize_optics_pair(photo, np.random.default_rng(seed), bank, cfg,
                                                     return_layers=True)
        assert inp.shape == target.shape == photo.shape and inp.dtype == np.uint8
        flare = layers["flare"]
        assert set(layers) == {"flare", "scatter", "ghost"}
        # noise and JPEG are the same in both: where no flare reaches (and no JPEG block it touches),
        # input and target agree (within one level, where sub-level flare tips the noisy rounding)
        if seed % 2 == 0:
            diff = np.abs(inp[flare == 0].astype(int) - target[flare == 0])
            assert diff.max() <= 1 and (diff == 0).mean() > 0.95
        # the lamp is saturated in the target; its glare disc is saturated in the input only
        lamp = target.max(2) == 255
        assert lamp.any() and (inp.max(2)[lamp] >= 254).all()
        glare = (inp.max(2) >= 250) & ~lamp
        assert glare.sum() > lamp.sum()  # a 1000x lamp's glare disc is larger than the lamp
        if seed % 2 == 0:  # flare adds light (JPEG's ringing around saturated discs aside)
            assert (inp.astype(int) >= target.astype(int) - 1).mean() > 0.99


def test_same_seed_same_pair_and_validation_sets(photo, bank):
    a = synthesize_optics_pair(photo, np.random.default_rng(1), bank)
    b = synthesize_optics_pair(photo, np.random.default_rng(1), bank)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for gen in ("optics", "drawn"):
        v = validation_frames([photo], gen, count=2, long_side=64, bank=bank)
        assert len(v) == 2 and v[0][0].shape == (48, 64, 3) and "flare" in v[0][2]
    with pytest.raises(lightsr.LightSRError, match="needs a PSF bank"):
        validation_frames([photo], "optics", count=1)
    with pytest.raises(lightsr.LightSRError, match="generator must be"):
        validation_frames([photo], "magic", count=1, bank=bank)


def test_whole_frame_sampler_mixes_generators(photo, bank):
    pairs = FrameFlarePairs([photo] * 2, 40, bank=bank, optics_prob=0.5)
    x, y = pairs.sample(np.random.default_rng(0), 3)
    assert x.shape == y.shape == (3, 40, 40, 3)
    with pytest.raises(lightsr.LightSRError, match="needs a PSF bank"):
        FrameFlarePairs([photo], 40)
    assert math.isclose(OpticsConfig().lamp_log10[1], 3.7)


def test_fft_sizes_are_smooth_and_the_convolution_is_unchanged():
    """FFTs are padded to sizes of factors 2, 3 and 5 (several times faster than, say, 2 x 601);
    the zero-padded linear convolution is the same at any size that covers it."""
    from lightsr.data.optics import _fast_len, _fft_convolve

    for n in (1, 7, 97, 1025, 1204):
        m = _fast_len(n)
        assert m >= n and m < 1.25 * n + 2
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        assert k == 1
        assert all(not _is_smooth(j) for j in range(n, m))
    g = torch.Generator().manual_seed(0)
    image, kernel = torch.rand(3, 23, 31, generator=g), torch.rand(3, 9, 9, generator=g)
    direct = torch.nn.functional.conv2d(image[None], kernel.flip(-1, -2)[:, None], padding=4, groups=3)[0]
    assert torch.allclose(_fft_convolve(image, kernel), direct, atol=1e-4)


def _is_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1
