"""remove_flare: both methods, lamps kept and told from their glare, nothing changed without flare, CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

import lightsr
from lightsr import cli
from lightsr.flare import LAMP, PEAK, has_light_source, lamp_mask, light_source_mask, remove_flare
from lightsr.models._common import GAMMA


@pytest.fixture
def model():
    m = lightsr.create_model("nf-resunet-flare-test").eval()
    with torch.no_grad():  # the head predicts a constant flare layer of 0.05 (linear light) everywhere
        m.head.bias.fill_(0.05)
    return m


@pytest.fixture
def lamp_photo(photo):
    img = photo.copy()
    img[30:36, 40:46] = 255  # a saturated light source
    return img


def _with_output(model, output: np.ndarray):
    """Make the model return a fixed image: what a perfect flare remover would return. Like any
    remover it is mirror-equivariant: given the mirror image of the first input it was shown (as
    the lowres method's flip passes are), it returns the mirror image of that output."""
    fixed = torch.from_numpy(output).permute(2, 0, 1)[None].float() / 255
    first = []

    def forward(x):
        if first and first[0].shape == x.shape:
            for dims in ((), (3,), (2,), (2, 3)):  # as it is, left-right, upside down, both
                if torch.equal(x, first[0].flip(dims)):
                    return fixed.flip(dims).expand(x.shape[0], -1, -1, -1)
        first[:] = [x.clone()]  # a new photo: this is its own first pass
        return fixed.expand(x.shape[0], -1, -1, -1)

    object.__setattr__(model, "forward", forward)
    return model


@pytest.mark.parametrize("method", ["lowres", "tiled"])
def test_sources_are_kept_and_the_rest_is_processed(model, lamp_photo, method):
    out = remove_flare(model, lamp_photo, method=method)
    assert out.shape == lamp_photo.shape and out.dtype == np.uint8
    assert (out[30:36, 40:46] == 255).all()  # the lamp itself is untouched
    far = (slice(0, 10), slice(0, 10))
    assert out[far].mean() < lamp_photo[far].mean() - 10  # elsewhere the predicted flare is taken away
    plain = remove_flare(model, lamp_photo, method=method, keep_sources=False)
    assert plain[30:36, 40:46].mean() < 255


def test_glare_disc_is_not_kept_as_a_lamp(model, photo):
    """A saturated disc many times a lamp's size around it is glare: where the model removes it,
    remove_flare must not blend it back from the input; the lamp in its middle stays."""
    clean = (photo * 0.5).astype(np.uint8)  # a night scene: nothing in it is near white but the lamp
    clean[32:36, 44:48] = 255  # the lamp
    flared = clean.copy()
    yy, xx = np.mgrid[0:72, 0:96]
    r = np.hypot(yy - 34, xx - 46)
    flared[r < 15] = 255  # its saturated glare disc
    _with_output(model, clean)
    ring = (r < 13) & (r > 6)
    for method in ("lowres", "tiled"):
        out = remove_flare(model, flared, method=method).astype(int)
        assert (out[32:36, 44:48] == 255).all(), method
        assert out[ring].mean() < 128, method  # the glare is gone, not blended back
    # tiled returns the model's output there; lowres fills the clipped disc from its surroundings
    assert np.abs(remove_flare(model, flared, method="tiled")[ring].astype(int) - clean[ring]).mean() < 3
    around = (r > 16) & (r < 20)  # just outside the filled disc
    out = remove_flare(model, flared, method="lowres")
    assert np.abs(out[ring].mean(axis=0) - clean[around].mean(axis=0)).max() < 12
    # the old rule (every saturated pixel is a lamp) would have kept the whole disc
    assert light_source_mask(flared)[ring].min() == 1.0


def test_a_lamp_the_model_dims_with_its_glare_is_still_kept(model, photo):
    """A model may dim the lamp along with its clipped glare disc (here to half of white, under LAMP),
    but leaves it brighter than the glare around it: the lamp at the disc's core stays, the glare goes."""
    scene = np.asarray(Image.fromarray(photo).resize((512, 384)))  # the work size: lamp sizes as at inference
    clean = (scene * 0.5).astype(np.uint8)
    clean[188:196, 252:260] = 255  # the lamp, 8 px
    yy, xx = np.mgrid[0:384, 0:512]
    r = np.hypot(yy - 191.5, xx - 255.5)
    flared = clean.copy()
    flared[r < 40] = 255  # its saturated glare disc
    guess = clean.copy()
    guess[r < 40] = 70  # the model's grey guess under the glare
    guess[188:196, 252:260] = 130  # and the lamp, dimmed with it
    bright = guess.max(axis=2) / 255.0
    lamp = lamp_mask(flared, bright)
    ring = (r < 36) & (r > 12)
    assert lamp[188:196, 252:260].all() and not lamp[ring].any()
    assert not (bright >= LAMP)[188:196, 252:260].any()  # the model's brightness alone would lose it
    _with_output(model, guess)
    for method in ("lowres", "tiled"):
        out = remove_flare(model, flared, method=method)
        assert (out[188:196, 252:260] == 255).all(), method
        assert out[ring].mean() < 128, method
    # where the model leaves the whole disc equally grey, no lamp is left in it: a clipped ghost removed whole
    flat = guess.copy()
    flat[188:196, 252:260] = 70
    assert not lamp_mask(flared, flat.max(axis=2) / 255.0)[r < 40].any()
    # a faint peak at its core (just over PEAK above the rest) is a lamp: the core's bright part is kept
    faint = flat.copy()
    faint[r < 3] = 70 + round(PEAK * 255) + 2
    lamp = lamp_mask(flared, faint.max(axis=2) / 255.0)
    assert lamp[r < 3].all() and not lamp[r > 4].any()
    faint[r < 3] = 70 + round(PEAK * 255) - 2  # a bump under PEAK: still a ghost
    assert not lamp_mask(flared, faint.max(axis=2) / 255.0)[r < 40].any()
    # where the model keeps part of the lamp bright, its outline stands: no core is added around it
    kept = flat.copy()
    kept[190:194, 254:258] = 230
    lamp = lamp_mask(flared, kept.max(axis=2) / 255.0)
    assert np.array_equal(lamp & (r < 40), (kept.max(axis=2) >= LAMP * 255) & (r < 40))
    # the model's output as uint8 (the tiled path, no 12 MP float copy) gives the same verdict, every case
    for out in (guess, flat, faint, kept):
        as_float = lamp_mask(flared, out.max(axis=2) / np.float32(255))
        assert np.array_equal(lamp_mask(flared, out.max(axis=2)), as_float)


def test_the_bright_ring_a_model_leaves_round_a_lamp_in_its_glare_disc_is_glare(model, photo):
    """In a clipped glare disc the model dims, it leaves the lamp bright and a ring of the glare round
    it too: the blob's outer part (LAMP_RIM of its depth) is glare, filled like the rest of the disc,
    and the lamp's blend-back mask is not grown into it;
    a clipped region the model keeps bright (daylit sky, a lamp it keeps whole) keeps its outline."""
    scene = np.asarray(Image.fromarray(photo).resize((512, 384)))
    yy, xx = np.mgrid[0:384, 0:512]
    r = np.hypot(yy - 191.5, xx - 255.5)
    clean = (scene * 0.5).astype(np.uint8)
    clean[r < 5] = 255  # the lamp
    flared = clean.copy()
    flared[r < 40] = 255  # its saturated glare disc
    guess = clean.copy()
    guess[r < 40] = 70  # the model's grey guess under the glare
    guess[r < 10] = 200  # and a bright blob twice the lamp's size: the lamp and a ring of its glare
    lamp = lamp_mask(flared, guess.max(axis=2) / 255.0)
    assert lamp[r < 6].all() and not lamp[r > 8].any()
    _with_output(model, guess)
    out = remove_flare(model, flared).astype(int)
    assert (out[r < 5] == 255).all()
    assert out[(r > 11) & (r < 36)].mean() < 128  # the ring is filled like the rest of the disc
    # blended back without the 2 px grow a lamp gets elsewhere: round it in a disc is glare, not its edge
    assert out[(r > 8.5) & (r < 9.5)].mean() < 160
    # the same blob where the model keeps the whole region bright: its verdict stands, all of it
    kept = guess.copy()
    kept[r < 40] = 190
    assert lamp_mask(flared, kept.max(axis=2) / 255.0)[r < 40].all()


def test_clipped_glare_is_filled_from_its_surroundings(model):
    """Under a clipped glare disc the scene is lost; lowres fills it smoothly from what is around
    it (each side from its own side), whatever the model guessed there, and changes nothing else."""
    clean = np.zeros((96, 128, 3), np.uint8)
    clean[:, :64] = (150, 40, 30)  # red-brown left half
    clean[:, 64:] = (30, 50, 140)  # blue right half
    flared = clean.copy()
    yy, xx = np.mgrid[0:96, 0:128]
    disc = np.hypot(yy - 48, xx - 64) < 20
    flared[disc] = 255
    guess = clean.copy()
    guess[disc] = 90  # the model's grey blob
    _with_output(model, guess)
    out = remove_flare(model, flared, method="lowres", keep_sources=False).astype(int)
    left, right = out[40:56, 48:56], out[40:56, 72:80]  # inside the disc, near either side
    assert left[..., 0].mean() > left[..., 2].mean() + 40 and right[..., 2].mean() > right[..., 0].mean() + 40
    far = np.hypot(yy - 48, xx - 64) > 30
    assert np.array_equal(out[far], clean[far])


def test_lowres_averages_the_mirrored_passes_and_tiled_takes_none(model, lamp_photo):
    """flips=2: the estimate of the photo and of its left-right mirror, mirrored back, averaged. A
    model that returns a left-to-right ramp whatever it is shown gives a flat average, which it
    then subtracts as flare; with flips=1 the ramp stays."""
    h, w = lamp_photo.shape[:2]
    ramp = np.broadcast_to(np.linspace(0, 120, w, dtype=np.float32)[None, :, None], (h, w, 3))
    fixed = torch.from_numpy(np.ascontiguousarray(ramp)).permute(2, 0, 1)[None] / 255
    object.__setattr__(model, "forward", lambda x: fixed.expand(x.shape[0], -1, -1, -1))
    one = remove_flare(model, lamp_photo, flips=1, keep_sources=False).astype(float)
    two = remove_flare(model, lamp_photo, flips=2, keep_sources=False).astype(float)
    dark = lamp_photo.astype(float) - one  # what was taken away: most at the left, where the ramp is dark
    assert dark[:, : w // 4].mean() > dark[:, -w // 4:].mean() + 10
    taken = lamp_photo.astype(float) - two  # the average is flat: as much taken on both sides
    assert abs(taken[:, : w // 4].mean() - taken[:, -w // 4:].mean()) < 0.3 * abs(dark[:, : w // 4].mean())
    assert np.array_equal(remove_flare(model, lamp_photo, flips=None), remove_flare(model, lamp_photo, flips=4))
    for method, flips in (("tiled", 2), ("lowres", 3)):
        with pytest.raises(lightsr.LightSRError, match="flips"):
            remove_flare(model, lamp_photo, method=method, flips=flips)


def test_an_ensemble_averages_its_models_and_runs_lowres_only(model, lamp_photo):
    """ensemble=: each model's passes are averaged with the others', like the flips. One model that finds
    no flare (it returns the photo) and one that darkens the far corner: the ensemble takes away part of
    what the second alone takes away, whichever model comes first; the ensemble of a model with itself is
    the model alone."""
    darker = lamp_photo.copy()
    darker[:20, :20] = darker[:20, :20] // 2
    keeps = _with_output(model, lamp_photo)
    darkens = _with_output(lightsr.create_model("nf-resunet-flare-test").eval(), darker)
    corner = (slice(0, 16), slice(0, 16))
    alone = lamp_photo[corner].astype(float) - remove_flare(darkens, lamp_photo)[corner]
    assert alone.mean() > 20
    for first, other in ((keeps, darkens), (darkens, keeps)):
        both = lamp_photo[corner].astype(float) - remove_flare(first, lamp_photo, ensemble=[other])[corner]
        assert 0.2 * alone.mean() < both.mean() < 0.8 * alone.mean()
    assert np.array_equal(remove_flare(keeps, lamp_photo, ensemble=[keeps]), remove_flare(keeps, lamp_photo))
    twice = remove_flare(darkens, lamp_photo, ensemble=[darkens]).astype(int)
    assert np.abs(twice - remove_flare(darkens, lamp_photo)).max() <= 1
    with pytest.raises(lightsr.LightSRError, match="lowres method only"):
        remove_flare(keeps, lamp_photo, method="tiled", ensemble=[darkens])
    with pytest.raises(lightsr.LightSRError, match="not super-resolution"):
        remove_flare(keeps, lamp_photo, ensemble=[lightsr.create_model("rdn-test")])


def test_no_flare_means_no_change(model, photo):
    """Where the model finds no flare, the photo comes back exactly: no tone or colour shift."""
    big = np.asarray(Image.fromarray(photo).resize((480, 360)))
    _with_output(model, np.asarray(Image.fromarray(big).resize((128, 96), Image.BOX)))
    assert np.array_equal(remove_flare(model, big, method="lowres", work_size=128), big)
    _with_output(model, photo)
    assert np.array_equal(remove_flare(model, photo, method="lowres"), photo)


@pytest.mark.parametrize("method", ["lowres", "tiled"])
def test_a_photo_without_a_light_source_comes_back_unchanged(model, photo, method):
    """No white-clipped lamp core, no flare: a bright, hazy-looking photo that a model reads as veiling
    glare is returned exactly, as the kind it came in; a 3x3 white core is enough to process it."""
    bright = (200 + photo // 8).astype(np.uint8)  # at most 231: nothing clipped
    bright[10:12, 10:12] = 255  # a 2x2 specular highlight: fewer than SOURCE_PX, not a lamp
    bright[50:60, 60:70] = (255, 255, 200)  # clipped in two channels only: bright, but not white
    assert not has_light_source(bright)
    _with_output(model, (bright * 0.6).astype(np.uint8))  # the model "removes the veiling glare"
    assert np.array_equal(remove_flare(model, bright, method=method), bright)
    pil = remove_flare(model, Image.fromarray(bright), method=method)
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), bright)
    lamp = bright.copy()
    lamp[30:33, 40:43] = 255  # a lamp core: now the model's verdict counts
    assert has_light_source(lamp)
    assert remove_flare(model, lamp, method=method)[0:10, 0:10].mean() < lamp[0:10, 0:10].mean() - 20


def test_clipped_daylight_the_model_keeps_is_left_alone(model, photo):
    """A daytime photo with clipped sky and no flare: where the model keeps the sky, nothing is filled,
    not even the rim around it, and the photo comes back exactly."""
    day = photo.copy()
    day[:20] = 255  # clipped sky along the top
    day[20:24, 10:50] = 255  # and a clipped roof edge below it
    _with_output(model, day)
    assert np.array_equal(remove_flare(model, day, method="lowres"), day)
    assert np.array_equal(remove_flare(model, day, method="lowres", keep_sources=False), day)


def test_lowres_method_matches_size_and_kind(model, lamp_photo):
    big = np.asarray(Image.fromarray(lamp_photo).resize((480, 360)))
    out = remove_flare(model, Image.fromarray(big), method="lowres", work_size=128)
    assert isinstance(out, Image.Image) and out.size == (480, 360)
    tiled = remove_flare(model, big, method="tiled")
    # both remove the same kind of light: means agree within a few levels
    assert abs(np.asarray(out).astype(float).mean() - tiled.astype(float).mean()) < 8


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_a_16_bit_or_float_grey_photo_is_deflared_as_its_8_bit_self(model, lamp_photo, mode):
    """A grey photo of 16 bits (0..65535) or float (0..1) gives what the same photo in 8 bits gives
    (Pillow's own convert("RGB") clips those at 255: the photo came back white)."""
    grey = np.asarray(Image.fromarray(lamp_photo).convert("L"))
    if mode == "F":
        img = Image.fromarray(grey.astype(np.float32) / 255, mode="F")
    else:
        img = Image.fromarray(grey.astype(np.uint16) * 257).convert(mode)
    assert img.mode == mode
    eight = np.asarray(remove_flare(model, Image.fromarray(grey).convert("RGB")))
    out = remove_flare(model, img)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), eight)


@pytest.mark.parametrize("method", ["lowres", "tiled"])
def test_an_alpha_channel_comes_back_as_it_was(model, lamp_photo, method):
    """RGBA in, RGBA out: the alpha untouched, the colour what the RGB photo alone gives."""
    img = Image.fromarray(lamp_photo).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, img.width).astype(np.uint8), (img.height, 1))
    img.putalpha(Image.fromarray(alpha))
    out = remove_flare(model, img, method=method)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)
    rgb = remove_flare(model, lamp_photo, method=method)
    assert np.array_equal(np.asarray(out.convert("RGB")), rgb) and not np.array_equal(rgb, lamp_photo)


def test_mask_and_errors(model, lamp_photo):
    m = light_source_mask(lamp_photo)
    assert m[32, 42] == pytest.approx(1.0, abs=0.05) and m[0, 0] == 0
    not_lamp = np.zeros(lamp_photo.shape[:2], bool)
    assert light_source_mask(lamp_photo, not_lamp).max() == 0
    with pytest.raises(lightsr.LightSRError, match="not super-resolution|flare-removal model"):
        remove_flare(lightsr.create_model("rdn-test"), lamp_photo)
    with pytest.raises(lightsr.LightSRError, match="'lowres' or 'tiled'"):
        remove_flare(model, lamp_photo, method="magic")


@pytest.mark.parametrize("method", ["lowres", "tiled"])
def test_strength_takes_that_share_of_the_flare_in_linear_light(model, lamp_photo, method):
    """strength 0 gives the photo back exactly; 0.5 takes half of what 1 takes, in linear light (the model
    removes a constant 0.05); the lamp stays clipped at every strength."""
    lin = lambda a: (a.astype(np.float64) / 255) ** GAMMA  # noqa: E731
    full = remove_flare(model, lamp_photo, method=method)
    half = remove_flare(model, lamp_photo, method=method, strength=0.5)
    assert np.array_equal(remove_flare(model, lamp_photo, method=method, strength=0), lamp_photo)
    lit = lin(full) > 0.01  # not taken down to black, where the full strength could take no more
    taken_full, taken_half = (lin(lamp_photo)[lit] - lin(out)[lit] for out in (full, half))
    assert taken_full.mean() > 0.02
    assert taken_half.mean() == pytest.approx(0.5 * taken_full.mean(), rel=0.05)
    for out in (full, half):
        assert (out[30:36, 40:46] == 255).all()


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), True, "1"])
def test_a_strength_outside_0_to_1_is_refused(model, lamp_photo, strength):
    with pytest.raises(lightsr.LightSRError, match="strength must be a number from 0 to 1"):
        remove_flare(model, lamp_photo, strength=strength)


def test_cli_deflare(tmp_path, model, lamp_photo):
    model.save_pretrained(tmp_path / "flare")
    Image.fromarray(lamp_photo).save(tmp_path / "in.jpg")
    assert cli.main(["deflare", str(tmp_path / "in.jpg"), str(tmp_path / "out.png"), "--model",
                     str(tmp_path / "flare"), "--method", "lowres"]) == 0
    assert Image.open(tmp_path / "out.png").size == (96, 72)
    # --ensemble: the library's ensemble (a PNG, so that the lamp stays clipped and there is flare to remove)
    lightsr.create_model("pix2pix-flare-test").save_pretrained(tmp_path / "other")
    Image.fromarray(lamp_photo).save(tmp_path / "in.png")
    for out, more in (("one.png", []), ("both.png", ["--ensemble", str(tmp_path / "other")])):
        assert cli.main(["deflare", str(tmp_path / "in.png"), str(tmp_path / out), "--model", str(tmp_path / "flare"),
                         *more]) == 0
    one, both = (np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in ("one.png", "both.png"))
    flare, other = lightsr.load(tmp_path / "flare"), lightsr.load(tmp_path / "other")
    assert np.array_equal(both, remove_flare(flare, lamp_photo, ensemble=[other]))
    assert np.array_equal(one, remove_flare(flare, lamp_photo)) and not np.array_equal(one, both)
    # --strength: the library's; outside 0 to 1, a usage error before any model loads
    assert cli.main(["deflare", str(tmp_path / "in.png"), str(tmp_path / "half.png"), "--model",
                     str(tmp_path / "flare"), "--strength", "0.5"]) == 0
    half = np.asarray(Image.open(tmp_path / "half.png").convert("RGB"))
    assert np.array_equal(half, remove_flare(flare, lamp_photo, strength=0.5)) and not np.array_equal(half, one)
    with pytest.raises(SystemExit) as err:
        cli.main(["deflare", str(tmp_path / "in.png"), str(tmp_path / "x.png"), "--model", "nowhere",
                  "--strength", "2"])
    assert err.value.code == 2 and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("name", ["nf-resunet-flare-test", "pix2pix-flare-test"])
def test_openvino_gives_the_torch_result(name, lamp_photo):
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    m = lightsr.create_model(name).eval()
    with torch.no_grad():  # every branch active: an untrained flare head predicts nothing
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    odd = np.asarray(Image.fromarray(lamp_photo).resize((101, 67)))  # not a multiple of the padding
    for method in ("lowres", "tiled"):
        reference = remove_flare(m, odd, method=method, backend="torch").astype(int)
        compiled = remove_flare(m, odd, method=method, backend="openvino").astype(int)
        assert np.abs(reference - compiled).max() <= 1 and np.abs(reference - odd).max() > 8
    with pytest.raises(lightsr.LightSRError, match="backend must be one of"):
        remove_flare(m, odd, backend="gpu")



def test_lamps_kept_counts_the_lamp_pixels_the_output_keeps_clipped():
    """evaluate_flare's lamps_kept: of the pixels clipped in the target and the input (lamps), the
    share still clipped in the output; the input as output keeps them all; no lamps reads NaN."""
    from lightsr.evaluate import evaluate_flare

    target = np.full((16, 16, 3), 40, np.uint8)
    target[2:4, 2:4] = 255  # a 2x2 lamp
    inp = target.copy()
    inp[1:5, 1:5] = np.maximum(inp[1:5, 1:5], 250)  # its clipped glare disc
    pair = [(inp, target, {"flare": (inp.max(axis=2) - target.max(axis=2)).astype(np.uint8)})]
    dimmed = target.copy()
    dimmed[2:4, 2] = 200  # half the lamp dimmed with its glare
    assert evaluate_flare(pair, [inp]).lamps_kept == 1.0
    assert evaluate_flare(pair, [dimmed]).lamps_kept == 0.5
    # a lamp pixel the input does not show clipped (its rim, softened by JPEG) is not counted: no method can
    # tell it was a lamp, and returning the input still keeps every lamp
    softened = inp.copy()
    softened[3, 2:4] = 230
    assert evaluate_flare([(softened, target, pair[0][2])], [softened]).lamps_kept == 1.0
    assert evaluate_flare([(softened, target, pair[0][2])], [dimmed]).lamps_kept == 0.5  # of the 2 it shows
    none = [(np.full((16, 16, 3), 9, np.uint8),) * 2 + ({"flare": np.zeros((16, 16), np.uint8)},)]
    assert np.isnan(evaluate_flare(none, [none[0][0]]).lamps_kept)


def test_background_psnr_leaves_out_the_lamps_edge_but_not_the_scene_beyond_it():
    """evaluate_flare's background: no flare, and not within LAMP_MARGIN px of a pixel saturated in
    the target. A lamp's soft edge (245, flare layer 0: clipped in the noise-free renders) dimmed
    by the output is not harm to the background; the same change 3 px further out is."""
    from lightsr.evaluate import LAMP_MARGIN, evaluate_flare

    target = np.full((24, 24, 3), 40, np.uint8)
    target[10:14, 10:14] = 255  # the lamp
    target[9, 10:14] = 245  # its anti-aliased edge, under the saturation level
    pair = [(target, target, {"flare": np.zeros((24, 24), np.uint8)})]
    edge = target.copy()
    edge[9, 10:14] = 120
    assert LAMP_MARGIN == 2
    assert evaluate_flare(pair, [edge]).background_psnr == float("inf")
    beyond = target.copy()
    beyond[6, 10:14] = 120  # 4 px from the lamp, 3 from its edge: scene
    assert evaluate_flare(pair, [beyond]).background_psnr < 40


def _lamp_scene(photo):
    """The test photo at 256x192 in linear light with a 4x4 white lamp at (100..104, 200..204), and each
    pixel's distance from the lamp's centre ((192, 256, 1))."""
    scene = (np.asarray(Image.fromarray(photo).resize((256, 192))).astype(np.float32) / 255) ** lightsr.flare.GAMMA
    scene[100:104, 200:204] = 1.0
    yy, xx = np.mgrid[:192, :256]
    return scene, np.hypot(yy - 101.5, xx - 201.5)[..., None]


def _display(lin):
    """Linear light to uint8 display values."""
    return np.round(np.clip(lin, 0, 1) ** (1 / lightsr.flare.GAMMA) * 255).astype(np.uint8)


def test_the_veil_a_model_leaves_is_taken_off_where_it_saw_flare(model, photo):
    """Veiling glare: a lamp's light spread thin over the whole frame. A model that takes off half of
    it leaves the shadows grey; lowres reads what the frame's darkest pixels still hold and takes that
    off too where the model saw flare, tinted like the flare, so the shadows come back near black,
    while the lit scene moves by the same small amount in linear light: the model saw the same flare
    everywhere, so the lit scene's darkest pixels near the lamp are not read as more veil there
    (VEIL_NEAR_SHARE; without it the lit scene lost 2.6 levels on average)."""
    scene, _ = _lamp_scene(photo)
    scene[20:60, 20:60] = 0  # a black shadow
    veil = 0.02 * np.array([1.0, 0.8, 0.5], np.float32)  # linear light, over the whole frame

    flared, half = _display(scene + veil), _display(scene + veil / 2)
    _with_output(model, half)  # the model takes off half the veil
    out = remove_flare(model, flared, rays=False).astype(int)
    shadow = (slice(25, 55), slice(25, 55))
    assert half[shadow].mean() > 25 and out[shadow].mean() < 8  # grey shadows back to near black
    lit = scene.min(axis=2) > 0.1
    assert np.abs(out[lit] - _display(scene)[lit].astype(int)).mean() < 1.5  # the rest as the clean scene
    # a model that takes off all of it: nothing is left to take (the lamp, blended back, aside)
    _with_output(model, _display(scene))
    away = np.ones(scene.shape[:2], bool)
    away[92:112, 192:212] = False
    assert np.abs(remove_flare(model, flared, rays=False).astype(int) - _display(scene))[away].max() <= 1




def test_the_veil_is_read_nearer_the_lamp_where_it_is_stronger(model, photo):
    """Veiling glare falls away from the lamp. Where the model takes off half of it everywhere, a
    shadow next to the lamp is left greyer than one far off; the veil is read in bands of distance from
    the lamp, so the near shadow comes back near black too (the frame's darkest pixels, far off, say
    only how much is left there)."""
    scene, d = _lamp_scene(photo)
    scene[90:114, 150:190] = 0  # a shadow 12 to 50 px left of the lamp
    scene[20:60, 20:60] = 0  # and one far off
    veil = 0.06 * np.array([1.0, 0.8, 0.5], np.float32) / (1 + d / 30)

    flared, half = _display(scene + veil), _display(scene + veil / 2)
    _with_output(model, half)
    out = remove_flare(model, flared, rays=False).astype(int)
    near, far = (slice(92, 112), slice(160, 186)), (slice(25, 55), slice(25, 55))
    assert half[near].mean() > 30 and out[near].mean() < 8  # the near shadow: grey back to near black
    assert out[far].mean() < 8
    lit = scene.min(axis=2) > 0.1
    assert np.abs(out[lit] - _display(scene)[lit].astype(int)).mean() < 1.5


def test_a_hazy_daylight_scene_with_flare_round_one_lamp_keeps_its_haze(model, photo, monkeypatch):
    """Atmospheric haze lifts a daylight scene's darkest pixels as a veil would. Where the model saw flare
    over little of the frame (a glow round one lamp, 10% of it), the haze is the scene's: no veil is read
    (VEIL_SEEN), and the scene comes back as the model left it. Read there (the gate off), the haze within
    the glow was taken off as veil: a tone shift of a photo that has no veiling glare."""
    scene, d = _lamp_scene(photo)
    scene = 0.8 * scene + 0.03  # haze: no pixel darker than 0.03 in linear light
    scene[100:104, 200:204] = 1.0
    glow = 0.3 * np.array([1.0, 0.8, 0.5], np.float32) / (1 + (d / 4) ** 2)
    flared = _display(scene + glow)
    seen = (flared.astype(np.float32) / 255) ** lightsr.flare.GAMMA - (_display(scene) / 255) ** lightsr.flare.GAMMA
    assert 0.05 < (seen.max(axis=2) >= lightsr.flare.VEIL_FROM).mean() < lightsr.flare.VEIL_SEEN[0]

    _with_output(model, _display(scene))
    away = np.broadcast_to(d[..., 0] > 12, scene.shape[:2])  # beyond the lamp and its blended-back edge
    clean = _display(scene).astype(int)
    assert np.abs(remove_flare(model, flared, rays=False).astype(int) - clean)[away].max() <= 1
    monkeypatch.setattr(lightsr.flare, "VEIL_SEEN", (0.0, 1e-6))
    assert (remove_flare(model, flared, rays=False).astype(int) - clean)[away].min() < -3


def test_a_lit_scene_round_a_lamp_is_no_veil(model, photo, monkeypatch):
    """A lamp in a lit scene, its glow taken off by the model entirely, near-black shadows only further
    out: the lit scene's darkest pixels next to the lamp are the scene, not veil, since the veil cannot
    fall faster than VEIL_FALL from one band to the next. Nothing more is taken off beyond the lamp's
    first few bands (it was, up to VEIL_CAP, without that bound)."""
    scene, d = _lamp_scene(photo)
    scene = np.where(d < 60, np.maximum(scene, 0.05), scene)  # lit round the lamp: no dark pixel
    scene[:, :90] = (1 / 255) ** lightsr.flare.GAMMA  # the dark street further off: one level above black
    glow = 0.3 * np.array([1.0, 0.8, 0.5], np.float32) / (1 + (d / 8) ** 2)

    _with_output(model, _display(scene))
    away = np.broadcast_to(d[..., 0] > 20, scene.shape[:2])
    clean = _display(scene).astype(int)
    assert np.abs(remove_flare(model, _display(scene + glow), rays=False).astype(int) - clean)[away].max() <= 1
    monkeypatch.setattr(lightsr.flare, "VEIL_FALL", 1e6)
    assert (remove_flare(model, _display(scene + glow), rays=False).astype(int) - clean)[away].min() < -3
