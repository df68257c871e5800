"""Export a model for the tools people already use: ONNX, OpenVINO IR, and ECBSR as SRVGGNetCompact.

    lightsr export ecbsr-x2 ecbsr-x2.onnx --format onnx
    lightsr export ecbsr-x2 ecbsr-x2.safetensors --format compact

- ``onnx``: one graph for every input size (dynamic batch, height and width), traced from the
  eval-mode forward (``pip install "lightsr[export]"`` for the onnx package). Input ``image``:
  (N, 3, H, W) float32 RGB in [0, 1]; output ``output``: (N, 3, s*H, s*W) in [0, 1], the model's
  eval-mode forward. Flare models pad to their multiple inside the graph, so any size at or
  above ``min_size`` (the multiple) works.
- ``openvino``: the same graph as OpenVINO IR (``.xml`` plus ``.bin`` beside it), fp32 weights.
  On a CPU with native bf16 (AVX-512 BF16, AMX) OpenVINO runs any model at bf16 unless told
  otherwise (its default performance mode; an IR cannot carry the setting): compile with
  ``{"INFERENCE_PRECISION_HINT": "f32"}`` for outputs equal to PyTorch within 1e-4, as
  ``lightsr.backends`` does (bf16 costs at most 0.02 dB on the shipped SR models, BENCHMARKS.md).
- ``openvino-int8``: that IR quantized to int8 as ``backend="auto"`` runs it where it picks int8
  (``lightsr.backends.quantize_int8``: NNCF, calibrated on the natural squares shipped in
  ``lightsr/calibration/``, the convolutions that read and write the image kept in fp32; needs
  ``nncf``). Compile it with ``{"INFERENCE_PRECISION_HINT": "f32"}`` too, so the ops kept in fp32
  stay fp32. The shipped SR models lose at most 0.04 dB on Set5/Set14 this way (BENCHMARKS.md).
- ``compact``: ECBSR re-parameterised to plain 3x3 convs is exactly the layout of Real-ESRGAN's
  SRVGGNetCompact (conv, PReLU, ..., conv, pixel shuffle, plus the nearest-neighbour upsampled
  input), so the ``.safetensors`` state dict it writes, with those key names, loads in spandrel,
  chaiNNer and ComfyUI with no code of ours. Their forward does not clamp to [0, 1]; ours does.

Every format is written beside its destination and renamed into place, so a failed export
leaves no partial file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from .backends import convert_openvino, fuse_pixel_shuffle, openvino_available, quantize_int8, tracing
from .errors import LightSRError
from .imaging import new_file_mode
from .models.base import LightSRModel

__all__ = ["FORMATS", "export", "compact_state_dict", "min_size"]

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "openvino-int8": ".xml", "compact": ".safetensors"}


def min_size(model: LightSRModel) -> int:
    """The smallest input side an exported graph accepts: the model's padding multiple, as a
    reflection cannot pad more than the size minus one (1 for the SR models: any size)."""
    return model.size_multiple()


def compact_state_dict(model: LightSRModel) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """ECBSR's weights, fused to 3x3 convs, under SRVGGNetCompact's key names, and metadata
    (num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type) for the safetensors header."""
    if model.architecture != "ecbsr":
        raise LightSRError(f"the compact format is SRVGGNetCompact's layout, which only ECBSR has, "
                           f"not {model.architecture}; use --format onnx or openvino")
    if model.config.colors != 3:  # SRVGGNetCompact maps RGB to RGB; a luma ECBSR's colour path is not in it
        raise LightSRError("the compact format is SRVGGNetCompact's RGB layout; this ECBSR works on luma "
                           "(colors=1): use --format onnx or openvino")
    state: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        i = 0
        for block, act in zip(model.body, model.acts):
            state[f"body.{i}.weight"], state[f"body.{i}.bias"] = block.fuse()
            state[f"body.{i + 1}.weight"] = act.weight
            i += 2
        state[f"body.{i}.weight"], state[f"body.{i}.bias"] = model.tail.fuse()
    state = {k: v.detach().float().cpu().contiguous().clone() for k, v in state.items()}
    c = model.config
    meta = {"architecture": "SRVGGNetCompact", "num_in_ch": "3", "num_out_ch": "3", "num_feat": str(c.channels),
            "num_conv": str(c.num_blocks), "upscale": str(c.scale), "act_type": "prelu",
            "source": "lightsr ecbsr, re-parameterised"}
    return state, meta


def export(model: LightSRModel, out: str | os.PathLike, fmt: str) -> Path:
    """Write ``model`` to ``out`` in format ``fmt`` (a key of FORMATS; its suffix is added when
    ``out`` has none). Returns the written path. Raises ``LightSRError`` on any failure."""
    if fmt not in FORMATS:
        raise LightSRError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if not out.suffix:
        out = out.with_suffix(FORMATS[fmt])
    if out.suffix != FORMATS[fmt]:
        raise LightSRError(f"a {fmt} export is a {FORMATS[fmt]} file, not {out.name}")
    if not out.parent.is_dir():
        raise LightSRError(f"no such folder: {out.parent}")
    writer: Callable[[LightSRModel, Path], None] = {"onnx": _write_onnx, "openvino": _write_openvino,
                                                    "openvino-int8": partial(_write_openvino, int8=True),
                                                    "compact": _write_compact}[fmt]
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.stem}.export-"))
    try:
        writer(model, tmp / out.name)
        for f in tmp.iterdir():  # some writers (safetensors) make private 0600 files
            f.chmod(new_file_mode())
        if FORMATS[fmt] == ".xml":  # OpenVINO IR: the weights first, the .xml is what a reader opens
            os.replace(tmp / out.with_suffix(".bin").name, out.with_suffix(".bin"))
        os.replace(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_onnx(model: LightSRModel, path: Path) -> None:
    try:
        import onnx  # noqa: F401 - the exporter needs it; say so before tracing
    except ImportError:
        raise LightSRError('ONNX export needs the onnx package: pip install "lightsr[export]"') from None
    dims = {0: "batch", 2: "height", 3: "width"}
    try:
        with tracing(model) as example, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own deprecation and tracer notes
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["output"],
                              dynamic_axes={"image": dims, "output": dims})
    except Exception as err:  # the exporter raises many types; its first line is what a user can act on
        raise LightSRError(f"ONNX export of {model.architecture} failed: {type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}") from None


def _write_openvino(model: LightSRModel, path: Path, *, int8: bool = False) -> None:
    if not openvino_available():
        raise LightSRError('OpenVINO export needs openvino: pip install "lightsr[openvino]"')
    import openvino as ov

    graph = convert_openvino(model)
    # the graph lightsr itself compiles: quantized (int8) first, then pixel_shuffle as one DepthToSpace;
    # weights as they are (fp32 as trained, or int8 where quantized): never compressed to fp16
    graph = fuse_pixel_shuffle(quantize_int8(graph, model) if int8 else graph)
    ov.save_model(graph, str(path), compress_to_fp16=False)


def _write_compact(model: LightSRModel, path: Path) -> None:
    from safetensors.torch import save_file

    state, meta = compact_state_dict(model)
    save_file(state, str(path), metadata={"format": "pt", **meta})
