"""lightsr.enhance: every image kind in and out, tiling, progress; open_image's refusals."""

import io
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import lightsr
from lightsr.inference import default_tile, self_ensemble


@pytest.fixture(scope="module")
def sr():
    return lightsr.create_model("rdn-test").eval()


@pytest.fixture(scope="module")
def flare():
    return lightsr.create_model("nf-resunet-test").eval()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"])
def test_pil_modes_round_trip(sr, photo, mode):
    base = Image.fromarray(photo)
    if mode == "RGBA" or mode == "LA":
        img = base.convert(mode)
        alpha = np.tile(np.linspace(0, 255, img.width, dtype=np.uint8), (img.height, 1))
        img.putalpha(Image.fromarray(alpha))
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
        assert img.mode == "I;16"
    else:
        img = base.convert(mode)
    out = lightsr.enhance(sr, img)
    expected_mode = {"P": "RGB", "CMYK": "RGB", "1": "L"}.get(mode, mode)
    assert out.mode == expected_mode
    assert out.size == (img.width * 2, img.height * 2)
    if mode in ("RGBA", "LA"):
        a = np.asarray(out.getchannel("A")).astype(int)
        assert abs(a[:, 0].mean() - 0) < 3 and abs(a[:, -1].mean() - 255) < 3  # the ramp survived
    if mode == "I;16":
        assert np.asarray(out).dtype == np.uint16 and np.asarray(out).max() > 255  # still 16-bit


def test_a_float_grey_result_is_saved_to_png_as_16_bit(sr, photo, tmp_path):
    """enhance gives a float (F) image back as F; PNG has no float, so it is written 16-bit (0..1 on
    0..65535), TIFF as it is, JPEG in 8 bits (before: a traceback, Pillow cannot write F as PNG)."""
    img = Image.fromarray(photo[..., 1].astype(np.float32) / 255, mode="F")
    out = lightsr.enhance(sr, img)
    assert out.mode == "F"
    level = np.asarray(out)
    for name, mode, scale in (("out.png", "I;16", 65535), ("out.tif", "F", 1), ("out.jpg", "L", 255)):
        lightsr.save_image(out, tmp_path / name)
        back = Image.open(tmp_path / name)
        assert back.mode == mode
        assert np.abs(np.asarray(back, dtype=np.float64) / scale - np.clip(level, 0, 1)).max() <= 1.5 / scale + 0.02 * (
            name == "out.jpg")


def test_numpy_kinds(sr, photo):
    out = lightsr.enhance(sr, photo)
    assert out.shape == (144, 192, 3) and out.dtype == np.uint8
    grey16 = photo[..., 0].astype(np.uint16) * 257
    out16 = lightsr.enhance(sr, grey16)
    assert out16.shape == (144, 192) and out16.dtype == np.uint16
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    out4 = lightsr.enhance(sr, rgba)
    assert out4.shape == (144, 192, 4) and (out4[..., 3] == 200).all()


def test_sixteen_bit_keeps_precision(flare):
    """A 16-bit input through an identity model (untrained NF-ResUNet) comes back bit-exact."""
    ramp = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (24, 1))[:, :200]
    rgb16 = np.dstack([ramp, ramp, ramp])
    out = lightsr.enhance(flare, rgb16)
    assert out.dtype == np.uint16 and np.abs(out.astype(int) - rgb16).max() <= 1


def test_exif_orientation_is_applied(sr):
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    opened = lightsr.open_image(buf.getvalue())
    assert opened.size == (20, 40)
    raw = Image.open(io.BytesIO(buf.getvalue()))
    assert lightsr.enhance(sr, raw).size == (40, 80)


def test_one_pixel_and_thin_images(sr, flare):
    one = Image.new("RGB", (1, 1), (10, 200, 30))
    assert lightsr.enhance(sr, one).size == (2, 2)
    assert lightsr.enhance(flare, one).size == (1, 1)
    assert lightsr.enhance(sr, Image.new("RGB", (300, 1)), tile=64).size == (600, 2)


def test_progress_and_tile_choices(sr, photo):
    calls = []
    lightsr.enhance(sr, photo, tile=32, overlap=8, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (9, 9) and [d for d, _ in calls] == list(range(1, 10))  # 3 x 3 tiles
    calls.clear()
    lightsr.enhance(sr, photo, tile=None, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)]
    tile = default_tile(lightsr.create_model("rdn-light"), 25)
    assert 64 <= tile <= 1024 and tile % 16 == 0


def test_tiles_have_no_seams_even_when_overlap_is_small(photo):
    """With less overlap than the receptive field, blending still leaves no visible step."""
    model = lightsr.create_model("rdn-tiny").eval()
    whole = lightsr.enhance(model, photo, tile=None).astype(int)
    tiled = lightsr.enhance(model, photo, tile=24, overlap=4).astype(int)
    assert np.abs(whole - tiled).mean() < 1.0


def test_self_ensemble_turns_every_pass_back_before_averaging():
    """A net that commutes with flips and transposes (nearest x2) is unchanged by any ensemble; one
    that adds a left-to-right ramp gets the mean of the ramps every pass saw, turned back: 0.5
    everywhere. A pass left flipped or transposed (5x7, not square) would fail either."""
    x = torch.rand(1, 3, 5, 7)

    def up(t):
        return F.interpolate(t, scale_factor=2, mode="nearest")

    def ramped(t):
        return up(t) + torch.linspace(0, 1, 2 * t.shape[3])

    for n in (1, 2, 4, 8):
        assert torch.allclose(self_ensemble(up, n)(x), up(x), atol=1e-6)
    assert self_ensemble(up, 1) is up
    for n in (2, 4, 8):
        assert torch.allclose(self_ensemble(ramped, n)(x), up(x) + 0.5, atol=1e-6)


def test_self_ensemble_through_enhance_tiles_like_one_pass(sr, photo):
    """enhance(self_ensemble=8) is the mean of the eight flipped and transposed images' results,
    each turned back, to a rounding; tiled it equals whole, and it is not the single pass."""
    whole = lightsr.enhance(sr, photo, tile=None, self_ensemble=8).astype(int)
    tiled = lightsr.enhance(sr, photo, tile=32, self_ensemble=8).astype(int)
    assert whole.shape == (144, 192, 3) and np.abs(whole - tiled).max() <= 1
    by_hand = np.zeros(whole.shape)
    for k in range(8):
        t = photo[:, ::-1] if k & 1 else photo
        t = t[::-1] if k & 2 else t
        t = t.transpose(1, 0, 2) if k & 4 else t
        y = lightsr.enhance(sr, np.ascontiguousarray(t), tile=None).astype(float)
        y = y.transpose(1, 0, 2) if k & 4 else y
        y = y[::-1] if k & 2 else y
        by_hand += y[:, ::-1] if k & 1 else y
    assert np.abs(whole - by_hand / 8).max() <= 1
    assert (whole != lightsr.enhance(sr, photo, tile=None)).any()


@pytest.mark.parametrize("bad, message", [
    ("not an image", "expected a PIL image or a numpy array"),
    (np.zeros((4, 4, 3), np.float32), "uint8 or uint16"),
    (np.zeros((4, 4, 5), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
])
def test_enhance_bad_inputs(sr, bad, message):
    with pytest.raises(lightsr.LightSRError, match=message):
        lightsr.enhance(sr, bad)


def test_enhance_bad_options(sr, photo):
    with pytest.raises(lightsr.LightSRError, match="tile must be"):
        lightsr.enhance(sr, photo, tile=0)
    with pytest.raises(lightsr.LightSRError, match="overlap .* must not exceed"):
        lightsr.enhance(sr, photo, tile=16, overlap=40)
    with pytest.raises(lightsr.LightSRError, match="expected a lightsr model"):
        lightsr.enhance(object(), photo)
    for n in (3, 0, True, "8"):
        with pytest.raises(lightsr.LightSRError, match="self_ensemble must be one of 1, 2, 4, 8"):
            lightsr.enhance(sr, photo, self_ensemble=n)


# -- open_image refusals -------------------------------------------------------------------------
def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, I am text")
    with pytest.raises(lightsr.LightSRError, match="not an image"):
        lightsr.open_image(p)


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.png"
    p.touch()
    with pytest.raises(lightsr.LightSRError, match="empty"):
        lightsr.open_image(p)


def test_truncated_png(tmp_path, photo):
    p = tmp_path / "cut.png"
    Image.fromarray(photo).save(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(lightsr.LightSRError, match="corrupt or truncated"):
        lightsr.open_image(p)


def test_decompression_bomb_refused_from_the_header(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    Image.new("1", (20000, 12000)).save(p)  # 240 MP of zeros: a tiny file
    assert p.stat().st_size < 1_000_000
    p2 = tmp_path / "big.png"
    Image.new("1", (3000, 2000)).save(p2)  # 6 MP, over a caller's 5 MP limit

    def no_decoding(self):
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    start = time.perf_counter()
    with pytest.raises(lightsr.LightSRError, match="refused before decoding"):
        lightsr.open_image(p)
    assert time.perf_counter() - start < 2
    with pytest.raises(lightsr.LightSRError, match="3000x2000 is 6 megapixels, over the limit of 5; refused before"):
        lightsr.open_image(p2, max_pixels=5_000_000)


def test_missing_file(tmp_path):
    with pytest.raises(lightsr.LightSRError, match="no such file"):
        lightsr.open_image(tmp_path / "nope.jpg")


def test_to_unit_range_is_the_one_pixel_to_tensor_conversion():
    import torch

    from lightsr.imaging import to_unit_range

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rgb.setflags(write=False)  # decoded images are often read-only: copied, never written
    x = to_unit_range(rgb)
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32 and x[0, 1, 0, 0] == 1 / 255
    deep = to_unit_range(np.full((2, 4, 4, 3), 65535, np.uint16))
    assert deep.shape == (2, 3, 4, 4) and float(deep.max()) == 1.0
    with pytest.raises(lightsr.LightSRError, match="uint8 or uint16"):
        to_unit_range(np.zeros((2, 2, 3), np.float32))
