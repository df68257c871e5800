"""Shared by the benchmark scripts: machine description, training runs and BENCHMARKS.md assembly.

Each script writes its own section to benchmarks/results/<name>.md; BENCHMARKS.md is
those sections in a fixed order under a common header, so re-running one benchmark
never loses another's numbers.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["enhance", "sr", "backends", "upsampler", "flare", "flare_strength", "video"]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    from lightsr.cards import hardware

    return (f"{hardware()}; Python {platform.python_version()}, torch {torch.__version__}, "
            f"{datetime.date.today().isoformat()}")


def training_runs(runs: dict[str, tuple[str, ...]], name: str) -> list[Path] | None:
    """The run folders (in order) that made checkpoint ``name``, or None when any is not in this checkout
    (a training run keeps its args.json; a weight average, train/average_weights.py, its merge.json)."""
    folders = [ROOT / r for r in runs.get(name, ())]
    from lightsr.cards import MERGE_RECORD

    recorded = all((f / "args.json").exists() or (f / MERGE_RECORD).exists() for f in folders)
    return folders if folders and recorded else None


def median_time(fn, runs: int) -> float:
    """Median seconds of ``runs`` calls of ``fn`` after one warm-up (oneDNN and OpenVINO pick
    their kernels on the first call)."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def conv_rooflines(runs: int, lower: tuple[str, ...] = ()) -> dict[str, float]:
    """GFLOP/s of a stack of eight 3x3 convs with ReLUs (64 -> 64 channels on a 640x360 map; a
    stack, so the input and output traffic of one conv does not dominate): this CPU's practical
    peak per backend, keyed as lightsr.backends' choices: "torch" (fp32, channels_last), "fp32"
    (OpenVINO) and each of ``lower`` ("bf16", "int8": the same stack compiled at bf16, or
    quantized by NNCF on random input, which is all a timing needs). Median of ``runs`` after a
    warm-up."""
    import openvino as ov

    depth = 8
    conv = torch.nn.Sequential(*[m for _ in range(depth) for m in (torch.nn.Conv2d(64, 64, 3, padding=1),
                                                                   torch.nn.ReLU())]).eval()
    x = torch.rand(1, 64, 360, 640)
    flop = depth * 2 * 9 * 64 * 64 * 360 * 640
    graph = ov.convert_model(conv, example_input=x)
    rates = {}
    for name in ("fp32", *lower):
        g = graph
        if name == "int8":
            import nncf

            g = nncf.quantize(graph, nncf.Dataset([torch.rand(1, 64, 64, 64).numpy() for _ in range(4)]),
                              subset_size=4, preset=nncf.QuantizationPreset.MIXED)
        compiled = ov.Core().compile_model(g, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if name == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        request, xn = compiled.create_infer_request(), x.numpy()

        def infer():  # buffers shared both ways, as lightsr.backends runs it: the conv, not 59 MB copies
            request.infer({0: xn}, share_inputs=True, share_outputs=True)

        rates[name] = flop / median_time(infer, runs) / 1e9
    conv, xl = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return {"torch": flop / median_time(lambda: conv(xl), runs) / 1e9, **rates}


def write_section(name: str, text: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text.rstrip() + "\n")
    sections = [RESULTS / f"{n}.md" for n in ORDER if (RESULTS / f"{n}.md").exists()]
    sections += sorted(p for p in RESULTS.glob("*.md") if p.stem not in ORDER)
    header = ("# Benchmarks\n\nEvery number below was measured by the script named in its section, on the "
              "machine it names, from this repository's code. Re-run a script to refresh its section.\n")
    (ROOT / "BENCHMARKS.md").write_text(header + "".join("\n" + p.read_text() for p in sections))


def write_results(name: str, results: dict) -> None:
    """The measurements a model card prints, per shipped model: benchmarks/results/<name>.json
    (``benchmarks/render_cards.py`` renders the cards from it)."""
    import json

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "models": results}, indent=1) + "\n")
