"""lightsr export: ONNX and OpenVINO graphs equal PyTorch at any size; ECBSR loads as SRVGGNetCompact."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lightsr
from lightsr import cli
from lightsr.export import compact_state_dict, export, min_size

MODELS = ["ecbsr-test", "ecbsr-y-test", "span-test", "nf-resunet-flare-test", "pix2pix-test"]


def _model(name):
    torch.manual_seed(0)
    m = lightsr.create_model(name).eval()
    with torch.no_grad():  # flare heads start at zero; give them something to get wrong
        for p in m.final_layer().parameters():
            p.normal_(0, 0.05)
    return m


def _sizes(model):
    n = max(min_size(model), 8)
    return [(n + 3, n + 7), (2 * n, 2 * n + 1)]  # odd sizes, none of them the traced one


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_pytorch_at_any_size(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    model = _model(name)
    path = export(model, tmp_path / "m", "onnx")
    assert path.name == "m.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for h, w in _sizes(model):
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"image": x.numpy()})[0]
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < 1e-4, (name, h, w)


@pytest.mark.parametrize("name", ["ecbsr-test", "nf-resunet-flare-test"])
def test_openvino_ir_matches_pytorch(tmp_path, name):
    ov = pytest.importorskip("openvino")
    model = _model(name)
    path = export(model, tmp_path / "m.xml", "openvino")
    assert path.is_file() and path.with_suffix(".bin").is_file()
    ops = ov.Core().read_model(str(path)).get_ordered_ops()
    if model.scale > 1:  # the IR is the graph lightsr compiles: its pixel_shuffle is one DepthToSpace
        assert any(op.get_type_name() == "DepthToSpace" for op in ops)
        assert not any(op.get_type_name() == "Transpose" and "pixel_shuffle" in op.get_friendly_name() for op in ops)
    # f32 asked for: on a CPU with native bf16 OpenVINO's default is bf16 (4.6e-4 and 3.2e-2 off on an Intel Xeon)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for h, w in _sizes(model):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        assert np.abs(compiled(x.numpy())[0] - ref).max() < 1e-4, (name, h, w)


def test_openvino_int8_ir_is_close_to_pytorch_and_its_ends_stay_fp32(tmp_path, photo):
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    model = _model("rdn-test")
    path = export(model, tmp_path / "m.xml", "openvino-int8")
    assert path.is_file() and path.with_suffix(".bin").is_file()
    graph = ov.Core().read_model(str(path))
    convs = [op for op in graph.get_ordered_ops() if op.get_type_name() == "Convolution"]
    int8 = [op.input_value(1).get_node().get_type_name() != "Constant" for op in convs]  # quantized weights
    assert not int8[0] and not int8[-1] and all(int8[1:-1])  # the image's first and last convs stay fp32
    compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = model(x).clamp(0, 1).numpy()
    mse = float(np.mean((np.clip(compiled(x.numpy())[0], 0, 1) - ref) ** 2))
    assert 10 * np.log10(1 / mse) >= 40, mse  # close to fp32 on a real photo, not equal
    assert cli.main(["export", "nowhere", str(tmp_path / "n.xml"), "--format", "openvino-int8"]) == 2


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact network, as its public layout defines it (what spandrel builds
    from a state dict): conv, PReLU, num_conv x (conv, PReLU), conv, pixel shuffle, plus the
    nearest-upsampled input."""

    def __init__(self, num_feat, num_conv, upscale):
        super().__init__()
        layers = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upscale = upscale

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.upscale) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _spandrel_shape(state):
    """How spandrel reads a Compact state dict: detected by body.0.weight and body.1.weight;
    num_conv from the highest body index; the scale from the last conv's output channels."""
    assert "body.0.weight" in state and "body.1.weight" in state
    highest = max(int(k.split(".")[1]) for k in state)
    num_feat = state["body.0.weight"].shape[0]
    scale = int(round((state[f"body.{highest}.weight"].shape[0] / 3) ** 0.5))
    return num_feat, (highest - 2) // 2, scale


@pytest.mark.parametrize("scale", [2, 4])
def test_compact_is_srvggnetcompact(tmp_path, scale):
    from safetensors import safe_open
    from safetensors.torch import load_file

    model = lightsr.create_model("ecbsr-test", scale=scale).eval()
    with torch.no_grad():
        for p in model.parameters():  # the edge branches start near zero; make every branch count
            p.normal_(0, 0.1)
    path = export(model, tmp_path / "compact.safetensors", "compact")
    state = load_file(path)
    num_feat, num_conv, s = _spandrel_shape(state)
    assert (num_feat, num_conv, s) == (model.config.channels, model.config.num_blocks, scale)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "SRVGGNetCompact" and meta["upscale"] == str(scale)
    ref = SRVGGNetCompact(num_feat, num_conv, s)
    ref.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 21, 17)
    with torch.no_grad():
        assert torch.allclose(ref(x).clamp(0, 1), model(x), atol=1e-5)


def test_export_errors_leave_nothing_behind(tmp_path, monkeypatch):
    with pytest.raises(lightsr.LightSRError, match="only ECBSR"):
        export(lightsr.create_model("span-test"), tmp_path / "x.safetensors", "compact")
    with pytest.raises(lightsr.LightSRError, match="works on luma"):
        export(lightsr.create_model("ecbsr-y-test"), tmp_path / "x.safetensors", "compact")
    with pytest.raises(lightsr.LightSRError, match="is a .onnx file"):
        export(lightsr.create_model("ecbsr-test"), tmp_path / "x.xml", "onnx")
    with pytest.raises(lightsr.LightSRError, match="format must be one of"):
        export(lightsr.create_model("ecbsr-test"), tmp_path / "x", "tflite")
    with pytest.raises(lightsr.LightSRError, match="no such folder"):
        export(lightsr.create_model("ecbsr-test"), tmp_path / "missing" / "x.onnx", "onnx")

    def half_then_fail(state, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", half_then_fail)
    with pytest.raises(OSError):
        export(lightsr.create_model("ecbsr-test"), tmp_path / "x.safetensors", "compact")
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary folder


def test_cli_export(tmp_path, capsys):
    folder = tmp_path / "ecbsr"
    lightsr.create_model("ecbsr-test").save_pretrained(folder)
    assert cli.main(["export", str(folder), str(tmp_path / "out.safetensors"), "--format", "compact"]) == 0
    assert (tmp_path / "out.safetensors").is_file()
    from lightsr.imaging import new_file_mode  # safetensors writes 0600; the export gets the usual mode

    assert (tmp_path / "out.safetensors").stat().st_mode & 0o777 == new_file_mode()
    assert cli.main(["export", str(folder), str(tmp_path / "out.onnx"), "--format", "compact"]) == 2
    assert "is a .safetensors file" in capsys.readouterr().err


def test_compact_state_dict_is_fused_weights():
    model = lightsr.create_model("ecbsr-test").eval()
    state, meta = compact_state_dict(model)
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in state.values())
    assert state["body.0.weight"].shape[-2:] == (3, 3) and meta["act_type"] == "prelu"
