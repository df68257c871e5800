"""PyTorch against OpenVINO for every shipped SR model: quality (Set5/Set14) and speed.

    python benchmarks/bench_backends.py [--threads 2] [--frames 5]

Per checkpoint and backend: Set5/Set14 Y-PSNR through ``lightsr.evaluate.evaluate_sr``
(whole images), milliseconds per frame whose output is 1280x720 (median of --frames runs,
after one warm-up), and OpenVINO's first-use cost: converting and compiling with an empty
graph cache, then compiling from the cached graph (what every later process pays).
Precision is fp32 on both; bf16 is measured where the CPU reports it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch
from _report import ROOT, machine, median_time, write_section

import lightsr
from lightsr import backends, zoo
from lightsr.evaluate import evaluate_sr

BENCH = ROOT / "data" / "sr-bench"


@torch.inference_mode()
def frame_ms(net, x: torch.Tensor, frames: int) -> float:
    return median_time(lambda: net(x), frames) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["LIGHTSR_CACHE"] = tempfile.mkdtemp(prefix="lightsr-bench-")  # a cold graph cache
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    rows = []
    for entry in zoo.available("super-resolution"):
        model = lightsr.load(zoo.CHECKPOINTS / entry.name).eval()
        w, h = 1280 // model.scale, 720 // model.scale
        x = torch.rand(1, 3, h, w)
        t = time.perf_counter()
        compiled = backends.OpenVINOModel(model)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        backends.OpenVINOModel(model)
        warm = time.perf_counter() - t
        torch_ms = frame_ms(model.to(memory_format=torch.channels_last),
                            x.contiguous(memory_format=torch.channels_last), args.frames)
        ov_ms = frame_ms(compiled, x, args.frames)
        probe = backends.auto_record(model)  # what backend="auto" decided, on its probe tile
        auto = {"torch": "torch", "fp32": "openvino", "bf16": "openvino bf16"}[probe["choice"]]
        scores = {b: {n: evaluate_sr(model, BENCH / n, backend=b) for n in ("Set5", "Set14")}
                  for b in ("torch", "openvino")}
        if bf16:  # the same compiled graph at bfloat16: its speed, and what it costs in PSNR
            half = backends.OpenVINOModel(model, precision="bf16")
            scores["bf16"] = {n: evaluate_sr(model, BENCH / n, net=half) for n in ("Set5", "Set14")}
            bf16_ms = frame_ms(half, x, args.frames)
        else:
            bf16_ms = None
        rows.append((entry.name, f"{w}x{h}", torch_ms, ov_ms, bf16_ms, cold, warm, scores, auto, probe))
        print(entry.name, f"torch {torch_ms:.0f} ms, openvino {ov_ms:.0f} ms"
              + (f", bf16 {bf16_ms:.0f} ms" if bf16_ms else "") + f", first use {cold:.1f} s / {warm:.1f} s",
              {b: round(s["Set5"].psnr, 3) for b, s in scores.items()})
    shutil.rmtree(os.environ["LIGHTSR_CACHE"], ignore_errors=True)
    lines = [
        "## Inference backends: PyTorch and OpenVINO (`benchmarks/bench_backends.py`)",
        "",
        "Every shipped SR checkpoint on both backends of `lightsr.backends` (fp32 on both; "
        + ("and OpenVINO at `precision=\"bf16\"`, which this CPU reports: its Set5/Set14 change against "
           "OpenVINO fp32 and its ms per frame" if bf16 else "this CPU does not report bf16 to OpenVINO, so bf16 "
           "was not measured") + "). Set5/Set14 Y-PSNR on whole images; ms per frame whose output is "
        "1280x720, median of " + f"{args.frames}" + " runs after a warm-up (PyTorch channels_last, OpenVINO with "
        "dynamic height and width, so every tile size shares one compilation); first use: OpenVINO "
        "converting and compiling with an empty graph cache / compiling from the cached graph (every later "
        "process). `auto` (the default of `enhance` and `upscale_video`) takes, per model, the faster backend on "
        f"a {backends.PROBE} px probe tile (timed at first use, then cached), OpenVINO bf16 included where the CPU "
        f"reports it and its output is within {backends.BF16_AGREEMENT:.0f} dB PSNR of fp32's; the auto column is "
        "its choice here, with the probe's ms (torch / openvino / bf16) and bf16's agreement. Machine: "
        + machine() + ".",
        "",
        "| checkpoint | input frame | Set5 torch / openvino | Set14 torch / openvino | ms / frame torch | "
        "ms / frame openvino | speed-up | first use (cold / cached) | auto picks (probe ms) |"
        + (" bf16: Set5 / Set14 change (dB), ms / frame |" if bf16 else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if bf16 else ""),
    ]
    for name, size, t_ms, o_ms, b_ms, cold, warm, s, auto, probe in rows:
        half = (f" {s['bf16']['Set5'].psnr - s['openvino']['Set5'].psnr:+.3f} / "
                f"{s['bf16']['Set14'].psnr - s['openvino']['Set14'].psnr:+.3f}, {b_ms:.0f} |") if b_ms else ""
        lines.append(f"| {name} | {size} | {s['torch']['Set5'].psnr:.3f} / {s['openvino']['Set5'].psnr:.3f} | "
                     f"{s['torch']['Set14'].psnr:.3f} / {s['openvino']['Set14'].psnr:.3f} | {t_ms:.0f} | "
                     f"{o_ms:.0f} | {t_ms / o_ms:.2f}x | {cold:.1f} s / {warm:.1f} s | {auto} ("
                     + " / ".join(f"{probe[k]:.0f}" for k in ("torch_ms", "openvino_ms", "bf16_ms") if k in probe)
                     + (f"; bf16 {probe['bf16_agreement_db']:.0f} dB from fp32" if "bf16_agreement_db" in probe
                        else "") + ") |" + half)
    lines += ["", "Reproduce: `python benchmarks/bench_backends.py`."]
    write_section("backends", "\n".join(lines))


if __name__ == "__main__":
    main()
