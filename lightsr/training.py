"""Machinery shared by the training scripts in train/: checkpoints, NaN guard, schedule, logs.

The loops themselves stay in train/ where they can be read top to bottom; what lives here
is the part that is the same for every model:

- ``save_checkpoint`` / ``load_checkpoint``: a checkpoint is a folder that is also a
  loadable Hub model folder (config.json + model.safetensors) plus
  ``training_state.safetensors`` (optimizer moments, EMA weights, torch RNG) and
  ``training_state.json`` (step, param groups, numpy/python RNG, counters). No pickle
  anywhere. Folders are written under a temporary name and renamed into place, so a run
  killed at any moment leaves either the previous checkpoint or the new one, never half.
- ``NaNGuard``: a non-finite loss or gradient skips the step; ``patience`` of them in a
  row restore the last good weights and optimizer state and halve the learning rate.
- ``warm_start``: initialise a model from another scale's weights (every tensor whose name
  and shape match), the way EDSR trains x4 from its x2 model.
- ``learning_rate``: warm-up then cosine or step decay, a pure function of the step, so
  resuming needs no scheduler object.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .errors import LightSRError, first_line
from .models.base import LightSRModel
from .weights import load_weights

__all__ = [
    "setup_distributed",
    "learning_rate",
    "NaNGuard",
    "CSVLog",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_ema",
    "find_checkpoint",
    "atomic_replace_dir",
    "keep_if_best",
    "unwrap",
    "make_ema",
    "start_run",
    "check_replicas_identical",
    "parse_overrides",
    "split_holdout",
    "warm_start",
    "record_segment",
    "batches",
    "TimeBudget",
    "cpu_name",
]

logger = logging.getLogger(__name__)


# -- distributed ---------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment (if any), init the process group, pick the device.

    ``device="auto"``: CUDA when present, else CPU. Multi-process runs use NCCL on CUDA
    and gloo on CPU.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def unwrap(model: torch.nn.Module) -> LightSRModel:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def all_finite(value: torch.Tensor, dist: DistInfo) -> bool:
    """True when ``value`` is finite on every rank (so all ranks skip or step together)."""
    ok = torch.tensor(float(torch.isfinite(value).all()), device=value.device)
    if dist.world_size > 1:
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    return bool(ok.item() > 0)


# -- run setup ---------------------------------------------------------------------------------
def start_run(args) -> tuple[DistInfo, Path, np.random.Generator]:
    """What every training script does first: logging, threads, devices/DDP, the run folder, seeds.

    Reads ``args.threads``, ``args.device``, ``args.out`` and ``args.seed``; each rank gets
    its own data stream (seed, rank).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = setup_distributed(args.device)
    out = Path(args.out)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + dist.rank)
    return dist, out, np.random.default_rng([args.seed, dist.rank])


class _SampleStream(torch.utils.data.IterableDataset):
    """Endless ``sample(rng, batch)`` calls in a DataLoader worker, each worker its own seeded rng."""

    def __init__(self, sample, batch: int, seed: list[int]):
        super().__init__()
        self.sample, self.batch, self.seed = sample, batch, seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([*self.seed, worker.id if worker else 0])
        while True:
            yield self.sample(rng, self.batch)


def batches(sample, rng: np.random.Generator, batch: int, *, workers: int = 0, seed: list[int] | None = None,
            pin_memory: bool = False):
    """Endless training batches ``sample(rng, batch)``.

    ``workers=0``: made in this process from ``rng``, whose state the checkpoint keeps, so a
    resumed run sees exactly the batches an uninterrupted one would. ``workers > 0``: made
    ahead by that many DataLoader processes (what keeps a GPU fed when synthesis is slow),
    each with its own generator seeded by ``seed`` plus its worker id; pass the step in
    ``seed`` so a resumed run draws new batches rather than repeating the first ones. Batch
    order then depends on worker timing: statistically the same stream, not bit-exact.
    """
    if workers <= 0:
        while True:
            yield sample(rng, batch)
    loader = torch.utils.data.DataLoader(_SampleStream(sample, batch, list(seed or [0])), batch_size=None,
                                         num_workers=workers, prefetch_factor=4, pin_memory=pin_memory,
                                         persistent_workers=True)
    yield from loader


class TimeBudget:
    """Fit a run's schedule to a wall-clock budget (``--minutes``) on hardware of unknown speed.

    The schedule is a function of the step and the total, so the total must be known: the
    measurement starts at step ``start`` (past the warm-up, when data workers have settled) or
    once 5% of the budget is spent, whichever comes first, and lasts ``probe`` steps or 10% of
    the budget (at least ``MIN_PROBE`` steps), whichever comes first; the measured step rate
    then sets the total, so the schedule ends when the budget does (``safety`` leaves time for
    the last checkpoint). The time caps matter on a CPU, where 200 steps of a flare model can
    take longer than the budget. ``expired`` stops a run that still overruns.

    Validation is not a step: the trainer reports each one's duration (``validated``). Time
    spent validating inside the probe is left out of the step rate (on a GPU one validation of a
    flare model, scored on the CPU, took longer than the probe's steps, and a 10-minute budget
    was planned as 237 steps), and the plan charges the validations still to come, every
    ``val_every`` steps and once at the end, at the last one's cost. A plan made before any
    validation (a slow CPU run plans after 15% of its budget, possibly before the first
    ``val_every``) is made once more at the first validation, then with its cost.
    """

    SETTLE, MEASURE, MIN_PROBE = 0.05, 0.10, 5  # budget shares; steps

    def __init__(self, minutes: float, start: int, probe: int = 200, safety: float = 0.93, val_every: int = 0):
        self.seconds, self.start, self.probe, self.safety = minutes * 60, start, probe, safety
        self.val_every = val_every
        self.t0 = time.monotonic()
        self.mark: tuple[int, float] | None = None
        self.planned = False
        self.excluded = 0.0  # seconds of validation inside the probe
        self.val_cost = 0.0  # the last validation's seconds
        self.rate = 0.0  # steps/s, as the probe measured it
        self.replan = False

    def validated(self, seconds: float) -> None:
        """A validation took ``seconds``: left out of the probe's step rate, charged to the plan."""
        self.replan = self.planned and not self.val_cost and bool(self.val_every)  # planned without its cost
        self.val_cost = seconds
        if self.mark is not None and not self.planned:
            self.excluded += seconds

    def total(self, step: int, current: int) -> int:
        """The run's total steps given that ``step`` steps are done (``current`` until it is known)."""
        now = time.monotonic()
        if self.replan:
            self.replan = False
            return self._plan(step, now, self.rate)
        if self.seconds <= 0 or self.planned:
            return current
        if self.mark is None:
            if step >= self.start or now - self.t0 >= self.SETTLE * self.seconds:
                self.mark = (step, now)
            return current
        measured = step - self.mark[0]
        timed_out = measured >= self.MIN_PROBE and now - self.mark[1] - self.excluded >= self.MEASURE * self.seconds
        if measured >= self.probe or timed_out:
            self.planned = True
            return self._plan(step, now, measured / max(now - self.mark[1] - self.excluded, 1e-9))
        return current

    def _plan(self, step: int, now: float, rate: float) -> int:
        """The total that ``rate`` steps/s, plus the validations to come, fits into what is left."""
        self.rate = rate
        left = self.seconds * self.safety - (now - self.t0) - self.val_cost  # the final validation
        per_step = 1 / rate + (self.val_cost / self.val_every if self.val_every else 0.0)
        planned = max(step + 1, step + int(left / per_step))
        logger.info("time budget: %.2f steps/s, %.0f s per validation, %.0f s left: the schedule ends at step %d",
                    rate, self.val_cost, left, planned)
        return planned

    def expired(self) -> bool:
        return self.seconds > 0 and time.monotonic() - self.t0 > self.seconds

    def after_step(self, state: dict[str, Any], args, stop: int, on_plan=None) -> int:
        """What a trainer calls after each step: once the total is planned it becomes
        ``args.steps`` and the sitting's recorded length, and ``on_plan()`` runs (to rewrite
        args.json, say); returns the step to stop at (now, once the budget is spent)."""
        planned = self.total(state["step"], args.steps)
        newly = self.planned and getattr(args, "planned", True) is False  # the first plan of the run
        if planned != args.steps or newly:
            args.steps = stop = planned
            args.planned = True  # recorded in args.json: a resume keeps this total (planned_steps)
            state["segments"][-1]["steps"] = planned
            if on_plan is not None:
                on_plan()
        return state["step"] if self.expired() else stop


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["features=48", "upsampler=transpose"]`` -> {"features": 48, "upsampler": "transpose"} (JSON values)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LightSRError(f"--set takes FIELD=VALUE pairs, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# folders no trainer may take photos from: the public SR benchmarks (measured on, here and from outside)
BENCHMARK_FOLDERS = frozenset({"sr-bench", "set5", "set14", "bsd100", "b100", "bsds100", "urban100", "manga109"})
# and, for flare removal, the photos kept as its flare-free test set (benchmarks/bench_flare.py)
FLARE_TEST_FOLDERS = frozenset({"debian-photos"})
# and the photos that hold real lens flare (data/flare-photos): as a flare scene, their flare would be the target
REAL_FLARE_FOLDERS = frozenset({"flare-photos"})


def check_training_folders(folders, task: str) -> None:
    """Refuse, with one line, a --data folder that is (or lies inside) a public SR benchmark
    (Set5, Set14, BSD100, Urban100, Manga109, DIV2K validation, data/sr-bench) or, for
    ``task`` "flare-removal", a flare test set (training on what measures a model makes its
    numbers meaningless) or photos with real flare (their flare would be learned as scene)."""
    for folder in folders:
        parts = [p.lower() for p in Path(folder).resolve().parts]
        if any(p in BENCHMARK_FOLDERS or (p.startswith("div2k") and "valid" in p) for p in parts):
            raise LightSRError(f"{folder} is a public super-resolution benchmark: models are measured on it, "
                               "never trained on it")
        if task == "flare-removal" and any(p in FLARE_TEST_FOLDERS for p in parts):
            raise LightSRError(f"{folder} is the flare-free test set of benchmarks/bench_flare.py: flare models "
                               "are measured on it, never trained on it")
        if task == "flare-removal" and any(p in REAL_FLARE_FOLDERS for p in parts):
            raise LightSRError(f"{folder} holds photos with real lens flare: as flare scenes their flare would be "
                               "the target, so flare models never train on them")


def split_holdout(files: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """``files`` (sorted, folder by folder) -> (the ones to train on, the last ``holdout``: validation only)."""
    if len(files) <= holdout:
        raise LightSRError(f"--holdout {holdout} leaves no training photo: need more than {holdout} photos, "
                           f"found {len(files)}")
    return files[: len(files) - holdout], files[len(files) - holdout:]


# -- EMA ---------------------------------------------------------------------------------------
def make_ema(model: torch.nn.Module, decay: float, warmup: bool = True) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights, with warm-up.

    With ``warmup`` the effective decay is min(decay, (1 + n) / (10 + n)) after n updates (as
    TensorFlow's ExponentialMovingAverage with num_updates): a plain 0.999 EMA would still be 60%
    the random initial weights after 500 steps. A fine-tune starts from weights worth keeping, so
    it passes ``warmup=False``: the average then starts at them (not at the weights after the
    first step) and holds on to them at the full decay instead of following the first noisy steps.
    """

    @torch.no_grad()
    def update(ema_params, params, num_updates):
        if not ema_params[0].is_floating_point():  # e.g. BatchNorm's num_batches_tracked
            torch._foreach_copy_(ema_params, params)
            return
        n = int(num_updates)
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        torch._foreach_lerp_(ema_params, params, 1 - d)

    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    if not warmup:
        ema.update_parameters(model)  # the first update copies: the average's first value is the start
    return ema


def check_replicas_identical(model: torch.nn.Module, dist: DistInfo) -> None:
    """DDP keeps replicas in lock-step; prove it at the end of a run rather than assume it."""
    if dist.world_size == 1:
        return
    digest = torch.stack([p.detach().double().sum() for p in unwrap(model).parameters()]).sum().reshape(1)
    digests = [torch.zeros_like(digest) for _ in range(dist.world_size)]
    torch.distributed.all_gather(digests, digest)
    if any(not torch.equal(d, digests[0]) for d in digests):
        raise RuntimeError(f"DDP replicas diverged: weight checksums {[d.item() for d in digests]}")
    logger.info("weights identical across %d ranks (checksum %.10g)", dist.world_size, digest.item())


# -- schedule ------------------------------------------------------------------------------
def learning_rate(step: int, *, base: float, total: int, schedule: str = "cosine", warmup: int = 0,
                  min_ratio: float = 0.01, decay_every: int = 0, gamma: float = 0.5) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine to ``min_ratio * base``,
    step decay by ``gamma`` every ``decay_every`` steps, or constant."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    if schedule == "step":
        return base * gamma ** ((step // decay_every) if decay_every else 0)
    if schedule == "constant":
        return base
    raise ValueError(f"unknown schedule {schedule!r}; use cosine, step or constant")


# -- NaN guard -------------------------------------------------------------------------------
class NaNGuard:
    """Skip non-finite steps; after ``patience`` in a row, roll back and halve the LR.

    Call ``check(loss, grad_norm)`` after backward: it returns True when the optimizer may
    step. Call ``remember(model, optimizer)`` after good steps every so often to refresh
    the state a rollback returns to. ``lr_scale`` multiplies the scheduled learning rate.
    """

    def __init__(self, patience: int = 3, lr_factor: float = 0.5):
        self.patience, self.lr_factor = patience, lr_factor
        self.lr_scale = 1.0
        self.bad_in_row = 0
        self.skipped = 0
        self.rollbacks = 0
        self._good: tuple[dict, dict] | None = None

    def remember(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._good = (copy.deepcopy(unwrap(model).state_dict()), copy.deepcopy(optimizer.state_dict()))

    def check(self, finite: bool, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        if finite:
            self.bad_in_row = 0
            return True
        self.skipped += 1
        self.bad_in_row += 1
        logger.warning("step %d: non-finite loss or gradient, step skipped (%d skipped so far)", step, self.skipped)
        if self.bad_in_row >= self.patience:
            self.lr_scale *= self.lr_factor
            self.rollbacks += 1
            self.bad_in_row = 0
            if self._good is not None:
                unwrap(model).load_state_dict(self._good[0])
                optimizer.load_state_dict(self._good[1])
            logger.warning("step %d: %d non-finite steps in a row: restored the last good state, "
                           "learning rate scale now %.3g", step, self.patience, self.lr_scale)
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"lr_scale": self.lr_scale, "skipped": self.skipped, "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr_scale = state["lr_scale"]
        self.skipped = state["skipped"]
        self.rollbacks = state["rollbacks"]


# -- logs --------------------------------------------------------------------------------------
class CSVLog:
    """Append rows to a CSV file (the training curve), writing the header once."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = Path(path), columns

    def write(self, **row: Any) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


# -- checkpoints -----------------------------------------------------------------------------
def atomic_replace_dir(target: Path, fill) -> None:
    """Build a folder with ``fill(tmp_path)`` and rename it to ``target`` atomically.

    If ``target`` exists it is first renamed to ``target.old`` and removed afterwards;
    ``find_checkpoint`` falls back to ``.old`` should we die between the two renames.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the published folder should read like any other
    try:
        fill(tmp)
        for f in tmp.iterdir():  # make the data durable before the rename publishes it
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
            f.chmod(0o644)  # some writers (safetensors via huggingface_hub) leave files private
        old = target.with_name(target.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def keep_if_best(out: Path, state: dict[str, Any], score: float, model: torch.nn.Module) -> bool:
    """Save ``model`` as ``out``/best (atomically) when ``score`` beats ``state["best_psnr"]``.

    A finite score also counts as best when best/ is missing, as in a resumed clone that
    kept only last/, so the end of a run always has weights to card and publish. A
    non-finite score never becomes best. Returns whether best/ was written.
    """
    best = Path(out) / "best"
    if not (score > state["best_psnr"] or (math.isfinite(score) and not best.exists())):
        return False
    state["best_psnr"] = score
    atomic_replace_dir(best, lambda tmp: unwrap(model).save_pretrained(tmp))
    return True


def find_checkpoint(folder: Path) -> Path | None:
    """The checkpoint folder to resume from: ``folder`` itself, else its ``.old`` twin."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "training_state.json").is_file():
            return candidate
    return None


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    py = random.getstate()
    return tensors, {"python": [py[0], list(py[1]), py[2]]}


def save_checkpoint(target: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    *, ema: torch.nn.Module | None = None, data_rng: np.random.Generator | None = None,
                    extras: dict[str, torch.nn.Module | torch.optim.Optimizer] | None = None) -> None:
    """Write a resumable checkpoint folder atomically (see the module docstring).

    ``extras`` holds further modules or optimizers to save by name, e.g. a GAN's
    discriminator and its optimizer.
    """
    net = unwrap(model)
    tensors: dict[str, torch.Tensor] = {}
    groups: dict[str, Any] = {}
    parts: dict[str, torch.nn.Module | torch.optim.Optimizer] = {"optimizer": optimizer, **(extras or {})}
    if ema is not None:
        parts["ema"] = ema
    for name, part in parts.items():
        if isinstance(part, torch.optim.Optimizer):
            opt = part.state_dict()
            groups[name] = opt["param_groups"]
            for idx, slots in opt["state"].items():
                for key, value in slots.items():
                    t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                    tensors[f"{name}/{idx}/{key}"] = t.detach().cpu().contiguous()
        else:
            for key, value in unwrap(part).state_dict().items():
                tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
    rng_tensors, rng_json = _rng_state()
    tensors.update(rng_tensors)
    meta = dict(state)
    meta["param_groups"] = groups
    meta["rng"] = rng_json
    if data_rng is not None:
        meta["rng"]["data"] = data_rng.bit_generator.state

    def fill(tmp: Path) -> None:
        net.save_pretrained(tmp)
        save_file(tensors, str(tmp / "training_state.safetensors"))
        (tmp / "training_state.json").write_text(json.dumps(meta, indent=1))

    atomic_replace_dir(Path(target), fill)


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                    ema: torch.nn.Module | None = None, data_rng: np.random.Generator | None = None,
                    extras: dict[str, torch.nn.Module | torch.optim.Optimizer] | None = None) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; returns the saved ``state`` dict."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "training_state.json").read_text())
        tensors = load_file(str(folder / "training_state.safetensors"))
    except (OSError, ValueError) as err:
        raise LightSRError(f"cannot resume from '{folder}': {err}") from None
    load_weights(unwrap(model), folder / "model.safetensors", source=str(folder))
    parts: dict[str, torch.nn.Module | torch.optim.Optimizer] = {"optimizer": optimizer, **(extras or {})}
    if ema is not None:
        parts["ema"] = ema
    groups = meta.pop("param_groups", None)
    if groups is None:  # checkpoints written before extras existed kept only the main optimizer's groups
        groups = {"optimizer": meta.pop("optimizer_param_groups")}
    for name, part in parts.items():
        prefix = name + "/"
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if isinstance(part, torch.optim.Optimizer):
            opt_state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in mine.items():
                idx, slot = key.split("/", 1)
                opt_state.setdefault(int(idx), {})[slot] = value
            part.load_state_dict({"state": opt_state, "param_groups": groups[name]})
        else:
            unwrap(part).load_state_dict(mine)
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    rng = meta.pop("rng")
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
    if data_rng is not None and "data" in rng:
        data_rng.bit_generator.state = rng["data"]
    return meta


def checkpoint_ema(folder: str | os.PathLike) -> LightSRModel:
    """The EMA weights of a resumable checkpoint folder, as a model (eval mode).

    What the trainers validate and keep as ``best`` is the EMA, not the raw weights in the
    checkpoint's model.safetensors; this recovers it from ``training_state.safetensors``,
    e.g. to publish interim weights of a run that has not finished. Raises
    ``LightSRError`` when the checkpoint holds no EMA (a run with ``--ema 0``).
    """
    from .hub import load

    folder = Path(folder)
    model = load(folder, device="cpu")
    try:
        tensors = load_file(str(folder / "training_state.safetensors"))
    except (OSError, ValueError) as err:
        raise LightSRError(f"cannot read the training state of '{folder}': {err}") from None
    prefix = "ema/module."
    ema = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not ema:
        raise LightSRError(f"'{folder}' holds no EMA weights (trained with --ema 0?)")
    try:
        model.load_state_dict(ema)
    except RuntimeError as err:
        raise LightSRError(f"the EMA weights in '{folder}' do not fit its config: {first_line(err)}") from None
    return model.eval()


_COLOURS = {1: "luma", 3: "RGB"}


def model_colours(model: torch.nn.Module) -> int:
    """The channels a model's network reads: 3 (RGB), or 1 for a luma model (ECBSR ``colors=1``)."""
    return getattr(getattr(unwrap(model), "config", None), "colors", 3)


def warm_start(model: torch.nn.Module, source: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy every tensor of ``source`` whose name and shape match ``model``'s; return (copied, skipped).

    ``source`` is a model folder (or Hub repo id) of the same architecture, typically the
    x2 model when training x4: the feature extractor transfers, the upsampler does not.
    A model with ``grow_identity`` (ECBSR) makes the blocks a shallower source lacks identities,
    so a deeper variant starts from exactly what the shallower one computes.
    Safetensors only, like every other load. Raises ``LightSRError`` when nothing matches,
    the architectures differ, or the colour spaces do (an RGB model's body warm-starting a luma
    one: its first layer starts fresh, the rest load, and training stays below bicubic).
    """
    from .weights import read_config, weights_file

    config = read_config(source)
    target = unwrap(model)
    if config.get("architecture") != getattr(target, "architecture", None):
        raise LightSRError(f"--init '{source}' is a {config.get('architecture')} model, "
                           f"not {getattr(target, 'architecture', type(target).__name__)}")
    theirs, ours = config.get("colors", 3), model_colours(target)
    if theirs != ours:  # measured: an RGB ECBSR's body in a luma one trapped training below bicubic
        raise LightSRError(f"--init '{source}' reads {_COLOURS.get(theirs, theirs)}, the model "
                           f"{_COLOURS.get(ours, ours)}: features learned on one do not carry over; start from scratch")
    path = weights_file(str(source), revision=None)
    try:
        state = load_file(path)
    except (OSError, ValueError) as err:
        raise LightSRError(f"cannot read weights of '{source}': {err}") from None
    own = target.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(set(own) - set(copied))
    if not copied:
        raise LightSRError(f"--init '{source}': no tensor matches the model's names and shapes")
    target.load_state_dict({k: state[k] for k in copied}, strict=False)
    grow = getattr(target, "grow_identity", None)  # a deeper model from a shallower one: new blocks start as identities
    if grow is not None:
        grown = grow(skipped)
        if grown:
            logger.info("blocks %s start as identities (the model computes what '%s' does)", grown, source)
    return copied, skipped


AMP_HELP = ("bf16 autocast of the forward passes (weights, losses and optimizer state stay fp32): on a CPU "
            "with AMX (Intel Sapphire Rapids and later) 2x to 3x faster steps than fp32 (bench_training.py), "
            "on CUDA faster too; on a CPU without AMX, time it first")


def autocast(device: torch.device, enabled: bool):
    """The ``--amp`` context of both trainers: bf16 autocast on ``device`` (CPU or CUDA) when
    ``enabled``, else a no-op. Outputs come back in bf16 where an op ran in it: take ``.float()``
    before a loss."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def cpu_layout(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in channels_last on a CPU, where its convolutions run faster so (fp32 and bf16 alike),
    else as it is: the trainers' layout for the networks they train."""
    return module.to(memory_format=torch.channels_last) if device.type == "cpu" else module


def cpu_name() -> str:
    """This machine's CPU model (from /proc/cpuinfo where there is one)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_segment(state: dict[str, Any], *, steps: int, lr: float, threads: int = 0,
                   device: torch.device | None = None) -> None:
    """Note in ``state`` (saved with every checkpoint) that a sitting of the run starts here.

    Each entry is the step it starts at, the schedule length, the learning rate, the CPU
    threads in force and the GPU if one trained it, so a card can say honestly how a resumed
    run was trained (e.g. a schedule shortened at step 5,400 to finish within a session).
    """
    entry = {"step": state["step"], "steps": steps, "lr": lr, "threads": threads or torch.get_num_threads(),
             "cpu": cpu_name()}
    if device is not None and device.type == "cuda":
        entry["gpu"] = torch.cuda.get_device_name(device)
    state.setdefault("segments", []).append(entry)


# -- the run's record of itself (what its card renders) ------------------------------------------
RUN_RECORD = "run.json"


def command_line(script: str, args: dict[str, Any], keys: list[str]) -> list[str]:
    """The command that repeats a run: ``python train/SCRIPT`` and each flag of ``keys`` that was
    given, with its value from ``args`` (a switch bare; 0 is a value, None/False/empty are absent)."""
    parts = ["python", f"train/{script}"]
    for k in keys:
        v = args.get(k)
        if v is None or v is False or v in ("", []):
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            parts.append(flag)
        elif isinstance(v, list):
            parts += [flag, *(str(x) for x in v)]
        else:
            parts += [flag, str(v)]
    return parts


def write_run_record(out: Path, record: dict[str, Any]) -> None:
    """Write ``out``/run.json atomically: what the run did, in the trainer's own words.

    ``record`` holds ``script``; ``command`` (argv, from ``command_line``); ``data``,
    ``objective`` (every loss term with its weight, the optimizer), ``recipe`` (a one-line
    summary for a card's earlier-stage line) and ``architecture`` (strings); optional
    ``initialisation`` (what a warm start copied), ``steps_detail`` (appended to the steps
    line) and ``lines`` (further card lines). Steps, hours, hardware and every sitting are in
    the run's progress (``read_progress``); cards render the two and nothing else."""
    from .imaging import write_atomically

    text = json.dumps(record, indent=1) + "\n"
    write_atomically(Path(out) / RUN_RECORD, lambda f: f.write(text.encode()))


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run.json a trainer wrote in ``run_dir``."""
    path = Path(run_dir) / RUN_RECORD
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LightSRError(f"{run_dir}: no {RUN_RECORD} (the record a trainer writes of what it did)") from None


ALL_WEIGHTS = "all weights"  # a warm start's record when every tensor was copied: the run continues its source


def initial_weights(model: torch.nn.Module, args, out: Path) -> str | None:
    """A new run with --init: warm-start ``model`` (``warm_start``), log it, and return the words
    for its record (all weights, or which modules started fresh). A resumed run: the first
    sitting's words, from its run.json. Else None."""
    if args.init and not args.resume:
        copied, skipped = warm_start(model, args.init)
        logger.info("initialised %d tensors from %s; %d start fresh: %s", len(copied), args.init, len(skipped),
                    ", ".join(skipped) or "none")
        if not skipped:
            return ALL_WEIGHTS
        fresh = sorted({k.rsplit(".", 1)[0] for k in skipped})
        return (f"every tensor whose name and shape match ({len(copied)}); {len(skipped)} start fresh: "
                + ", ".join(fresh))
    if args.resume and (Path(out) / RUN_RECORD).is_file():
        return read_run_record(out).get("initialisation")
    return None


# -- what the two trainers' loops share -----------------------------------------------------------
class Bookkeeping:
    """The bookkeeping a training loop shares, not the loop itself (which each script keeps in
    view): the guarded optimizer step, the tail of every step (elapsed time, the time budget, the
    curve's row, validation, the checkpoint cadence) and the end of the run.

    ``state`` is the checkpointed dict (step, elapsed_s, best_psnr, segments); ``validate()``
    scores and keeps the best weights, returning the PSNR; ``checkpoint()`` saves ``last``;
    ``write_args()`` rewrites args.json and run.json when --minutes plans the schedule.

    Ctrl-C (SIGINT) or SIGTERM in a single-process run ends it cleanly: the step in flight
    finishes, ``last`` is saved (atomically, as always) and ``finish`` says how to resume; a
    second signal stops at once. Without this, an interrupt lost up to --save-every-min of work
    and printed a traceback.
    """

    def __init__(self, args, dist, out: Path, state: dict[str, Any], *, model, net, optimizer, ema, guard,
                 validate: Callable[[], float], checkpoint: Callable[[], None], write_args: Callable[[], None],
                 bar):
        self.args, self.dist, self.out, self.state = args, dist, Path(out), state
        self.model, self.net, self.optimizer, self.ema, self.guard = model, net, optimizer, ema, guard
        self.validate, self.checkpoint, self.write_args, self.bar = validate, checkpoint, write_args, bar
        self.stop = min(args.steps, args.stop_at) if args.stop_at else args.steps
        # --minutes is the run's whole budget: a resume that still has to plan gets what is left of it
        left = max(args.minutes - state["elapsed_s"] / 60, 1 / 60) if args.minutes else 0
        self.budget = TimeBudget(left, start=state["step"] + 200, val_every=args.val_every)
        self.start = time.monotonic() - state["elapsed_s"]
        self.last_save = time.monotonic()
        self.val_psnr = float("nan")
        guard.remember(net, optimizer)
        self.interrupted: str | None = None
        self._handlers = {}
        if dist.world_size == 1 and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._handlers[sig] = signal.signal(sig, self._interrupt)

    def _interrupt(self, signum, frame) -> None:
        if self.interrupted:  # the second signal: stop now
            raise KeyboardInterrupt
        self.interrupted = signal.Signals(signum).name
        logger.warning("%s: stopping after this step and saving %s (send it again to stop at once)",
                       self.interrupted, self.out / "last")

    def _restore_handlers(self) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers = {}

    @property
    def running(self) -> bool:
        return self.state["step"] < self.stop and not self.interrupted

    def optimizer_step(self, step: int, finite: bool) -> None:
        """Step (and update the EMA) if the NaN guard lets this step through; it rolls back and
        lowers the learning rate after repeated non-finite steps, from a state remembered every 100."""
        if self.guard.check(finite, step, self.net, self.optimizer):
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            if step % 100 == 0:
                self.guard.remember(self.net, self.optimizer)

    def after_step(self, curve: CSVLog, row: Callable[[], dict[str, Any]], **postfix: str) -> None:
        """Count the step; plan or end the schedule by the budget; then, on the main process, the
        curve's row every --log-every steps and at the stop, validation every --val-every steps
        and at the end, the progress bar, and a checkpoint every --save-every-min and at the stop."""
        state, args = self.state, self.args
        state["step"] += 1
        state["elapsed_s"] = time.monotonic() - self.start
        self.stop = self.budget.after_step(state, args, self.stop,
                                           on_plan=lambda: (setattr(self.bar, "total", args.steps), self.write_args()))
        if not self.dist.is_main:
            return
        if state["step"] % args.log_every == 0 or state["step"] == self.stop:
            curve.write(step=state["step"], skipped=self.guard.skipped, elapsed_s=f"{state['elapsed_s']:.0f}", **row())
        if state["step"] % args.val_every == 0 or state["step"] == args.steps:
            began = time.monotonic()
            self.val_psnr = self.validate()
            self.budget.validated(time.monotonic() - began)
        self.bar.set_postfix(**postfix, psnr=f"{self.val_psnr:.2f}", skipped=self.guard.skipped)
        self.bar.update(1)
        if time.monotonic() - self.last_save > args.save_every_min * 60 or state["step"] == self.stop:
            self.checkpoint()
            self.last_save = time.monotonic()

    def finish(self) -> bool:
        """End the loop: True on the main process when the schedule is complete and best/ holds
        validated weights (then the trainer cards and pushes them); False when the run stopped
        early (--stop-at, the budget), after saying how to resume, and on other processes."""
        self.bar.close()
        self._restore_handlers()
        check_replicas_identical(self.model, self.dist)
        if not self.dist.is_main:
            return False
        if self.interrupted:
            self.checkpoint()
            logger.info("%s at step %d of %d: %s saved; continue with the same command plus --resume",
                        self.interrupted, self.state["step"], self.args.steps, self.out / "last")
            return False
        if self.state["step"] < self.args.steps:
            logger.info("stopped at step %d of %d; continue with the same command plus --resume",
                        self.state["step"], self.args.steps)
            return False
        if not (self.out / "best").exists():
            self.validate()
        if not (self.out / "best").exists():
            raise LightSRError(f"no validation of this run gave a finite score, so there is no {self.out / 'best'} "
                               f"to card or push; the last finite weights are in {self.out / 'last'}")
        return True

    def __enter__(self) -> Bookkeeping:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)

    def close(self, wait: bool = True) -> None:
        """Give back the signal handlers (also when the loop raised) and end DDP's process group:
        after a barrier when the run ended cleanly (``wait``), so no rank tears gloo down while
        another (the main one, measuring and carding the best weights) still holds it; a rank that
        left first was seen to abort at exit ("terminate called without an active exception")."""
        self._restore_handlers()
        if self.dist.world_size > 1:
            if wait:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def planned_steps(args, out: Path, dist: DistInfo) -> None:
    """``--minutes`` plans a new single-process run's schedule (``TimeBudget``) and records the total in
    ``out``/args.json. On a resume the schedule is the one planned then: ``args.steps`` becomes the
    recorded total and ``--minutes`` is dropped, so the starting command plus --resume continues the run.
    A run stopped before its plan was made (in its probe: the first 15% of the budget at most) is
    planned by its resume, with what is left of the recorded budget (``Bookkeeping`` subtracts the
    time spent). DDP runs are not planned (their ranks would each measure their own rate)."""
    if not args.minutes:
        return
    if dist.world_size > 1:
        raise LightSRError("--minutes plans a single-process run; under DDP give --steps N")
    recorded = Path(out) / "args.json"
    if not args.resume:
        args.planned = False  # until TimeBudget plans the total
        return
    if not recorded.is_file():
        raise LightSRError(f"--resume with --minutes: {recorded} holds no planned total; give --steps N")
    was = json.loads(recorded.read_text())
    args.steps = was["steps"]
    if was.get("planned", True) is False:  # stopped in its probe: plan now, from the recorded budget
        args.minutes, args.planned = was["minutes"], False
        logger.info("--resume: the run stopped before its schedule was planned; planning it now with what is left "
                    "of its %g minutes", args.minutes)
    else:
        args.minutes = 0
        logger.info("--resume: the schedule planned when the run started, %d steps (--minutes plans new runs only)",
                    args.steps)


RESUME_DEFINING = ("model", "scale", "set")  # the flags that make the network: a resume must repeat them


def check_resume_flags(args, out: Path) -> None:
    """Refuse, in one line naming the run's own command, a --resume whose model flags differ from
    those the run was started with (``out``/args.json): the trainers rebuild the network from the
    command line, and a bare ``--out RUN --resume`` would otherwise fail on mismatched tensors."""
    recorded = Path(out) / "args.json"
    if not recorded.is_file():
        return
    was = json.loads(recorded.read_text())
    differ = [k for k in RESUME_DEFINING if k in was and hasattr(args, k) and getattr(args, k) != was[k]]
    if not differ:
        return
    flags = " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, was[k])) if isinstance(was[k], list) else was[k]}"
                     for k in differ)
    run = Path(out) / "run.json"
    command = " ".join(json.loads(run.read_text())["command"]) if run.is_file() else "the command that started it"
    raise LightSRError(f"--resume: {out} was started with {flags}; resume it with its own command plus --resume: "
                       f"{command} --resume")


def resume_or_start(args, dist, out: Path, *, model, optimizer, ema, rng, guard, lr: float,
                    extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's state: with --resume, everything ``out``/last holds (weights, optimizer, EMA,
    data stream, NaN guard, ``extras`` such as a discriminator) loaded back; else a fresh state
    and a fresh curve. Either way this sitting is recorded (``record_segment``)."""
    state: dict[str, Any] = {"step": 0, "best_psnr": -math.inf, "elapsed_s": 0.0}
    if args.resume:
        check_resume_flags(args, out)
        ckpt = find_checkpoint(Path(out) / "last")
        if ckpt is None:
            raise LightSRError(f"--resume: no checkpoint in {Path(out) / 'last'}")
        state = load_checkpoint(ckpt, model, optimizer, ema=ema, data_rng=rng if dist.is_main else None,
                                extras=extras)
        guard.load_state_dict(state.pop("guard"))
        logger.info("resumed from %s at step %d", ckpt, state["step"])
    elif dist.is_main:
        (Path(out) / "log.csv").unlink(missing_ok=True)
    record_segment(state, steps=args.steps, lr=lr, threads=args.threads, device=dist.device)
    return state


def save_last(out: Path, state: dict[str, Any], *, model, optimizer, ema, rng, guard,
              extras: dict[str, Any] | None = None) -> None:
    """Save the resumable checkpoint ``out``/last (atomically), the NaN guard's state with it, and the
    run's progress (``PROGRESS``: what its card reports, kept when last/ leaves the repository)."""
    state["guard"] = guard.state_dict()
    try:
        save_checkpoint(Path(out) / "last", model, optimizer, state, ema=ema, data_rng=rng, extras=extras)
        write_progress(out, state)
    finally:
        state.pop("guard")


PROGRESS = "progress.json"  # beside args.json: steps, hours, sittings and guard counts of a run, a few hundred bytes


def write_progress(out: str | os.PathLike, state: dict[str, Any]) -> None:
    """``out``/progress.json (atomically): the part of the training state a model card is made from.
    The resumable checkpoint last/ (optimizer state, megabytes) leaves the repository when a run
    ends; this stays, so ``benchmarks/render_cards.py`` can describe the run from a fresh clone."""
    from .imaging import write_atomically

    guard = state.get("guard", {})
    progress = {"step": state["step"], "elapsed_s": state["elapsed_s"], "best_psnr": state.get("best_psnr"),
                "segments": state.get("segments", []),
                "guard": {"skipped": guard.get("skipped", 0), "rollbacks": guard.get("rollbacks", 0)}}
    write_atomically(Path(out) / PROGRESS, lambda f: f.write((json.dumps(progress, indent=1) + "\n").encode()))


def read_progress(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's progress (step, elapsed_s, best_psnr, segments, guard): its resumable checkpoint's
    training_state.json while it has one, else the progress.json ``write_progress`` left."""
    for path in (Path(run_dir) / "last" / "training_state.json", Path(run_dir) / PROGRESS):
        if path.is_file():
            return json.loads(path.read_text())
    raise LightSRError(f"{run_dir} has neither last/training_state.json nor {PROGRESS}: its card cannot say "
                       "how it was trained")
