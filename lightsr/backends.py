"""Inference backends: PyTorch (the reference) and OpenVINO (compiled; this CPU's fastest).

    net = runner(model, "auto")     # a callable with the model's tensor contract
    y = net(x)                      # (N, 3, H, W) float in [0, 1] -> (N, 3, s*H, s*W)

``"torch"`` calls the model itself. ``"openvino"`` converts the model once (a traced,
re-parameterised graph with dynamic height and width, so every tile size shares one
compilation), compiles it for the CPU and reuses it; the converted graph is cached on disk
(``$LIGHTSR_CACHE`` or ``~/.cache/lightsr``, keyed by the weights, the config and the
OpenVINO version), so only the first use of a model pays the conversion. ``"auto"``
(default; ``$LIGHTSR_BACKEND`` overrides it) picks, per model, whichever runs it fastest on
this machine: the first use times PyTorch and OpenVINO on one probe tile (``PROBE`` px, the
best of ``PROBE_RUNS`` runs each), and the choice is cached on disk beside the graph, per
thread count. Without OpenVINO, or with the model off the CPU, ``auto`` is PyTorch. A model
that fails to convert or compile falls back to PyTorch with one warning line.

Precision: OpenVINO fp32 equals PyTorch within 1e-4 (tested). ``precision="bf16"`` asks for
bfloat16 where the CPU reports it (AVX-512 BF16 / AMX); it changes outputs by up to about
2/255. ``precision="int8"`` quantizes the model with NNCF (post-training, calibrated on the
natural photo squares in ``calibration/``; the convolutions that read the image and write
the output stay fp32, see ``fp32_ends``), once per machine, cached beside the graph; on
AVX-512 VNNI it runs rdn-light several times faster than fp32 (BENCHMARKS). ``"auto"`` also
weighs these lower precisions for super-resolution models (bf16 where the CPU reports it; int8
where NNCF is installed; a flare model runs in fp32 unless bf16 is asked for, see
_lower_precisions), and takes one only where it is both faster (at most
``SHARE`` of the best other time on the probe tile) and accurate: its output within
``AGREEMENT`` dB PSNR of fp32's on the held-out calibration squares, a difference that costs
a model of 30 to 40 dB well under 0.05 dB. On an AVX-512 BF16 Xeon without AMX bf16
measured slower than fp32 for every shipped SR model, so the probe never keeps it there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import LightSRError, first_line
from .imaging import cache_dir, write_atomically
from .models._common import weights_version
from .models.base import LightSRModel

__all__ = ["BACKENDS", "PRECISIONS", "runner", "openvino_available", "int8_available", "OpenVINOModel",
           "decline_telemetry"]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino")
PROBE = 128  # px, the square tile "auto" times both backends on
PROBE_RUNS = 3  # after one warm-up run each
PRECISIONS = ("fp32", "bf16", "int8")
LABELS = {"torch": "PyTorch", "fp32": "OpenVINO", "bf16": "OpenVINO bf16", "int8": "OpenVINO int8"}  # auto's choices
CALIBRATION = Path(__file__).with_name("calibration") / "crops.jpg"  # int8's calibration squares (see its README)
CALIBRATION_SIDE = 128  # px, each square's side in that mosaic
# "auto" takes a lower precision (OpenVINO bf16 or int8) only where its output is within AGREEMENT dB PSNR of fp32's
# on the held-out calibration squares (an added error of 56 dB raises a 37 dB model's error by 1.2%, 0.05 dB) and it
# takes at most SHARE of the best other time
AGREEMENT, SHARE = 56.0, 0.9
# model -> {(precision, weights version): serial number in _live, or None where PyTorch runs it;
#           ("auto", precision asked for or None, weights version): what auto runs it with, "torch" or a precision}
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The compiled models themselves, least recently used first, at most KEEP of them. They are owned
# here, not by the weakly keyed dict above, so none is ever destroyed by the garbage collector
# (freed on whatever thread a collection runs, an OpenVINO compiled model and its per-thread infer
# requests once aborted a test run); they go only when runner() evicts or replaces one, on the
# calling thread. An evicted model compiles again from the on-disk graph cache on its next use.
KEEP = 8
_live: OrderedDict[int, "OpenVINOModel"] = OrderedDict()
_serial = itertools.count()
_lock = threading.Lock()


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def decline_telemetry() -> bool:
    """Record "no" to Intel's usage statistics, which OpenVINO's model conversion and NNCF send
    (to Google Analytics) unless a consent file says otherwise, where nobody has chosen yet. The file
    is ``~/intel/openvino_telemetry``, what ``opt_in_out --opt_out`` writes (that command also sends
    an event saying so; this does not). A choice already made is left as it is. True when the file
    now says no, or when openvino_telemetry is not installed (nothing to send with).

    The app calls it at start-up: a hosted demo does not report its visitors' use to a third party by
    default. The library never calls it: a user's machine is its owner's to decide."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return True
    checker = OptInChecker()
    state = checker.check(enable_opt_in_dialog=False)
    if state == ConsentCheckResult.NO_FILE:
        return bool(checker.update_result(ConsentCheckResult.DECLINED))
    return state == ConsentCheckResult.DECLINED


def _graph_dir() -> Path:
    return cache_dir() / "openvino"


def _fingerprint(model: LightSRModel, ov_version: str) -> str:
    """What the converted graph depends on: the weights, the config and the OpenVINO version."""
    h = hashlib.sha256(json.dumps([model.architecture, asdict(model.config), ov_version], sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def example_input(model: LightSRModel) -> torch.Tensor:
    """What the tracer runs: odd sizes at or above the padding multiple, so the recorded graph
    pads (a size that needs none would be traced the same way: the pad branch is the only one)."""
    n = max(32, model.size_multiple())
    return torch.rand(1, 3, n + 1, n + 3)


@contextlib.contextmanager
def tracing(model: LightSRModel):
    """For a tracer (OpenVINO's converter, the ONNX exporter): ``model`` in eval mode, gradients
    off, run once on the yielded ``example_input`` so re-parameterised convs are cached and the
    trace holds them as constants; the model's mode is restored afterwards."""
    was = model.training
    model.eval()
    example = example_input(model)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the shape check in forward is Python, fixed at trace time: what the warning says, and fine
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            model(example)
            yield example
    finally:
        model.train(was)


def convert_openvino(model: LightSRModel):
    """``model``'s eval-mode forward as an OpenVINO graph with dynamic N, H and W (traced once;
    flare models pad inside the graph, so any size at or above their multiple works)."""
    import openvino as ov

    with tracing(model) as example:
        graph = ov.convert_model(model, example_input=example)
    graph.reshape({graph.inputs[0]: ov.PartialShape([-1, 3, -1, -1])})
    return graph


class OpenVINOModel:
    """``model`` compiled by OpenVINO for the CPU, any input size: (N, 3, H, W) float tensor in
    [0, 1] -> (N, 3, s*H, s*W) float tensor in [0, 1], like the model's eval-mode forward.
    ``precision``: "fp32" (equal to PyTorch within 1e-4), "bf16" (where the CPU reports it) or
    "int8" (needs NNCF; quantized on first use and cached, see _int8_graph)."""

    def __init__(self, model: LightSRModel, *, precision: str = "fp32", threads: int | None = None):
        import openvino as ov

        if precision not in PRECISIONS:
            raise LightSRError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise LightSRError("this CPU does not report bf16 support to OpenVINO; use precision='fp32'")
        if precision == "int8" and not int8_available():
            raise LightSRError("precision 'int8' needs NNCF: pip install nncf (or 'lightsr[openvino]')")
        self.scale, self.precision = model.scale, precision
        self.graph_path = path = _graph_dir() / f"{model.architecture}-{_fingerprint(model, ov.__version__)}.xml"
        if not path.is_file():
            _save_graph(convert_openvino(model), path)
        # always the graph as saved, also right after converting: the converter's in-memory graph compiles to
        # slightly different numbers (NF-ResUNet: 1.6e-6), and a photo's result would then change after first use
        graph = core.read_model(str(path))
        if precision == "int8":
            graph = _int8_graph(core, graph, model, path)
        graph = fuse_pixel_shuffle(graph)
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        self._core, self._graph, self._config = core, graph, config
        self._compiled = core.compile_model(graph, "CPU", config)
        self._compiled_u8: dict = {}  # frames(): per layout, compiled on first use
        self._u8_lock = threading.Lock()
        self._local = threading.local()  # one infer request per thread: requests are not thread-safe

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # shared in and out (infer is synchronous), then one copy: the request reuses its output buffer
        out = request.infer({0: x.detach().float().cpu().contiguous().numpy()}, share_inputs=True, share_outputs=True)
        return torch.from_numpy(out[0].copy())

    def frames(self, batch: np.ndarray, layout: str = "NHWC") -> np.ndarray:
        """uint8 RGB frames in, uint8 RGB frames out, C-contiguous: ``layout`` "NHWC", (N, H, W, 3)
        -> (N, s*H, s*W, 3), or "NCHW" (planar, what video runs: no transpose on either side),
        (N, 3, H, W) -> (N, 3, s*H, s*W). The model with the scaling to [0, 1] before it and
        ``clamp(0, 1) * 255``, rounded, after it, all inside the compiled graph (no float frame is
        materialised or copied in Python). Equal to rounding ``self(x)``'s output, but for a value
        on a rounding edge (tested)."""
        if layout not in ("NHWC", "NCHW"):
            raise LightSRError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        channels = batch.shape[-1 if layout == "NHWC" else 1] if batch.ndim == 4 else None
        if batch.dtype != np.uint8 or channels != 3:
            raise LightSRError(f"frames() takes ({'N, H, W, 3' if layout == 'NHWC' else 'N, 3, H, W'}) uint8 RGB, "
                               f"got {batch.dtype} {batch.shape}")
        with self._u8_lock:
            if layout not in self._compiled_u8:
                self._compiled_u8[layout] = self._core.compile_model(_uint8_graph(self._graph, layout), "CPU",
                                                                     self._config)
        requests = getattr(self._local, "requests_u8", None)
        if requests is None:
            requests = self._local.requests_u8 = {}
        if layout not in requests:
            requests[layout] = self._compiled_u8[layout].create_infer_request()
        out = requests[layout].infer({0: np.ascontiguousarray(batch)}, share_inputs=True, share_outputs=True)
        return out[0].copy()


def _save_graph(graph, path: Path) -> None:
    """Write ``graph`` to ``path`` and its .bin, weights as they are (never compressed to fp16),
    both atomically: a reader never sees half a graph."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".convert-"))
    try:  # written beside the cache, then renamed in
        ov.save_model(graph, str(tmp / path.name), compress_to_fp16=False)
        os.replace(tmp / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def int8_available() -> bool:
    """Whether int8 quantization can run here: OpenVINO and NNCF are installed."""
    return openvino_available() and importlib.util.find_spec("nncf") is not None


def calibration_tiles(model: LightSRModel, *, held_out: bool = False) -> list[np.ndarray]:
    """The natural-image squares int8 is calibrated on (``held_out=False``: 12 of them) or checked
    on (``True``: the other 4), as (1, 3, n, n) float32 arrays in [0, 1], n = 128 cut down to the
    model's size multiple. From ``calibration/crops.jpg`` (see its README)."""
    from PIL import Image

    mosaic = np.asarray(Image.open(CALIBRATION).convert("RGB"), dtype=np.float32) / 255
    n = CALIBRATION_SIDE // model.size_multiple() * model.size_multiple()
    tiles = []
    for i in range(16):
        if (i % 4 == 3) == held_out:  # the square that ends each row is held out
            y, x = divmod(i, 4)
            tile = mosaic[y * CALIBRATION_SIDE:y * CALIBRATION_SIDE + n, x * CALIBRATION_SIDE:x * CALIBRATION_SIDE + n]
            tiles.append(np.ascontiguousarray(tile.transpose(2, 0, 1)[None]))
    return tiles


def fp32_ends(graph) -> list[str]:
    """The ops int8 leaves in fp32, the image's ends of the graph: from the input, every op up to
    and including the first convolution on each path and any resize of the image (a global skip);
    from the output back, every op up to and including the last convolution on each path (the
    final conv, the residual add). Quantized, these cost the most: rdn-light-x2 with every op in
    int8 lost 1.5 dB on Set5; with these four in fp32 (sfe1, the bilinear skip, the output conv and
    the final add, which NNCF's accuracy-aware search reverted first) 0.03 dB. The ops before the
    first convolution matter for a luma model: its colour path (RGB minus luma, edge-padded, then
    the bicubic filters) quantized cost the luma ECBSR-M6C16 0.55 dB on Set5 (37.08 -> 36.53), kept
    in fp32 0.05 (37.03)."""
    heavy = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"}
    ends = {"Parameter", "Result", "Constant"}
    keep: set[str] = set()
    # image in: the first convolutions and resizes, through whatever comes before them (pads, converts)
    todo, seen = list(graph.get_parameters()), set()
    while todo:
        for target in (t for out in todo.pop().outputs() for t in out.get_target_inputs()):
            node = target.get_node()
            if node.get_friendly_name() in seen or node.get_type_name() in ends:
                continue
            seen.add(node.get_friendly_name())
            keep.add(node.get_friendly_name())
            if node.get_type_name() not in heavy and node.get_type_name() != "Interpolate":
                todo.append(node)
    # image out: every op back to the last convolution on each path
    todo, seen = list(graph.get_results()), set()
    while todo:
        for source in (i.get_source_output().get_node() for i in todo.pop().inputs()):
            if source.get_friendly_name() in seen or source.get_type_name() in ends:
                continue
            seen.add(source.get_friendly_name())
            keep.add(source.get_friendly_name())
            if source.get_type_name() not in heavy:
                todo.append(source)
    return sorted(keep)


def quantize_int8(graph, model: LightSRModel):
    """``graph`` (``model`` converted, fp32) quantized to int8 by NNCF: post-training, activation
    ranges from the calibration tiles, the MIXED preset (weights symmetric per channel,
    activations asymmetric), ``fp32_ends`` left in fp32. Needs NNCF (``int8_available``)."""
    if not int8_available():
        raise LightSRError("int8 quantization needs NNCF: pip install nncf (or 'lightsr[openvino]')")
    import nncf  # 1.7 s and a few hundred MB to import: only where a graph is quantized

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its INFO lines and progress bars: not ours to print
    tiles = calibration_tiles(model)
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(graph, nncf.Dataset(tiles), subset_size=len(tiles), preset=nncf.QuantizationPreset.MIXED,
                             ignored_scope=nncf.IgnoredScope(names=fp32_ends(graph), validate=False))


def _int8_graph(core, graph, model: LightSRModel, path: Path):
    """``quantize_int8(graph)`` (``graph`` cached at ``path``), itself cached beside the fp32
    graph, keyed by NNCF's version, the calibration file and the ops kept in fp32: quantized
    once per machine."""
    keep = fp32_ends(graph)
    h = hashlib.sha256(json.dumps([importlib.metadata.version("nncf"), keep]).encode())
    h.update(CALIBRATION.read_bytes())
    cached = path.with_name(f"{path.stem}.int8-{h.hexdigest()[:12]}.xml")
    if cached.is_file():
        return core.read_model(str(cached))
    logger.info("quantizing %s to int8 (once; cached)", model.architecture)
    quantized = quantize_int8(graph, model)
    try:  # a cache: failing to write it only means quantizing again next time
        _save_graph(quantized, cached)
    except OSError:
        pass
    return quantized


def _uint8_graph(graph, layout: str = "NHWC"):
    """``graph`` ((N, 3, H, W) float in [0, 1] -> (N, 3, sH, sW)) wrapped by OpenVINO's pre- and
    post-processing: uint8 in, divided by 255; out clamped to [0, 1], times 255, rounded half to
    even (as torch.round) and uint8; both in ``layout``, "NHWC" or "NCHW" (no transposes). A clamp
    to [0, 1] that ends the model itself is not repeated."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(graph.clone())
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout(layout))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    ppp.output().model().set_layout(ov.Layout("NCHW"))
    ppp.output().tensor().set_layout(ov.Layout(layout)).set_element_type(ov.Type.u8)
    ends_clamped = _ends_in_unit_clamp(graph)

    def to_u8(out):
        scaled = ops.multiply(out, np.float32(255.0))
        if not ends_clamped:
            scaled = ops.clamp(scaled, 0.0, 255.0)
        return ops.round(scaled, "half_to_even").output(0)

    ppp.output().postprocess().custom(to_u8)
    return ppp.build()


def _ends_in_unit_clamp(graph) -> bool:
    """Whether ``graph``'s output is a Clamp to [0, 1] (as every eval-mode SR model's forward ends)."""
    node = graph.get_results()[0].input_value(0).get_node()
    if node.get_type_name() != "Clamp":
        return False
    attrs = node.get_attributes()
    return attrs.get("min") == 0.0 and attrs.get("max") == 1.0


def fuse_pixel_shuffle(graph):
    """``graph`` with every traced ``pixel_shuffle`` (Reshape to (N, C, r, r, H, W), Transpose
    (0, 1, 4, 2, 5, 3), Reshape back) replaced by OpenVINO's DepthToSpace in "depth_first" mode,
    the same permutation as one op (on ecbsr-x2 at 640x360 it took 2.3 ms as a Transpose and
    about half of that as DepthToSpace). Exactly the same output; a graph without the pattern is
    returned as it is."""
    import openvino.opset13 as ops

    for node in graph.get_ordered_ops():
        if node.get_type_name() != "Transpose" or "pixel_shuffle" not in node.get_friendly_name():
            continue
        pre = node.input_value(0).get_node()
        users = list(node.output(0).get_target_inputs())
        order = node.input_value(1).get_node()
        if (pre.get_type_name() != "Reshape" or len(users) != 1 or order.get_type_name() != "Constant"
                or list(order.get_data()) != [0, 1, 4, 2, 5, 3]):
            continue
        post = users[0].get_node()
        six = pre.output(0).get_partial_shape()
        if post.get_type_name() != "Reshape" or six.rank.get_length() != 6:
            continue
        r = six[2]
        if not (r.is_static and six[3].is_static and r.get_length() == six[3].get_length()):
            continue
        post.output(0).replace(ops.depth_to_space(pre.input_value(0), "depth_first", r.get_length()).output(0))
    return graph


def runner(model: LightSRModel, backend: str | None = "auto", *,
           precision: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable that runs ``model`` on ``backend`` ("auto", "torch" or "openvino"; None reads
    ``$LIGHTSR_BACKEND``, default "auto"). ``precision``: "fp32", "bf16" or "int8" for OpenVINO; None
    is fp32 for "openvino" and, for "auto", whichever of PyTorch, OpenVINO fp32 and (where
    accurate, see _lower_precisions) OpenVINO bf16 or int8 is fastest here. Compiled models are
    kept per model object and reused, the ``KEEP`` most recently used of them at once."""
    backend = backend or os.environ.get("LIGHTSR_BACKEND") or "auto"
    if backend not in BACKENDS:
        raise LightSRError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision is not None and precision not in PRECISIONS:
        raise LightSRError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    on_cpu = next(model.parameters()).device.type == "cpu"
    if backend == "torch" or (backend == "auto" and not (openvino_available() and on_cpu)):
        return model
    if not openvino_available():
        raise LightSRError("backend 'openvino' needs OpenVINO: pip install openvino (or 'lightsr[openvino]')")
    if not on_cpu:
        raise LightSRError("backend 'openvino' runs on the CPU; move the model there or use backend='torch'")
    version = weights_version(model)
    with _lock:
        per_model = _compiled.setdefault(model, {})
        for k in [k for k in per_model if k[-1] != version]:  # older weights' entries: dropped now, on this thread
            stale = per_model.pop(k)
            if k[0] != "auto" and stale is not None:
                _live.pop(stale, None)
        if backend == "openvino":
            return _compiled_model(model, per_model, precision or "fp32", version) or model
        auto_key = ("auto", precision, version)
        if auto_key not in per_model:
            fp32 = _compiled_model(model, per_model, "fp32", version)
            per_model[auto_key] = "torch" if fp32 is None else _auto_choice(model, per_model, fp32, precision, version)
        choice = per_model[auto_key]
        return model if choice == "torch" else (_compiled_model(model, per_model, choice, version) or model)


def _compiled_model(model: LightSRModel, per_model: dict, precision: str, version) -> "OpenVINOModel | None":
    """``model`` compiled at ``precision`` (kept in ``_live``, compiled again if evicted), or None
    where OpenVINO cannot compile it (one warning line: PyTorch runs it). Called under ``_lock``."""
    key = (precision, version)
    if key not in per_model or (per_model[key] is not None and per_model[key] not in _live):
        try:
            compiled = OpenVINOModel(model, precision=precision)
        except LightSRError:
            raise
        except Exception as err:  # noqa: BLE001 - any converter/compiler failure: PyTorch still works
            logger.warning("OpenVINO could not compile %s (%s); running it with PyTorch", model.architecture,
                           first_line(err))
            per_model[key] = None  # PyTorch (the model itself is not stored: it is this dict's weak key)
        else:
            per_model[key] = serial = next(_serial)
            _live[serial] = compiled
            while len(_live) > KEEP:
                _live.popitem(last=False)  # the least recently used; a caller still running it keeps it
    serial = per_model[key]
    if serial is None:
        return None
    _live.move_to_end(serial)
    return _live[serial]


def choice_of(model: LightSRModel, net) -> str:
    """What ``net`` (from ``runner(model, ...)``) runs ``model`` with: "torch", "fp32", "bf16" or
    "int8", a key of LABELS."""
    return "torch" if net is model else net.precision


def auto_record(model: LightSRModel) -> dict:
    """What backend="auto" runs ``model`` with here ("choice": "torch", "fp32", "bf16" or "int8")
    and the probe it chose on (ms per probe tile, each lower precision's agreement with fp32), as
    cached beside the graph."""
    runner(model, "auto")
    compiled = runner(model, "openvino")
    if not isinstance(compiled, OpenVINOModel):
        return {"choice": "torch"}  # OpenVINO cannot compile it
    return json.loads(compiled.graph_path.with_suffix(".auto.json").read_text())[_slot(model, None)]


def bf16_supported() -> bool:
    """Whether this CPU reports bf16 to OpenVINO (AVX-512 BF16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _lower_precisions(model: LightSRModel, precision: str | None) -> list[str]:
    """What auto weighs beside fp32 when no precision is asked for, for super-resolution models only:
    bf16 where the CPU reports it, int8 where NNCF is installed. Their check (AGREEMENT on daylight
    photo squares) cannot vouch for a flare model: the squares hold none of a flare photo's clipped
    lamps and glare, and remove_flare thresholds the model's output there (which clipped pixels
    are lamps, which are filled), so a small change of the output flips whole regions. Measured
    (bench_flare_backends): bf16 cost Pix2Pix 0.10 dB on the hand-drawn set,
    though its output agreed with fp32's at 84 dB on the squares."""
    if precision is not None or model.task != "super-resolution":
        return []
    return (["bf16"] if bf16_supported() else []) + (["int8"] if int8_available() else [])


def _slot(model: LightSRModel, precision: str | None) -> str:
    """The key of auto's choice in ``<graph>.auto.json``: what was asked, what was weighed, threads."""
    weighed = "/".join(["torch", "fp32", *_lower_precisions(model, precision)])
    return f"{precision or 'auto'} ({weighed}), {torch.get_num_threads()} threads"


def _probe_side(model: LightSRModel) -> int:
    """PROBE rounded up to the model's size multiple: the side of the square tiles auto decides on."""
    return -(-PROBE // model.size_multiple()) * model.size_multiple()


def probe_times(model: LightSRModel, compiled: OpenVINOModel,
                lower: dict[str, OpenVINOModel] | None = None) -> dict[str, float]:
    """Seconds per run of a PROBE x PROBE tile on each backend ("torch", "openvino" and each of
    ``lower``, the model compiled at a lower precision, by its name): the best of PROBE_RUNS runs
    after a warm-up (the best, not the mean: these machines are shared, and noise only ever adds time)."""
    n = _probe_side(model)
    x = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(0))
    times = {}
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            # PyTorch as enhance and upscale_video run it: channels_last on the CPU
            runs = [("torch", model, x.contiguous(memory_format=torch.channels_last)), ("openvino", compiled, x)]
            for name, fn, inp in runs + [(k, v, x) for k, v in (lower or {}).items()]:
                fn(inp)
                best = float("inf")
                for _ in range(PROBE_RUNS):
                    start = time.perf_counter()
                    fn(inp)
                    best = min(best, time.perf_counter() - start)
                times[name] = best
    finally:
        model.train(was)
    return times


def agreement(model: LightSRModel, reference, other) -> float:
    """PSNR (dB) of ``other``'s output (a lower precision) against ``reference``'s (fp32), pooled
    over the four held-out calibration squares: natural photo content neither was tuned on."""
    err, count = 0.0, 0
    with torch.inference_mode():
        for tile in calibration_tiles(model, held_out=True):
            x = torch.from_numpy(tile)
            a, b = reference(x).clamp(0, 1), other(x).clamp(0, 1)
            err, count = err + float(((a - b) ** 2).sum()), count + a.numel()
    return 99.0 if err == 0 else 10 * math.log10(count / err)


def _auto_choice(model: LightSRModel, per_model: dict, compiled: OpenVINOModel, precision: str | None,
                 version) -> str:
    """What backend="auto" runs ``model`` with: "torch", "fp32", "bf16" or "int8" (OpenVINO), the
    fastest here. A lower precision is weighed only where ``precision`` is None (see
    _lower_precisions), and taken only where it is accurate (AGREEMENT) and clearly faster
    (SHARE). Timed once (probe_times) and kept in ``<graph>.auto.json`` per slot (_slot), so later
    processes only read it. Called under ``_lock``."""
    path = compiled.graph_path.with_suffix(".auto.json")
    slot = _slot(model, precision)
    try:
        choices = json.loads(path.read_text())
        if not isinstance(choices, dict):
            choices = {}
    except (OSError, ValueError):
        choices = {}
    if isinstance(choices.get(slot), dict) and choices[slot].get("choice") in ("torch", *PRECISIONS):
        return choices[slot]["choice"]
    if precision not in (None, "fp32"):  # asked for: that precision or PyTorch, whichever is faster
        compiled = _compiled_model(model, per_model, precision, version)
        if compiled is None:
            return "torch"
    lower = {p: _compiled_model(model, per_model, p, version) for p in _lower_precisions(model, precision)}
    lower = {p: net for p, net in lower.items() if net is not None}  # one that failed to compile: not weighed
    times = probe_times(model, compiled, lower)
    record = {f"{k}_ms": round(v * 1e3, 2) for k, v in times.items()}
    choice = "torch" if times["torch"] <= times["openvino"] else compiled.precision
    best = min(times["torch"], times["openvino"])
    for p, net in lower.items():
        record[f"{p}_agreement_db"] = agree = round(agreement(model, compiled, net), 2)
        if agree >= AGREEMENT and times[p] <= SHARE * best:
            choice, best = p, times[p]
    logger.info("auto backend for %s: %s (a %d px tile: %s)", model.architecture,
                "PyTorch" if choice == "torch" else f"OpenVINO {choice}", PROBE,
                ", ".join(f"{k} {v:.1f} ms" for k, v in record.items() if k.endswith("_ms")))
    choices[slot] = {"choice": choice, **record}
    text = json.dumps(choices, indent=1).encode()
    try:  # a cache: failing to write it only means timing again next time
        write_atomically(path, lambda f: f.write(text))
    except OSError:
        pass
    return choice
