"""Metrics agree with scikit-image and pin the protocol's edge cases; bicubic reproduces the paper."""

import math

import numpy as np
import pytest
import torch
from conftest import DATA
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import lightsr
from lightsr.evaluate import evaluate_sr
from lightsr.metrics import psnr, rgb_to_y, ssim


@pytest.fixture
def pair(photo):
    rng = np.random.default_rng(1)
    noisy = np.clip(photo.astype(int) + rng.normal(0, 6, photo.shape).round(), 0, 255).astype(np.uint8)
    return photo, noisy


def test_psnr_matches_skimage_rgb_and_y(pair):
    a, b = pair
    assert psnr(a, b, y_channel=False) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=0.01)
    ya, yb = rgb_to_y(a.astype(float))[..., 0], rgb_to_y(b.astype(float))[..., 0]
    assert psnr(a, b, crop_border=4) == pytest.approx(
        peak_signal_noise_ratio(ya[4:-4, 4:-4], yb[4:-4, 4:-4], data_range=255), abs=0.01)


def test_ssim_matches_skimage(pair):
    a, b = pair
    ya, yb = rgb_to_y(a.astype(float))[..., 0], rgb_to_y(b.astype(float))[..., 0]
    ref = structural_similarity(ya[2:-2, 2:-2], yb[2:-2, 2:-2], gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ssim(a, b, crop_border=2) == pytest.approx(ref, abs=0.001)
    ref_rgb = structural_similarity(a.astype(float), b.astype(float), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, channel_axis=2)
    assert ssim(a, b, y_channel=False) == pytest.approx(ref_rgb, abs=0.001)


def test_identical_images_give_inf_and_one(photo):
    assert psnr(photo, photo) == math.inf
    assert ssim(photo, photo) == pytest.approx(1.0)


def test_layouts_and_dtypes_agree(pair):
    a, b = pair
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).float() / 255
    ref = psnr(a, b, crop_border=2)
    assert psnr(ta, tb, crop_border=2) == pytest.approx(ref, abs=1e-4)
    assert psnr(ta[None], tb[None], crop_border=2) == pytest.approx(ref, abs=1e-4)
    a16, b16 = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    assert psnr(a16, b16, crop_border=2) == pytest.approx(ref, abs=1e-4)
    assert ssim(a16, b16) == pytest.approx(ssim(a, b), abs=1e-6)


def test_crop_border_matters_and_errors_are_clear(photo):
    worse = photo.copy()
    worse[:3] = 0  # damage only the border
    assert psnr(photo, worse, crop_border=3) == math.inf
    assert psnr(photo, worse) < 30
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(photo, photo[:-1])
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(photo, photo, crop_border=50)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(photo[:8, :8], photo[:8, :8])


def test_bicubic_protocol_reproduces_published_set5():
    """Set5 x2 bicubic: 33.67 dB here, 33.66 published (Pillow vs MATLAB imresize)."""
    class Bicubic(torch.nn.Module):  # a 'model' that is plain bicubic, through the evaluation path
        scale = 2

        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)

    model = Bicubic()
    model.register_parameter("dummy", torch.nn.Parameter(torch.zeros(1)))
    scores = evaluate_sr(model, DATA / "sr-bench" / "Set5", scale=2)
    assert scores.bicubic_psnr == pytest.approx(33.67, abs=0.01)
    assert scores.bicubic_ssim == pytest.approx(0.9303, abs=0.001)
    # torch's bicubic (a=-0.75, no antialias) is a different filter: close, not equal
    assert abs(scores.psnr - scores.bicubic_psnr) < 0.5


def test_bicubic_helpers_shapes_and_kinds(photo):
    from PIL import Image

    lr = lightsr.bicubic_downscale(photo[:71, :95], 2)  # odd sizes are cropped first (modcrop)
    assert lr.shape == (35, 47, 3) and lr.dtype == np.uint8
    up = lightsr.bicubic_upscale(Image.fromarray(lr), 2)
    assert up.size == (94, 70)


def test_the_comparison_reads_a_16_bit_photo_as_its_8_bit_self(photo):
    """compare_with_bicubic on a 16-bit grey photo measures what the 8-bit photo gives (Pillow's own
    convert("RGB") clipped it white: both PSNRs were then inf on a blank image)."""
    from PIL import Image

    from lightsr.compare import compare_with_bicubic

    model = lightsr.create_model("rdn-test").eval()
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    eight = compare_with_bicubic(model, Image.fromarray(grey)).metrics
    sixteen = compare_with_bicubic(model, Image.fromarray(grey.astype(np.uint16) * 257)).metrics
    assert sixteen == eight and all(math.isfinite(row["PSNR (dB)"]) for row in eight)
