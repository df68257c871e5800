"""remove_flare: both methods, light sources kept, CLI deflare."""

import numpy as np
import pytest
import torch
from PIL import Image

import lightsr
from lightsr import cli
from lightsr.flare import light_source_mask, remove_flare



@pytest.fixture
def model():
    m = lightsr.create_model("nf-resunet-test").eval()
    with torch.no_grad():  # make the head output a constant -0.3 correction: 'removes' light everywhere
        m.head.bias.fill_(-0.3)
    return m


@pytest.fixture
def lamp_photo(photo):
    img = photo.copy()
    img[30:36, 40:46] = 255  # a saturated light source
    return img


def test_sources_are_kept_and_the_rest_is_processed(model, lamp_photo):
    out = remove_flare(model, lamp_photo)
    assert out.shape == lamp_photo.shape and out.dtype == np.uint8
    assert (out[30:36, 40:46] == 255).all()  # the lamp itself is untouched
    far = (slice(0, 10), slice(0, 10))
    assert out[far].mean() < lamp_photo[far].mean() - 20  # elsewhere the model's output is used
    plain = remove_flare(model, lamp_photo, keep_sources=False)
    assert plain[30:36, 40:46].mean() < 255


def test_lowres_method_matches_size_and_kind(model, lamp_photo):
    big = np.asarray(Image.fromarray(lamp_photo).resize((480, 360)))
    out = remove_flare(model, Image.fromarray(big), method="lowres", work_size=128)
    assert isinstance(out, Image.Image) and out.size == (480, 360)
    tiled = remove_flare(model, big, method="tiled")
    # both remove the same kind of light: means agree within a few levels
    assert abs(np.asarray(out).astype(float).mean() - tiled.astype(float).mean()) < 8


def test_mask_and_errors(model, lamp_photo):
    m = light_source_mask(lamp_photo)
    assert m[32, 42] == pytest.approx(1.0, abs=0.05) and m[0, 0] == 0
    with pytest.raises(lightsr.LightSRError, match="not super-resolution|flare-removal model"):
        remove_flare(lightsr.create_model("rdn-test"), lamp_photo)
    with pytest.raises(lightsr.LightSRError, match="'tiled' or 'lowres'"):
        remove_flare(model, lamp_photo, method="magic")


def test_cli_deflare(tmp_path, model, lamp_photo):
    model.save_pretrained(tmp_path / "flare")
    Image.fromarray(lamp_photo).save(tmp_path / "in.jpg")
    assert cli.main(["deflare", str(tmp_path / "in.jpg"), str(tmp_path / "out.png"), "--model",
                     str(tmp_path / "flare"), "--method", "lowres"]) == 0
    assert Image.open(tmp_path / "out.png").size == (96, 72)
