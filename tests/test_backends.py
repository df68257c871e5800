"""lightsr.backends: OpenVINO equals PyTorch, tiles still match, and failures fall back cleanly."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import lightsr
from lightsr import backends, zoo
from lightsr.inference import enhance

pytest.importorskip("openvino")


def _trained_like(name: str, scale: int = 2):
    """A test variant with every branch active (an untrained model is too close to its anchor)."""
    torch.manual_seed(0)
    model = lightsr.create_model(name, scale=scale)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("name", ["span-test", "ecbsr-test", "ecbsr-y-test", "rdn-test"])
def test_openvino_fp32_equals_torch(name, photo):
    model = _trained_like(name)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    net = backends.runner(model, "openvino")
    assert isinstance(net, backends.OpenVINOModel)
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-4)
    # through enhance, any size (dynamic shapes), tiled: within 1/255 of the untiled torch result
    reference = enhance(model, photo, tile=None, backend="torch").astype(int)
    tiled = enhance(model, photo, tile=32, backend="openvino").astype(int)
    assert np.abs(reference - tiled).max() <= 1
    assert backends.runner(model, "openvino") is net  # compiled once per model, reused


@pytest.mark.parametrize("name", ["ecbsr-test", "nf-resunet-flare-test"])
def test_uint8_frames_equal_the_rounded_float_output(name, photo):
    """frames() (video's path: uint8 in and out, scaling and rounding inside the graph) gives what
    the float path rounds to, but for the odd value on a rounding edge; its outputs are its own."""
    if name.startswith("nf"):  # no scale argument: a flare model is 1x
        torch.manual_seed(0)
        model = lightsr.create_model(name).eval()
    else:
        model = _trained_like(name)
    net = backends.runner(model, "openvino")
    batch = np.stack([photo[:40, :56], photo[-40:, -56:]])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = model(x).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    first = net.frames(batch)
    assert first.dtype == np.uint8 and first.shape == expected.shape and first.flags.c_contiguous
    diff = np.abs(first.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    kept = first.copy()
    net.frames(batch[::-1].copy())  # the request reuses its buffers: an earlier result must not change
    assert np.array_equal(first, kept)
    # planar (video's layout: no transpose on either side): the same frames, (N, 3, H, W)
    planar = net.frames(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), layout="NCHW")
    assert planar.flags.c_contiguous and np.array_equal(planar.transpose(0, 2, 3, 1), first)
    with pytest.raises(lightsr.LightSRError, match="uint8"):
        net.frames(batch.astype(np.float32))
    with pytest.raises(lightsr.LightSRError, match=r"N, 3, H, W"):
        net.frames(batch, layout="NCHW")  # NHWC frames where planes were promised
    with pytest.raises(lightsr.LightSRError, match="layout"):
        net.frames(batch, layout="HWC")


@pytest.mark.parametrize("name", ["ecbsr-test", "span-test", "rdn-test"])
def test_traced_pixel_shuffle_becomes_one_depth_to_space(name):
    """The converter traces pixel_shuffle as Reshape, Transpose, Reshape; the compiled graph holds
    OpenVINO's DepthToSpace instead (half the time, measured), and the output is unchanged
    (test_openvino_fp32_equals_torch checks the values)."""
    model = _trained_like(name)
    net = backends.runner(model, "openvino")
    ops = net._graph.get_ordered_ops()
    assert sum(op.get_type_name() == "DepthToSpace" for op in ops) >= 1
    assert not any(op.get_type_name() == "Transpose" and "pixel_shuffle" in op.get_friendly_name() for op in ops)
    fresh = backends.convert_openvino(model)  # what was traced: the pattern the rewrite replaces
    assert any(op.get_type_name() == "Transpose" and "pixel_shuffle" in op.get_friendly_name()
               for op in fresh.get_ordered_ops())


def test_weight_change_recompiles_and_the_graph_cache_is_reused(monkeypatch):
    model = _trained_like("span-test")
    x = torch.rand(1, 3, 9, 11)
    first = backends.runner(model, "openvino")
    with torch.no_grad():
        model.tail.bias.add_(0.1)
        second = backends.runner(model, "openvino")
        assert second is not first and first not in backends._live.values()  # the stale one is dropped
        assert (second(x) - model(x)).abs().max() < 1e-4, (second(x) - model(x)).abs().max()
    backends._compiled.clear()
    monkeypatch.setattr(backends, "convert_openvino", lambda *a: pytest.fail("converted again"))
    third = backends.runner(model, "openvino")  # the same weights: read from the on-disk graph cache
    with torch.no_grad():
        assert torch.allclose(third(x), model(x), atol=1e-4)


def test_the_first_use_runs_the_graph_later_uses_read_from_the_cache(monkeypatch, tmp_path):
    """A photo gives the same result on its first OpenVINO run (just converted) as on every later one
    (the graph read from the on-disk cache): the converter's in-memory graph of the shipped NF-ResUNet
    compiles to different numbers (1.6e-6 apart) from the same graph saved and read back."""
    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    model = lightsr.LightSRModel.from_pretrained(zoo.CHECKPOINTS / "nf-resunet-flare").eval()
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    first = backends.OpenVINOModel(model)(x)
    assert len(list(tmp_path.glob("*.xml"))) == 1
    monkeypatch.setattr(backends, "convert_openvino", lambda *a: pytest.fail("converted again"))
    assert torch.equal(backends.OpenVINOModel(model)(x), first)


def test_at_most_keep_compilations_live_and_an_evicted_one_compiles_again(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    monkeypatch.setattr(backends, "KEEP", 2)
    backends._live.clear()
    models = [_trained_like(name) for name in ("ecbsr-test", "span-test", "rdn-test")]
    x = torch.rand(1, 3, 9, 11)
    first = [backends.runner(m, "openvino") for m in models]
    assert len(backends._live) == 2 and first[0] not in backends._live.values()  # the oldest went
    monkeypatch.setattr(backends, "convert_openvino", lambda *a: pytest.fail("converted again"))
    again = backends.runner(models[0], "openvino")  # compiled again, from the on-disk graph
    assert again is not first[0] and len(backends._live) == 2
    with torch.no_grad():
        assert torch.allclose(again(x), models[0](x), atol=1e-4)
        assert torch.allclose(first[0](x), models[0](x), atol=1e-4)  # a caller's reference still runs


def test_selection_errors_and_fallback(monkeypatch, caplog):
    model = _trained_like("ecbsr-test")
    assert backends.runner(model, "torch") is model
    with pytest.raises(lightsr.LightSRError, match="backend must be one of auto, torch, openvino"):
        backends.runner(model, "tensorrt")
    monkeypatch.setenv("LIGHTSR_BACKEND", "openvino")
    assert isinstance(backends.runner(model, None), backends.OpenVINOModel)  # None reads the environment
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    assert backends.runner(model, "auto") is model  # not installed: auto is PyTorch
    with pytest.raises(lightsr.LightSRError, match="pip install openvino"):
        backends.runner(model, "openvino")
    monkeypatch.undo()

    def broken(*_):
        raise RuntimeError("unsupported operation aten::something\nmore detail")

    other = _trained_like("rdn-test")
    monkeypatch.setattr(backends, "convert_openvino", broken)
    monkeypatch.setattr(backends, "_graph_dir", lambda: backends.Path(__import__("tempfile").mkdtemp()))
    with caplog.at_level(logging.WARNING, logger="lightsr.backends"):
        assert backends.runner(other, "openvino") is other  # one warning line, then PyTorch
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "running it with PyTorch" in lines[0] and "\n" not in lines[0]


def test_auto_takes_the_faster_backend_per_model_and_remembers_it(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    fast_torch, fast_openvino = _trained_like("rdn-test"), _trained_like("span-test")
    timed = []

    def probe(model, compiled, lower=None):
        timed.append(model.architecture)
        times = {"torch": 0.01, "openvino": 0.02} if model is fast_torch else {"torch": 0.02, "openvino": 0.01}
        return {**times, **{p: 1.0 for p in lower or {}}}  # bf16 / int8 (where this machine has them): slower

    monkeypatch.setattr(backends, "probe_times", probe)
    assert backends.runner(fast_torch, "auto") is fast_torch
    assert isinstance(backends.runner(fast_openvino, "auto"), backends.OpenVINOModel)
    assert isinstance(backends.runner(fast_torch, "openvino"), backends.OpenVINOModel)  # asked for: given
    assert backends.runner(fast_torch, "auto") is fast_torch and timed == ["rdn", "span"]  # timed once
    # a new process reads the choice from beside the cached graph, per precision and thread count
    backends._compiled.clear()
    monkeypatch.setattr(backends, "probe_times", lambda *a: pytest.fail("timed again"))
    assert backends.runner(fast_torch, "auto") is fast_torch
    assert isinstance(backends.runner(fast_openvino, "auto"), backends.OpenVINOModel)
    assert sorted(backends.auto_record(m)["choice"] for m in (fast_torch, fast_openvino)) == ["fp32", "torch"]


class _FakeLower:
    """Stands in for a lower-precision compilation on any machine: the fp32 graph's output plus
    seeded noise of ``error``."""

    def __init__(self, fp32, precision, error):
        self.fp32, self.precision, self.error, self.graph_path = fp32, precision, error, fp32.graph_path

    def __call__(self, x):
        out = self.fp32(x)
        return out + self.error * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("lower", ["bf16", "int8"])
@pytest.mark.parametrize("error, lower_time, expected", [
    (1e-4, 0.005, "lower"),  # faster and within 56 dB of fp32 (about 80 dB here): taken
    (1e-2, 0.005, "fp32"),  # faster but off by about 40 dB: a model would lose more than 0.05 dB, not taken
    (1e-4, 0.0095, "fp32"),  # accurate but only 5% faster than fp32: not worth the difference
])
def test_auto_takes_a_lower_precision_only_where_faster_and_accurate(monkeypatch, tmp_path, lower, error,
                                                                      lower_time, expected):
    expected = lower if expected == "lower" else expected
    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    monkeypatch.setattr(backends, "bf16_supported", lambda: lower == "bf16")
    monkeypatch.setattr(backends, "int8_available", lambda: lower == "int8")
    real = backends._compiled_model

    def compiled_model(model, per_model, precision, version):
        if precision != "fp32":
            return _FakeLower(real(model, per_model, "fp32", version), precision, error)
        return real(model, per_model, precision, version)

    monkeypatch.setattr(backends, "_compiled_model", compiled_model)
    monkeypatch.setattr(backends, "probe_times", lambda m, c, low=None: {"torch": 0.02, "openvino": 0.01,
                                                                          **{p: lower_time for p in low or {}}})
    model = _trained_like("ecbsr-test")
    net = backends.runner(model, "auto")
    assert net.precision == expected
    choice = backends.auto_record(model)
    assert choice["choice"] == expected and (choice[f"{lower}_agreement_db"] >= 56) == (error < 1e-3), choice
    # precision="fp32" never weighs a lower one; backend="openvino" is fp32 unless another is asked for
    assert backends.runner(model, "auto", precision="fp32").precision == "fp32"
    assert backends.runner(model, "openvino").precision == "fp32"
    with pytest.raises(lightsr.LightSRError, match="precision must be one of fp32, bf16, int8"):
        backends.runner(model, "auto", precision="fp16")


@pytest.mark.parametrize("bf16, int8", [(True, True), (False, True), (True, False)])
def test_auto_weighs_lower_precisions_for_super_resolution_only(monkeypatch, bf16, int8):
    """Lower precisions are checked on daylight photo squares: a flare model's clipped lamps and glare,
    where remove_flare thresholds its output, are not in them, so a flare model stays in fp32."""
    monkeypatch.setattr(backends, "int8_available", lambda: int8)
    monkeypatch.setattr(backends, "bf16_supported", lambda: bf16)
    expected = ["bf16"] * bf16 + ["int8"] * int8
    assert backends._lower_precisions(_trained_like("ecbsr-test"), None) == expected
    for flare in ("nf-resunet-flare-test", "pix2pix-flare-test"):
        assert backends._lower_precisions(lightsr.create_model(flare), None) == []
    assert backends._lower_precisions(_trained_like("ecbsr-test"), "fp32") == []


def test_auto_never_runs_a_flare_model_at_a_lower_precision(monkeypatch, tmp_path):
    """Even where bf16 would be faster and agree with fp32 on the squares, auto runs a flare model in
    fp32 (or PyTorch); asked for, bf16 is still given."""
    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    monkeypatch.setattr(backends, "bf16_supported", lambda: True)
    monkeypatch.setattr(backends, "int8_available", lambda: True)
    real = backends._compiled_model
    asked = []

    def compiled_model(model, per_model, precision, version):
        asked.append(precision)
        if precision != "fp32":
            return _FakeLower(real(model, per_model, "fp32", version), precision, 1e-5)
        return real(model, per_model, precision, version)

    monkeypatch.setattr(backends, "_compiled_model", compiled_model)
    monkeypatch.setattr(backends, "probe_times", lambda m, c, low=None: {"torch": 0.02, "openvino": 0.01,
                                                                          **{p: 0.001 for p in low or {}}})
    flare = lightsr.create_model("pix2pix-flare-test").eval()
    assert backends.runner(flare, "auto").precision == "fp32" and set(asked) == {"fp32"}
    assert backends.auto_record(flare)["choice"] == "fp32"
    assert backends.runner(flare, "openvino", precision="bf16").precision == "bf16"


def test_probe_times_both_backends_and_the_cache_lets_models_go():
    import gc
    import weakref

    model = _trained_like("ecbsr-test")
    times = backends.probe_times(model, backends.runner(model, "openvino"))
    assert set(times) == {"torch", "openvino"} and all(0 < t < 10 for t in times.values())
    backends.runner(model, "auto")
    assert model in backends._compiled
    alive = weakref.ref(model)
    del model
    gc.collect()  # the compiled-model cache holds models weakly: nothing in it refers back to the model
    assert alive() is None


def test_bf16_where_the_cpu_has_it(photo):
    import openvino as ov

    model = _trained_like("span-test")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(lightsr.LightSRError, match="does not report bf16"):
            backends.OpenVINOModel(model, precision="bf16")
        pytest.skip("this CPU has no bf16")
    net = backends.OpenVINOModel(model, precision="bf16")
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        assert (net(x).clamp(0, 1) - model(x).clamp(0, 1)).abs().max() <= 2 / 255


def test_int8_keeps_the_image_ends_in_fp32_and_quantizes_once(monkeypatch, tmp_path, photo):
    nncf = pytest.importorskip("nncf")
    import openvino as ov

    monkeypatch.setattr(backends, "_graph_dir", lambda: tmp_path)
    model = _trained_like("rdn-test")
    fp32 = backends.OpenVINOModel(model)
    net = backends.OpenVINOModel(model, precision="int8")
    convs = [op for op in ov.Core().read_model(str(fp32.graph_path)).get_ordered_ops()
             if op.get_type_name() == "Convolution"]
    (quantized,) = tmp_path.glob("*.int8-*.xml")
    keep = set(backends.fp32_ends(ov.Core().read_model(str(fp32.graph_path))))
    assert {convs[0].get_friendly_name(), convs[-1].get_friendly_name()} <= keep  # reads and writes the image
    # a convolution in int8 has quantized weights (int8 constants, scaled): not a plain fp32 Constant
    int8 = {op.get_friendly_name(): op.input_value(1).get_node().get_type_name() != "Constant"
            for op in ov.Core().read_model(str(quantized)).get_ordered_ops() if op.get_type_name() == "Convolution"}
    assert not int8[convs[0].get_friendly_name()] and not int8[convs[-1].get_friendly_name()]
    assert sum(int8.values()) == len(convs) - 2, int8  # every other one runs in int8
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    mse = float(((net(x).clamp(0, 1) - fp32(x).clamp(0, 1)) ** 2).mean())
    assert 10 * np.log10(1 / mse) >= 40, mse  # on a real image, close to fp32; not equal
    assert backends.agreement(model, fp32, net) < 99
    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: pytest.fail("quantized again"))
    again = backends.OpenVINOModel(model, precision="int8")  # read from the cache beside the graph
    assert torch.equal(again(x), net(x))
    monkeypatch.setattr(backends, "int8_available", lambda: False)
    with pytest.raises(lightsr.LightSRError, match="needs NNCF"):
        backends.OpenVINOModel(model, precision="int8")


def test_int8_keeps_a_luma_models_colour_path_in_fp32():
    """Everything between the image and the first convolutions stays fp32: for a luma ECBSR, the colour
    difference (RGB minus luma) and its edge pad before the bicubic filters (quantized, they cost the
    shipped luma model 0.55 dB on Set5)."""
    graph = backends.convert_openvino(lightsr.create_model("ecbsr-y-test").eval())
    keep = set(backends.fp32_ends(graph))
    ops = {op.get_friendly_name(): op.get_type_name() for op in graph.get_ordered_ops()}
    pre = {name for name, kind in ops.items() if kind in ("Subtract", "Pad")}
    assert pre and pre <= keep
    assert {name for name, kind in ops.items() if kind == "GroupConvolution"} <= keep  # the bicubic filters


def test_evaluate_sr_measures_the_runner_it_is_given():
    """evaluate_sr(net=...) scores that callable (how bench_backends measures bf16), not the backend's."""
    from conftest import DATA

    from lightsr.evaluate import evaluate_sr

    model = _trained_like("ecbsr-test")
    images = sorted((DATA / "sr-bench" / "Set5").iterdir())[:2]
    reference = evaluate_sr(model, images)
    assert evaluate_sr(model, images, net=model).psnr == reference.psnr
    darker = evaluate_sr(model, images, net=lambda x: model(x) * 0.5)
    assert darker.psnr < reference.psnr - 3 and darker.bicubic_psnr == reference.bicubic_psnr


def test_video_runs_on_the_backend(tmp_path):
    from media import make_clip

    from lightsr.video import upscale_video

    model = _trained_like("ecbsr-test")
    make_clip(tmp_path / "in.mp4", frames=4, audio=None)
    upscale_video(tmp_path / "in.mp4", tmp_path / "a.mp4", model, backend="openvino")
    upscale_video(tmp_path / "in.mp4", tmp_path / "b.mp4", model, backend="torch")
    with pytest.raises(lightsr.LightSRError, match="backend must be one of"):
        upscale_video(tmp_path / "in.mp4", tmp_path / "c.mp4", model, backend="gpu")
    assert not (tmp_path / "c.mp4").exists()
    from lightsr.video import sample_frames

    a = [np.asarray(f.convert("RGB"), dtype=int) for f in sample_frames(tmp_path / "a.mp4", every_frames=1)]
    b = [np.asarray(f.convert("RGB"), dtype=int) for f in sample_frames(tmp_path / "b.mp4", every_frames=1)]
    assert len(a) == len(b) == 4 and max(np.abs(x - y).max() for x, y in zip(a, b)) <= 2  # x264 may round apart
    Image.fromarray(a[0].astype(np.uint8))  # decodable frames


def test_cli_backend_flag(tmp_path, photo):
    from lightsr import cli

    model = _trained_like("span-test")
    model.save_pretrained(tmp_path / "m")
    Image.fromarray(photo).save(tmp_path / "in.png")
    for b in ("torch", "openvino"):
        assert cli.main(["upscale", str(tmp_path / "in.png"), str(tmp_path / f"{b}.png"), "--model",
                         str(tmp_path / "m"), "--backend", b]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=int) for n in ("torch", "openvino"))
    assert a.shape == b.shape == (144, 192, 3) and np.abs(a - b).max() <= 1


def test_decline_telemetry_records_no_where_nobody_chose_and_keeps_a_choice(monkeypatch, tmp_path):
    """The app's start-up writes "0" to ~/intel/openvino_telemetry when no consent file exists (then
    OpenVINO's conversion and NNCF send nothing), and leaves an owner's recorded choice alone."""
    pytest.importorskip("openvino_telemetry")
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    monkeypatch.setenv("HOME", str(tmp_path))
    consent = tmp_path / "intel" / "openvino_telemetry"
    assert OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.NO_FILE  # would send
    assert backends.decline_telemetry() and consent.read_text() == "0"
    assert OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.DECLINED
    consent.write_text("1")  # the owner opted in: kept
    assert not backends.decline_telemetry() and consent.read_text() == "1"


def test_precision_reaches_the_backend_from_every_entry_point(monkeypatch, tmp_path, photo):
    """enhance, remove_flare, upscale_video and the CLI pass ``precision`` on to the runner: the
    compilation asked for is the one named (bf16 stands in as fp32 output on any CPU)."""
    from media import make_clip

    from lightsr import cli
    from lightsr.flare import remove_flare
    from lightsr.video import upscale_video

    asked = []
    real = backends._compiled_model

    def compiled_model(model, per_model, precision, version):
        asked.append(precision)
        return _FakeLower(real(model, per_model, "fp32", version), precision, 0.0)

    monkeypatch.setattr(backends, "_compiled_model", compiled_model)
    sr = _trained_like("ecbsr-test")
    assert enhance(sr, photo, backend="openvino", precision="bf16").shape[:2] == (2 * photo.shape[0],
                                                                                   2 * photo.shape[1])
    assert asked == ["bf16"]
    make_clip(tmp_path / "in.mp4", frames=2, audio=None)
    upscale_video(tmp_path / "in.mp4", tmp_path / "out.mp4", sr, backend="openvino", precision="int8")
    assert asked[-1] == "int8"

    torch.manual_seed(0)
    flare = lightsr.create_model("pix2pix-flare-test").eval()
    lamp = np.full((48, 64, 3), 30, np.uint8)
    lamp[20:26, 30:36] = 255
    remove_flare(flare, lamp, backend="openvino", precision="bf16")
    assert asked[-1] == "bf16"
    with pytest.raises(lightsr.LightSRError, match="int8 is for super-resolution"):
        remove_flare(flare, lamp, backend="openvino", precision="int8")
    with pytest.raises(lightsr.LightSRError, match="precision must be one of fp32, bf16, int8"):
        enhance(sr, photo, backend="openvino", precision="fp16")

    sr.save_pretrained(tmp_path / "sr")
    Image.fromarray(photo).save(tmp_path / "in.png")
    assert cli.main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", str(tmp_path / "sr"),
                     "--backend", "openvino", "--precision", "bf16"]) == 0
    assert asked[-1] == "bf16" and Image.open(tmp_path / "out.png").size == (2 * photo.shape[1], 2 * photo.shape[0])
