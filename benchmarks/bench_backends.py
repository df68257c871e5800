"""PyTorch against OpenVINO for every shipped SR model: quality (Set5/Set14) and speed.

    python benchmarks/bench_backends.py [--threads 2] [--frames 5]

Per checkpoint and backend: Set5/Set14 Y-PSNR through ``lightsr.evaluate.evaluate_sr``
(whole images), milliseconds per frame whose output is 1280x720 (median of --frames runs,
after one warm-up), and OpenVINO's first-use cost: converting and compiling with an empty
graph cache, then compiling from the cached graph (what every later process pays).
Precision is fp32 on both; OpenVINO at the lower precisions too, each where it can run: bf16
where the CPU reports it, int8 where NNCF is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch
from _report import ROOT, conv_rooflines, machine, median_time, write_section

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
    lower = [p for p, ok in (("bf16", backends.bf16_supported()), ("int8", backends.int8_available())) if ok]
    rooflines = conv_rooflines(args.frames, tuple(lower))
    print("3x3 conv roofline, GFLOP/s:", {k: round(v) for k, v in rooflines.items()})
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
        scores = {b: {n: evaluate_sr(model, BENCH / n, backend=b) for n in ("Set5", "Set14")}
                  for b in ("torch", "openvino")}
        low_ms = {}
        for p in lower:  # the same graph at a lower precision: its speed, and what it costs in PSNR
            t = time.perf_counter()
            net = backends.OpenVINOModel(model, precision=p)  # int8: quantized here (the cache is cold)
            first = time.perf_counter() - t
            scores[p] = {n: evaluate_sr(model, BENCH / n, net=net) for n in ("Set5", "Set14")}
            low_ms[p] = (frame_ms(net, x, args.frames), first)
        probe = backends.auto_record(model)  # what backend="auto" decided, on its probe tile
        gflops = lightsr.describe(model)["gflops_per_megapixel"] * w * h / 1e6
        rows.append((entry.name, f"{w}x{h}", torch_ms, ov_ms, low_ms, cold, warm, scores, probe, gflops))
        print(entry.name, f"torch {torch_ms:.0f} ms, openvino {ov_ms:.0f} ms",
              {p: f"{ms:.0f} ms" for p, (ms, _) in low_ms.items()}, f"first use {cold:.1f} s / {warm:.1f} s",
              {b: round(sc["Set5"].psnr, 3) for b, sc in scores.items()}, probe)
    shutil.rmtree(os.environ["LIGHTSR_CACHE"], ignore_errors=True)
    measured = " and ".join(f"`precision=\"{p}\"`" for p in lower)
    lines = [
        "## Inference backends: PyTorch and OpenVINO (`benchmarks/bench_backends.py`)",
        "",
        "Every shipped SR checkpoint on both backends of `lightsr.backends`, fp32 on both"
        + (f", and OpenVINO at {measured} (bf16 where the CPU reports it, int8 where NNCF is installed): each one's "
           "Set5/Set14 change against OpenVINO fp32, its ms per frame and its first use (int8: quantizing with "
           "an empty cache)" if lower else "") + ". Set5/Set14 Y-PSNR on whole images; ms per frame whose output is "
        "1280x720, median of " + f"{args.frames}" + " runs after a warm-up (PyTorch channels_last, OpenVINO with "
        "dynamic height and width, so every tile size shares one compilation); first use: OpenVINO "
        "converting and compiling with an empty graph cache / compiling from the cached graph (every later "
        "process). `auto` (the default of `enhance` and `upscale_video`) takes, per model, the fastest on "
        f"a {backends.PROBE} px probe tile (timed at first use, then cached); a lower precision only where it "
        f"takes at most {backends.SHARE:.0%} of the best other time and its output is within "
        f"{backends.AGREEMENT:.0f} dB PSNR of fp32's on the held-out calibration squares (lower precisions are "
        "weighed for super-resolution models only; flare models run in fp32). "
        "The auto column is its choice here, with the probe's ms ("
        + " / ".join(["torch", "openvino", *lower]) + ") and each lower precision's agreement. Achieved: a "
        "model's GFLOPs per frame over its time on each backend, and that as a share of the same backend's "
        "roofline, a stack of eight 3x3 convs (64 -> 64 channels, 640x360) timed in this run: "
        + ", ".join(f"{k} {v:.0f}" for k, v in zip(["torch", "openvino", *lower], rooflines.values()))
        + " GFLOP/s. Machine: " + machine() + ".",
        "",
        "| checkpoint | input frame | Set5 torch / openvino | Set14 torch / openvino | ms / frame torch | "
        "ms / frame openvino | speed-up | first use (cold / cached) | auto picks (probe ms; agreement) | "
        "GFLOP/s achieved (of roofline): " + " / ".join(["torch", "openvino", *lower]) + " |"
        + "".join(f" {p}: Set5 / Set14 change (dB), ms / frame, first use |" for p in lower),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + " --- |" * len(lower),
    ]
    for name, size, t_ms, o_ms, low_ms, cold, warm, sc, probe, gflops in rows:
        ms = {"torch": t_ms, "fp32": o_ms, **{p: m for p, (m, _) in low_ms.items()}}
        achieved = " / ".join(f"{gflops / (ms[k] / 1e3):.0f} ({gflops / (ms[k] / 1e3) / rooflines[k]:.0%})"
                              for k in rooflines)
        low = "".join(f" {sc[p]['Set5'].psnr - sc['openvino']['Set5'].psnr:+.3f} / "
                      f"{sc[p]['Set14'].psnr - sc['openvino']['Set14'].psnr:+.3f}, {ms:.0f}, {first:.1f} s |"
                      for p, (ms, first) in low_ms.items())
        agree = ", ".join(f"{p} {probe[f'{p}_agreement_db']:.0f} dB" for p in lower if f"{p}_agreement_db" in probe)
        lines.append(f"| {name} | {size} | {sc['torch']['Set5'].psnr:.3f} / {sc['openvino']['Set5'].psnr:.3f} | "
                     f"{sc['torch']['Set14'].psnr:.3f} / {sc['openvino']['Set14'].psnr:.3f} | {t_ms:.0f} | "
                     f"{o_ms:.0f} | {t_ms / o_ms:.2f}x | {cold:.1f} s / {warm:.1f} s | "
                     f"**{backends.LABELS[probe['choice']]}** ("
                     + " / ".join(f"{probe[k]:.0f}" for k in ("torch_ms", "openvino_ms", *(f"{p}_ms" for p in lower))
                                  if k in probe)
                     + (f"; {agree}" if agree else "") + f") | {achieved} |" + low)
    lines += ["", "Reproduce: `python benchmarks/bench_backends.py`."]
    write_section("backends", "\n".join(lines))


if __name__ == "__main__":
    main()
