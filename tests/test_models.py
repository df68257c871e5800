"""Every registered variant: tensor contract, any size, tiling; plus architecture-specific facts."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import TEST_VARIANTS

import lightsr
from lightsr.models.nf_resunet import ScaledStdConv2d, activation_gamma, adaptive_gradient_clip
from lightsr.registry import MODELS


@pytest.mark.parametrize("name", TEST_VARIANTS + ["rdn-tiny"])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (33, 20)])
def test_forward_contract_any_size(name, size):
    model = lightsr.create_model(name).eval()
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        y = model(x)
    s = model.scale
    assert y.shape == (2, 3, s * size[0], s * size[1])
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", ["rdn", "rdn-light", "pix2pix", "nf-resunet"])
def test_full_size_variants_run(name):
    model = lightsr.create_model(name).eval()
    with torch.inference_mode():
        y = model(torch.rand(1, 3, 9, 11))
    assert y.shape == (1, 3, 9 * model.scale, 11 * model.scale) and torch.isfinite(y).all()


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 3, 0, 8),
                                 torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)])
def test_contract_violations_name_the_shape(bad):
    model = lightsr.create_model("rdn-test")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)|floating point"):
        model(bad)


@pytest.mark.parametrize("name", list(MODELS))
def test_tiled_equals_untiled(name):
    """Tiles with the model's own overlap reproduce the whole-image result within 1/255."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = lightsr.create_model(name).eval()
    if name == "rdn":
        # The paper's RDN (receptive field 133 px, 44 TFLOPs per megapixel) is too heavy to
        # tile at its full overlap on a CPU test budget; it is checked with the overlap capped.
        h, w, tile, overlap = 56, 48, 24, 24
    else:
        tile = max(32, model.tile_overlap())
        overlap = min(model.tile_overlap(), tile)
        h, w = 2 * tile + 16, 2 * tile + 8  # a 3 x 3 grid of tiles
    img = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(img).resize((w, h)))  # smooth content
    whole = lightsr.enhance(model, img, tile=None).astype(int)
    tiled = lightsr.enhance(model, img, tile=tile, overlap=overlap).astype(int)
    assert np.abs(whole - tiled).max() <= 1


def test_registry_order_overrides_and_errors():
    names = lightsr.list_models()
    assert names[:3] == ["rdn", "rdn-light", "rdn-tiny"]
    assert {"pix2pix", "nf-resunet", "rdn-test", "pix2pix-test", "nf-resunet-test"} <= set(names)
    assert lightsr.create_model("rdn-tiny", scale=4).scale == 4
    assert lightsr.create_model("rdn-tiny", scale=4, upsampler="transpose").config.upsampler == "transpose"
    with pytest.raises(lightsr.LightSRError, match="unknown model 'edsr'; valid names: rdn, rdn-light"):
        lightsr.create_model("edsr")
    with pytest.raises(lightsr.LightSRError, match="no config field colour"):
        lightsr.create_model("rdn", colour=True)
    with pytest.raises(lightsr.LightSRError, match="scale must be 2, 3 or 4"):
        lightsr.create_model("rdn-tiny", scale=5)


def test_describe_counts_parameters_and_flops():
    d = lightsr.describe(lightsr.create_model("rdn"))
    assert 21e6 < d["parameters"] < 23e6  # the paper's RDN has about 22M parameters
    # a conv net does about 2 FLOPs per parameter per pixel (at LR resolution, most layers)
    assert 0.8 < d["gflops_per_megapixel"] * 1e9 / 1e6 / (2 * d["parameters"]) < 1.2
    assert 50e6 < lightsr.describe(lightsr.create_model("pix2pix"))["parameters"] < 58e6  # unet_256: ~54M


def test_inference_parameters_count_fused_blocks():
    """Re-parameterisable models are counted as they run: ECBSR's five-branch blocks are single 3x3 convs."""
    from lightsr.registry import count_inference_parameters

    ecbsr = lightsr.create_model("ecbsr-m4c16", scale=2)
    c = 16
    convs = (3 * c * 9 + c) + 4 * (c * c * 9 + c) + (c * 12 * 9 + 12)
    prelu = 5 * c
    assert count_inference_parameters(ecbsr) == convs + prelu
    assert count_inference_parameters(ecbsr) < sum(p.numel() for p in ecbsr.parameters())
    rdn = lightsr.create_model("rdn-tiny")  # nothing to fuse: every stored parameter runs
    assert count_inference_parameters(rdn) == sum(p.numel() for p in rdn.parameters())
    assert lightsr.describe(ecbsr)["inference_parameters"] == convs + prelu


# -- SPAN ------------------------------------------------------------------------------------------
def test_span_s_stays_within_the_300k_parameter_budget_and_starts_near_nearest_upsampling():
    from lightsr.registry import count_inference_parameters

    for scale in (2, 4):
        model = lightsr.create_model("span-s", scale=scale)
        assert 250_000 < count_inference_parameters(model) <= 300_000
    torch.manual_seed(0)
    model = lightsr.create_model("span-test", scale=2)
    with torch.no_grad():  # silence the learned part: the anchor alone is nearest-neighbour upsampling
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    x = torch.rand(1, 3, 6, 5)
    nearest = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert torch.allclose(model.eval()(x), nearest, atol=1e-6)
    paper = lightsr.create_model("span-test", scale=2, anchor=False)
    with torch.no_grad():
        paper.tail.weight.zero_()
        paper.tail.bias.zero_()
    assert torch.count_nonzero(paper.eval()(x)) == 0


# -- RDN -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("upsampler", ["subpixel", "transpose"])
def test_rdn_scales_and_no_checkerboard_at_init(scale, upsampler):
    """A flat input gives a flat output interior at init: no periodic pattern from the upsampler."""
    model = lightsr.create_model("rdn-test", scale=scale, upsampler=upsampler, image_residual=False)
    model.train()  # no output clamp, so the raw values are compared
    x = torch.full((1, 3, 32, 32), 0.5)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 32 * scale, 32 * scale)
    interior = y[..., 12 * scale:-12 * scale, 12 * scale:-12 * scale]  # beyond the zero-padding reach
    # every sub-pixel phase carries the same value when there is no checkerboard
    phases = torch.stack([interior[..., i::scale, j::scale].mean() for i in range(scale) for j in range(scale)])
    assert (phases.max() - phases.min()).abs() < 1e-4
    assert interior.std(dim=(-2, -1)).max() < 1e-4  # flat within each channel


# -- NF-ResUNet ------------------------------------------------------------------------------------
def test_activation_gamma_matches_nfnet_constants():
    assert activation_gamma("relu") == pytest.approx(1 / math.sqrt(0.5 - 1 / (2 * math.pi)), abs=1e-6)
    # timm's nfnet.py constants, themselves estimated by sampling
    assert activation_gamma("silu") == pytest.approx(1.7881293296813965, abs=2e-3)
    assert activation_gamma("gelu") == pytest.approx(1.7015043497085571, abs=2e-3)


def test_scaled_ws_conv_preserves_unit_variance():
    torch.manual_seed(0)
    conv = ScaledStdConv2d(64, 64, 3)
    w = conv.standardized_weight()
    assert w.mean(dim=(1, 2, 3)).abs().max() < 1e-5
    assert (w.var(dim=(1, 2, 3), unbiased=False) * w[0].numel()).sub(1).abs().max() < 1e-3
    x = torch.randn(4, 64, 32, 32)
    assert conv(x)[..., 1:-1, 1:-1].std().item() == pytest.approx(1.0, abs=0.1)


def test_nf_resunet_is_the_identity_at_init():
    model = lightsr.create_model("nf-resunet-test").eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.inference_mode():
        assert torch.allclose(model(x), x)


def test_nf_resunet_bilinear_decoder_is_a_saved_config_choice(tmp_path):
    nearest = lightsr.create_model("nf-resunet-test")
    torch.nn.init.normal_(nearest.head.weight, std=0.1)  # leave the identity, so the decoder shows
    bilinear = lightsr.create_model("nf-resunet-test", upsample="bilinear")
    bilinear.load_state_dict(nearest.state_dict())  # same parameters: a fine-tune can start from either
    x = torch.rand(1, 3, 20, 28)
    with torch.inference_mode():
        assert not torch.allclose(nearest.eval()(x), bilinear.eval()(x))
    bilinear.save_pretrained(tmp_path / "m")
    loaded = lightsr.load(tmp_path / "m")
    assert loaded.config.upsample == "bilinear"
    with torch.inference_mode():
        assert torch.equal(loaded(x), bilinear(x))
    with pytest.raises(ValueError, match="upsample must be"):
        lightsr.create_model("nf-resunet-test", upsample="bicubic")


def test_agc_clips_unitwise_and_skips_the_final_layer():
    model = lightsr.create_model("nf-resunet-test")
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e3)  # an explosive gradient everywhere
    head_before = model.head.weight.grad.clone()
    adaptive_gradient_clip(model.agc_parameters(), clip=0.01)
    assert torch.equal(model.head.weight.grad, head_before)  # final layer excluded
    conv = model.stem
    w_norm = conv.weight.detach().flatten(1).norm(dim=1).clamp(min=1e-3)
    g_norm = conv.weight.grad.flatten(1).norm(dim=1)
    assert torch.allclose(g_norm, 0.01 * w_norm, rtol=1e-4)
    # a gradient already under the threshold is left alone
    small = torch.nn.Parameter(torch.ones(4, 2, 3, 3))
    small.grad = torch.full_like(small, 1e-5)
    adaptive_gradient_clip([small], clip=0.01)
    assert torch.equal(small.grad, torch.full_like(small, 1e-5))


def test_nf_resunet_signal_propagation_stays_bounded():
    """Without normalisation, activations neither explode nor vanish through the U-Net."""
    model = lightsr.create_model("nf-resunet")
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:  # skip gains: open the residual branches
                p.fill_(1.0)
    stds = []
    hook = lambda m, i, o: stds.append(o.std().item())  # noqa: E731
    for blocks in list(model.encoders) + list(model.decoders):
        for b in blocks:
            b.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert all(0.1 < s < 10 for s in stds), stds
    assert not any(math.isnan(s) for s in stds)


def test_rdn_with_image_residual_starts_as_bilinear():
    model = lightsr.create_model("rdn-tiny").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        assert torch.allclose(model(x), expected.clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("name, scale, weight", [
    ("ecbsr-test", 2, "tail.conv3.bias"), ("ecbsr-test", 3, "tail.conv3.bias"), ("ecbsr-test", 4, "tail.conv3.bias"),
    ("ecbsr-y-test", 2, "tail.conv3.bias"), ("ecbsr-y-test", 4, "tail.conv3.bias"),
    ("span-test", 2, "blocks.0.c3.skip.bias"), ("span-test", 4, "blocks.0.c3.skip.bias")])
def test_fused_inference_equals_the_training_branches(name, scale, weight):
    """Re-parameterisation is exact, borders included: eval (one 3x3 conv per block) == train
    (ECBSR's five branches; SPAN's 1x1 -> 3x3 -> 1x1 plus a 1x1 skip)."""
    torch.manual_seed(0)
    model = lightsr.create_model(name, scale=scale, **({"gain": 2} if name.startswith("span") else {}))
    with torch.no_grad():  # make every branch matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.rand(2, 3, 13, 17)
    model.train()
    with torch.no_grad():
        branches = model(x).clamp(0, 1)
    model.eval()
    with torch.no_grad():
        fused = model(x)
    assert fused.shape == (2, 3, 13 * scale, 17 * scale)
    assert torch.allclose(branches, fused, atol=1e-5)
    with torch.no_grad():  # a weight changed in place in eval mode (as an EMA update does): no stale fusion
        model.get_parameter(weight).add_(0.2)
        changed = model(x)
        assert not torch.allclose(changed, fused, atol=1e-3)
        model.train()
        model.eval()  # a mode switch alone keeps the fusion: the output is the same
        assert torch.equal(model(x), changed)


@pytest.mark.parametrize("name", ["nf-resunet-flare-test", "pix2pix-flare-test"])
def test_flare_output_models_predict_a_linear_flare_layer(name):
    """output="flare": the head predicts the flare layer F in linear light, the image is the input
    minus F; untrained, F is 0 and the model is the identity (the no-op baseline)."""
    from lightsr.models._common import from_linear, to_linear

    model = lightsr.create_model(name).eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        clean, flare = model.forward_with_flare(x)
        assert torch.equal(flare, torch.zeros_like(flare)) and torch.allclose(clean, x, atol=1e-5)
        for p in model.parameters():  # any weights: the image is always the input minus the flare
            p.add_(0.05 * torch.randn_like(p))
        clean, flare = model.forward_with_flare(x)
        assert flare.abs().max() > 0 and torch.allclose(model(x), clean)
        assert torch.allclose(clean, from_linear(to_linear(x) - flare), atol=1e-6)
        assert clean.min() >= 0 and clean.max() <= 1


def test_flare_folders_saved_before_the_output_field_load_as_image_models(tmp_path):
    model = lightsr.create_model("nf-resunet-test").eval()
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    config.pop("output")
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = lightsr.load(tmp_path / "old")
    assert loaded.config.output == "image"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_nf_weight_scale_reset_keeps_outputs_and_sets_a_normal_raw_scale():
    """Standardized convs are scale-invariant in the forward pass, but Adam's relative step is lr / |w|:
    raw weights at std 1 learn sqrt(fan_in) times slower than a plain conv. The reset fixes that
    without changing what the model computes."""
    model = lightsr.create_model("nf-resunet-test").eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ScaledStdConv2d):
                m.weight.normal_()  # how these layers used to be initialised
        torch.nn.init.normal_(model.head.weight, std=0.1)
        x = torch.rand(1, 3, 24, 24)
        before = model(x)
        model.reset_weight_scale()
        assert torch.allclose(model(x), before, atol=1e-5)
    std = model.stem.weight.detach().std(dim=(1, 2, 3), unbiased=False)
    assert torch.allclose(std, torch.full_like(std, 27**-0.5), rtol=1e-4)


def test_luma_ecbsr_super_resolves_luma_and_upsamples_colour_bicubically():
    """colors=1 (the paper's own setting): the network sees luma alone, the output's BT.601 luma is the
    network's, and its colour (R-Y, G-Y, B-Y) is the input's, upsampled bicubically."""
    torch.manual_seed(0)
    model = lightsr.create_model("ecbsr-y-test", scale=2).train()  # training mode: no clamp at [0, 1]
    assert model.body[0].conv3.in_channels == 1 and model.tail.conv3.out_channels == 4
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        x = torch.rand(1, 3, 12, 10)
        y = model(x)
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        luma_in, luma_out = (x * weights).sum(1, keepdim=True), (y * weights).sum(1, keepdim=True)
        colour = torch.nn.functional.interpolate(x - luma_in, scale_factor=2, mode="bicubic", align_corners=False)
        assert torch.allclose(y - luma_out, colour, atol=1e-5)
        # a grey input stays grey: the colour path adds nothing, and the network decides the luma alone
        grey = x.mean(1, keepdim=True).expand(1, 3, 12, 10)
        out = model(grey)
        assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)
        assert not torch.allclose(luma_out, torch.nn.functional.interpolate(luma_in, scale_factor=2), atol=1e-3)
    with pytest.raises(ValueError, match="colors must be 1"):
        lightsr.create_model("ecbsr-test", colors=2)
