"""train/train_sr.py: files written, exact resume, NaN guard, DDP on CPU, push to the Hub."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, ROOT
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(ROOT / "train"))
import train_sr  # noqa: E402

import lightsr  # noqa: E402


@pytest.fixture
def data(tmp_path):
    """Two small training photos, a one-image validation set and a tiny Set5/Set14 pair."""
    src = sorted((DATA / "sr-train").glob("*.jpg"))
    train = tmp_path / "train"
    train.mkdir()
    for i, p in enumerate(src[:2]):
        Image.open(p).convert("RGB").resize((96, 72)).save(train / f"{i}.png")
    bench = tmp_path / "bench"
    for name in ("Set5", "Set14"):
        (bench / name).mkdir(parents=True)
        Image.open(src[2]).convert("RGB").resize((48, 40)).save(bench / name / "x.png")
    return train, bench


def args_for(data, out, *extra):
    train, bench = data
    return train_sr.parse_args([
        "--model", "rdn-test", "--data", str(train), "--val", str(bench / "Set5"), "--bench", str(bench),
        "--lr-patch", "12", "--batch", "2", "--val-every", "2", "--warmup", "0", "--threads", "1",
        "--out", str(out), *extra])


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_two_steps_write_a_checkpoint_a_model_and_a_card(data, tmp_path):
    out = tmp_path / "run"
    result = train_sr.main(args_for(data, out, "--steps", "2"))
    assert result["step"] == 2 and result["skipped"] == 0
    for f in ("config.json", "model.safetensors", "training_state.json", "training_state.safetensors"):
        assert (out / "last" / f).is_file()
    assert json.loads((out / "args.json").read_text())["steps"] == 2
    card = (out / "best" / "README.md").read_text()
    assert "Set14 x2 PSNR / SSIM" in card and "| **steps**: 2" not in card and "- **steps**: 2" in card
    from huggingface_hub import ModelCard

    results = ModelCard(card).data.eval_results
    assert {(r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type) for r in results} == {
        (f"eugenesiow/{n}", "bicubic_x2", "validation", m) for n in ("Set5", "Set14") for m in ("psnr", "ssim")}
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and any(line.split(",")[1] for line in log[1:])
    import lightsr

    assert lightsr.load(out / "last").scale == 2  # a checkpoint is also a loadable model folder
    assert not list(out.glob(".*tmp*")) and not (out / "last.old").exists()


def test_multiscale_adds_downscaled_copies_of_the_training_photos(data, tmp_path):
    import lightsr

    train, _ = data
    args = args_for(data, tmp_path / "run", "--multiscale", "0.75", "0.5")
    paths = sorted(train.glob("*.png"))
    images = train_sr.load_hr_images(args, paths)
    assert [im.shape[:2] for im in images] == [(72, 96)] * 2 + [(54, 72)] * 2 + [(36, 48)] * 2
    half = np.asarray(Image.open(paths[1]).convert("RGB").resize((48, 36), Image.LANCZOS))
    assert np.array_equal(images[5], half)
    record = train_sr.run_record(args, lightsr.create_model("rdn-test", scale=2), len(images), None)
    assert "each also downscaled by 0.75 and 0.5 (Lanczos): 6 images used (with the copies)" in record["data"]
    assert "--multiscale 0.75 0.5" in " ".join(train_sr.command_line("train_sr.py", train_sr.command_args(args),
                                                                     train_sr.COMMAND_KEYS))
    with pytest.raises(lightsr.LightSRError, match="between 0 and 1"):
        train_sr.load_hr_images(args_for(data, tmp_path / "run", "--multiscale", "2"), paths)


def test_publish_last_ema_ships_the_weights_that_were_validated(data, tmp_path):
    # One validation, at the last step: best/ is the EMA at that step, as is the EMA kept in last/.
    out = tmp_path / "run"
    train_sr.main(args_for(data, out, "--steps", "2"))
    env = {**os.environ, "LIGHTSR_CHECKPOINTS": str(tmp_path / "ckpts")}
    done = subprocess.run([sys.executable, str(ROOT / "train" / "publish.py"), str(out), "mine", "--last-ema"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shipped, best, raw = weights(tmp_path / "ckpts" / "mine"), weights(out / "best"), weights(out / "last")
    assert shipped.keys() == best.keys()
    assert all(torch.equal(shipped[k], best[k]) for k in best)
    assert any(not torch.equal(shipped[k], raw[k]) for k in raw)  # the EMA, not the raw weights
    assert (tmp_path / "ckpts" / "mine" / "README.md").is_file()
    assert {f.stat().st_mode & 0o777 for f in (tmp_path / "ckpts" / "mine").iterdir()} == {0o644}


def test_publish_refuses_a_run_without_ema(data, tmp_path):
    out = tmp_path / "run"
    train_sr.main(args_for(data, out, "--steps", "1", "--ema", "0"))
    env = {**os.environ, "LIGHTSR_CHECKPOINTS": str(tmp_path / "ckpts")}
    done = subprocess.run([sys.executable, str(ROOT / "train" / "publish.py"), str(out), "mine", "--last-ema"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "EMA" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ckpts" / "mine").exists()


def test_resume_without_best_folder_still_ends_with_a_card(data, tmp_path):
    # A clone keeps last/ (resumable) but not best/: the finished run must still publish its weights.
    import shutil

    out = tmp_path / "run"
    train_sr.main(args_for(data, out, "--steps", "4", "--stop-at", "2"))
    shutil.rmtree(out / "best")
    state_file = out / "last" / "training_state.json"  # its best was better than anything to come
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "best_psnr": 99.0}))
    result = train_sr.main(args_for(data, out, "--steps", "4", "--resume"))
    assert result["step"] == 4
    assert (out / "best" / "model.safetensors").is_file() and (out / "best" / "README.md").is_file()


def test_card_of_a_fine_tune_describes_every_stage(data, tmp_path):
    # A fine-tune warm-started from an earlier run's best weights: the card must account for both runs.
    import lightsr
    from lightsr.cards import sr_card_context

    first, second = tmp_path / "base", tmp_path / "finetune"
    train_sr.main(args_for(data, first, "--steps", "2"))
    train_sr.main(args_for(data, second, "--steps", "3", "--init", str(first / "best"), "--lr-patch", "16",
                           "--lr", "1e-4", "--card-extra", "bigger patches"))
    model = lightsr.load(second / "best")
    ctx = sr_card_context(model, bench_dir=data[1], run_dir=[first, second])
    t = ctx["training"]
    assert t["stage 1 (`runs/base`)"].startswith("2 of 2 steps, 24px HR crops, batch 2, L1, lr 0.0005 cosine")
    assert t["steps"] == "stage 2 (`runs/finetune`): 3 of the 3-step schedule"
    assert t["total"].startswith("5 steps, ") and t["total"].endswith(" in 2 stages")
    assert t["initialisation"] == "warm start from stage 1's best weights (all weights)"  # same scale
    assert t["note"] == "bigger patches"
    # the stages' data differ (24 and 32 px crops), so each names its own
    first_data = json.loads((first / "run.json").read_text())["data"]
    assert "24px HR crops" in first_data and t["stage 1 (`runs/base`)"].endswith(f"; data: {first_data}")
    assert t["data"].startswith("stage 2 (`runs/finetune`): ") and "32px HR crops" in t["data"]
    commands = [line for line in ctx["reproduce"].splitlines() if line.startswith("python train/")]
    assert len(commands) == 2 and "--init" not in commands[0]
    assert "--init runs/base/best --lr-patch 16" in commands[1] and commands[1].endswith("--out runs/finetune")
    # one run alone keeps the single-stage card
    single = sr_card_context(model, bench_dir=data[1], run_dir=second)["training"]
    assert "total" not in single and single["steps"] == "3 of the 3-step schedule"
    assert single["data"].startswith("train (2 images)")
    assert single["initialisation"].startswith(f"warm start from {first / 'best'}")


def test_resume_continues_exactly(data, tmp_path):
    straight = tmp_path / "straight"
    train_sr.main(args_for(data, straight, "--steps", "6"))
    split = tmp_path / "split"
    train_sr.main(args_for(data, split, "--steps", "6", "--stop-at", "3"))
    assert "Set14" not in (split / "best" / "README.md").read_text()  # unfinished runs: no measured card
    first = json.loads((split / "last" / "training_state.json").read_text())
    assert first["step"] == 3
    train_sr.main(args_for(data, split, "--steps", "6", "--resume"))
    state = json.loads((split / "last" / "training_state.json").read_text())
    assert [s["step"] for s in state["segments"]] == [0, 3]
    assert "2 sittings (resumed from the last checkpoint at step 3)" in (split / "best" / "README.md").read_text()
    a, b = weights(straight / "last"), weights(split / "last")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_ctrl_c_saves_the_step_and_resumes_exactly(data, tmp_path, monkeypatch):
    # Ctrl-C (SIGINT) at step 2: the run ends cleanly with step 2 in last/ (no checkpoint was due:
    # --save-every-min 60), and --resume continues to the weights of an uninterrupted run
    import signal

    from lightsr.training import Bookkeeping

    straight = tmp_path / "straight"
    train_sr.main(args_for(data, straight, "--steps", "4"))
    after_step = Bookkeeping.after_step

    def interrupted_at_2(self, *a, **kw):
        after_step(self, *a, **kw)
        if self.state["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Bookkeeping, "after_step", interrupted_at_2)
    before = signal.getsignal(signal.SIGINT)
    run = tmp_path / "run"
    result = train_sr.main(args_for(data, run, "--steps", "4", "--save-every-min", "60"))
    assert result["step"] == 2 and signal.getsignal(signal.SIGINT) is before  # handler given back
    assert json.loads((run / "last" / "training_state.json").read_text())["step"] == 2
    monkeypatch.setattr(Bookkeeping, "after_step", after_step)
    assert train_sr.main(args_for(data, run, "--steps", "4", "--resume"))["step"] == 4
    a, b = weights(straight / "last"), weights(run / "last")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k

    def twice(self, *a, **kw):  # a second signal stops at once
        after_step(self, *a, **kw)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Bookkeeping, "after_step", twice)
    with pytest.raises(KeyboardInterrupt):
        train_sr.main(args_for(data, tmp_path / "twice", "--steps", "4"))
    assert signal.getsignal(signal.SIGINT) is before


def test_init_from_another_scale_copies_matching_tensors(data, tmp_path):
    x2 = tmp_path / "x2"
    train_sr.main(args_for(data, x2, "--steps", "2"))
    x4 = tmp_path / "x4"
    train_sr.main(args_for(data, x4, "--scale", "4", "--steps", "1", "--lr", "0", "--ema", "0", "--init",
                           str(x2 / "best")))
    a, b = weights(x2 / "best"), weights(x4 / "last")
    shared = [k for k in b if k in a and a[k].shape == b[k].shape]
    fresh = sorted(set(b) - set(shared))
    assert fresh == ["upsample.2.bias", "upsample.2.weight"]  # x4 has a second x2 sub-pixel stage
    for k in shared:  # with lr 0 the warm-started tensors are exactly the x2 model's
        assert torch.equal(a[k], b[k]), k


def test_a_deeper_ecbsr_warm_started_from_a_shallower_one_computes_what_it_did(tmp_path):
    from lightsr.training import warm_start

    shallow = lightsr.create_model("ecbsr-y-test", scale=2)
    with torch.no_grad():  # away from its initialisation, so that an identity is no accident
        for t in shallow.parameters():
            t.add_(torch.randn_like(t) * 0.1)
    shallow.save_pretrained(tmp_path / "shallow")
    deep = lightsr.create_model("ecbsr-y-test", scale=2, num_blocks=3)
    _, fresh = warm_start(deep, tmp_path / "shallow")
    assert {k.split(".")[1] for k in fresh} == {"2", "3"}  # body.2, body.3, acts.2, acts.3
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        assert torch.allclose(deep.eval()(x), shallow.eval()(x), atol=1e-5)
    deep.train()
    deep(x).sub(x.repeat_interleave(2, 2).repeat_interleave(2, 3)).abs().mean().backward()
    grown = deep.body[3]  # the branches that start at zero still learn
    assert grown.expand_3x3.weight.grad.abs().sum() > 0 and grown.edge_scale["sobel_x"].grad.abs().sum() > 0


def test_init_from_a_different_architecture_is_a_clear_error(data, tmp_path):
    import lightsr

    other = tmp_path / "other"
    lightsr.create_model("ecbsr-test", scale=2).save_pretrained(other)
    with pytest.raises(lightsr.LightSRError, match="is a ecbsr model, not rdn"):
        train_sr.main(args_for(data, tmp_path / "run", "--steps", "1", "--init", str(other)))


def test_init_across_colour_spaces_is_a_clear_error(data, tmp_path):
    import lightsr

    rgb = tmp_path / "rgb"
    lightsr.create_model("ecbsr-test", scale=2).save_pretrained(rgb)
    with pytest.raises(lightsr.LightSRError, match="reads RGB, the model luma"):
        train_sr.main(args_for(data, tmp_path / "run", "--model", "ecbsr-y-test", "--steps", "1", "--init", str(rgb)))
    assert not (tmp_path / "run" / "last").exists()


def test_resume_without_checkpoint_is_a_clear_error(data, tmp_path):
    import lightsr

    with pytest.raises(lightsr.LightSRError, match="no checkpoint"):
        train_sr.main(args_for(data, tmp_path / "fresh", "--steps", "2", "--resume"))


def test_injected_nans_are_skipped_then_rolled_back(data, tmp_path, caplog):
    out = tmp_path / "nan"
    result = train_sr.main(args_for(data, out, "--steps", "6", "--inject-nan-at", "2", "3", "4"))
    assert result["skipped"] == 3
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert state["guard"] == {"lr_scale": 0.5, "skipped": 3, "rollbacks": 1}
    assert all(torch.isfinite(t).all() for t in weights(out / "last").values())
    messages = caplog.text
    assert "step 2: non-finite loss or gradient, step skipped" in messages
    assert "restored the last good state" in messages


def test_ddp_two_processes_on_cpu_stay_identical(data, tmp_path):
    train, bench = data
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "train" / "train_sr.py"), "--model", "rdn-test", "--data", str(train),
           "--val", str(bench / "Set5"), "--bench", str(bench), "--lr-patch", "12", "--batch", "2",
           "--steps", "3", "--val-every", "3", "--threads", "1", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights identical across 2 ranks" in result.stderr
    assert json.loads((out / "last" / "training_state.json").read_text())["step"] == 3


def test_push_to_hub_at_the_end(data, tmp_path, hub):
    out = tmp_path / "push"
    train_sr.main(args_for(data, out, "--steps", "2", "--push-to-hub", "me/rdn-test-x2"))
    repo = hub.repos["me/rdn-test-x2"]
    files = repo.commits[repo.branches["main"]]
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    assert b"Set5 x2 PSNR / SSIM" in files["README.md"] and b"- **steps**: 2" in files["README.md"]
    import lightsr

    assert lightsr.load("me/rdn-test-x2").config == lightsr.load(out / "best").config


def test_training_from_a_video_at_one_frame_per_second(data, tmp_path):
    from media import make_clip

    clip = tmp_path / "trailer.mp4"
    make_clip(clip, w=64, h=48, frames=30, fps=10, audio=None)  # 3 s: frames at 0, 1 and 2 s
    args = args_for(data, tmp_path / "video-run", "--steps", "2")
    args.data, args.video = [], [str(clip)]
    assert len(train_sr.load_hr_images(args, [])) == 3
    assert train_sr.main(args)["step"] == 2


def test_time_budget_plans_the_schedule_from_the_measured_step_rate(monkeypatch):
    """--minutes: after the probe the total is what the measured rate fits into the budget; past
    the budget the run is told to stop."""
    from lightsr import training

    clock = [1000.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: clock[0])
    budget = training.TimeBudget(minutes=10, start=50, probe=100, safety=0.9)
    assert budget.total(10, 20000) == 20000  # not measured yet
    clock[0] += 30  # 30 s of start-up and warm-up
    assert budget.total(50, 20000) == 20000  # the probe starts
    clock[0] += 20  # 100 steps in 20 s: 5 steps/s
    planned = budget.total(150, 20000)
    assert planned == 150 + int(5 * (600 * 0.9 - 50))
    assert budget.total(151, planned) == planned  # planned once
    assert not budget.expired()
    clock[0] += 551
    assert budget.expired()
    assert training.TimeBudget(minutes=0, start=0).total(0, 77) == 77  # no budget: the given total
    # slow steps (a flare model on a CPU): measuring starts once 5% of the budget is spent and plans
    # once 10% more is, long before the 200 steps that would take longer than the budget
    clock[0] = 0.0
    slow = training.TimeBudget(minutes=100, start=200, probe=200, safety=1.0)
    for step in range(0, 30):
        assert slow.total(step, 100000) == 100000, step
        clock[0] += 10  # 10 s a step: the measurement starts at step 30 (300 s = 5%)
    for step in range(30, 90):
        assert slow.total(step, 100000) == 100000, step
        clock[0] += 10
    assert slow.total(90, 100000) == 90 + int(0.1 * (6000 - 900))  # 600 s (10%) measured: 0.1 steps/s
    assert slow.total(91, 600) == 600  # planned once
    # a validation inside the probe is not counted as steps, and the plan pays for the ones to come
    clock[0] = 0.0
    timed = training.TimeBudget(minutes=10, start=50, probe=100, safety=1.0, val_every=500)
    assert timed.total(50, 20000) == 20000  # the probe starts at t = 0
    clock[0] += 10  # steps 50..99: 5 steps/s
    timed.validated(40)  # a 40 s validation at step 100
    clock[0] += 40 + 10  # steps 100..149: 5 steps/s
    planned = timed.total(150, 20000)
    left = 600 - 60 - 40  # budget - spent - the final validation
    assert planned == 150 + int(left / (1 / 5 + 40 / 500)), planned  # 1785: not 150 + 4.2 s/step's 0.4 x 500
    # planned before the first validation: planned again once, at it, with its cost
    clock[0] = 0.0
    early = training.TimeBudget(minutes=10, start=0, probe=50, safety=1.0, val_every=200)
    early.total(0, 20000)
    clock[0] += 10  # 50 steps in 10 s
    first = early.total(50, 20000)
    assert first == 50 + int(590 / (1 / 5)), first  # no validation cost known yet
    clock[0] += 30  # 150 more steps
    early.validated(60)  # the first validation, at step 200, took 60 s
    clock[0] += 60
    again = early.total(201, first)
    assert again == 201 + int((600 - 100 - 60) / (1 / 5 + 60 / 200)), again  # 880, not 2999
    assert early.total(202, again) == again  # and only then


def test_minutes_fits_a_run_to_its_budget_and_workers_feed_it(data, tmp_path):
    out = tmp_path / "run"
    train_sr.main(args_for(data, out, "--minutes", "0.25", "--steps", "100000", "--workers", "2",
                           "--val-every", "1000"))
    planned = json.loads((out / "args.json").read_text())["steps"]
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert 200 < planned < 100000 and state["segments"][0]["steps"] == planned, planned
    # the schedule runs to its planned end, unless the machine slowed after the 200 steps the
    # plan extrapolates from: then the budget stops it once spent (a shared CI machine does that)
    assert state["step"] == planned or (state["step"] > 200 and state["elapsed_s"] >= 0.25 * 60), state
    assert state["elapsed_s"] < 0.25 * 60 * 1.5, state["elapsed_s"]
    # the starting command plus --resume keeps the planned schedule rather than planning anew
    train_sr.main(args_for(data, out, "--minutes", "0.25", "--steps", "100000", "--workers", "2",
                           "--val-every", "1000", "--resume"))
    resumed = json.loads((out / "last" / "training_state.json").read_text())
    assert resumed["step"] == planned and resumed["segments"][-1]["steps"] == planned, resumed
    assert json.loads((out / "args.json").read_text())["steps"] == planned
    with pytest.raises(lightsr.LightSRError, match="holds no planned total"):  # nothing recorded: nothing to keep
        train_sr.main(args_for(data, tmp_path / "other", "--minutes", "0.25", "--resume"))


def test_minutes_run_stopped_before_its_plan_is_planned_by_its_resume(data, tmp_path):
    """Stopped in its probe (here at step 20; the plan comes after 200 steps), a --minutes run has no
    total yet: its resume plans one from what is left of the budget instead of running the
    placeholder --steps."""
    out = tmp_path / "run"
    command = ("--minutes", "0.25", "--steps", "100000", "--val-every", "1000")
    train_sr.main(args_for(data, out, *command, "--stop-at", "20"))
    stopped = json.loads((out / "last" / "training_state.json").read_text())
    assert stopped["step"] == 20 and json.loads((out / "args.json").read_text())["planned"] is False
    train_sr.main(args_for(data, out, *command, "--resume"))
    recorded = json.loads((out / "args.json").read_text())
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert recorded["planned"] is True and 20 < recorded["steps"] < 100000, recorded["steps"]
    assert state["step"] == recorded["steps"] or state["elapsed_s"] >= 0.25 * 60, state
    assert state["elapsed_s"] < 0.25 * 60 * 1.5, state["elapsed_s"]


def test_batches_from_workers_are_fresh_and_in_process_batches_follow_the_rng():
    import numpy as np

    from lightsr.training import batches

    def sample(rng, n):
        return torch.from_numpy(rng.integers(0, 2**31, n))

    inproc = batches(sample, np.random.default_rng(5), 3)
    expected = np.random.default_rng(5)
    for _ in range(3):  # workers=0: exactly the checkpointed generator's stream (bit-exact resume)
        assert torch.equal(next(inproc), torch.from_numpy(expected.integers(0, 2**31, 3)))
    stream = batches(sample, np.random.default_rng(5), 3, workers=2, seed=[0, 0, 7])
    got = [next(stream) for _ in range(8)]
    values = torch.cat(got).tolist()
    assert len(set(values)) == len(values)  # the two workers draw different batches
    again = batches(sample, np.random.default_rng(5), 3, workers=2, seed=[0, 0, 8])  # a resume at another step
    assert not set(torch.cat([next(again) for _ in range(4)]).tolist()) & set(values)


def test_cards_name_the_gpu_a_sitting_ran_on_and_repeat_switches_bare():
    """A card rendered on a CPU machine must not claim the CPU trained a run the GPU did."""
    from lightsr.cards import _shell, _sittings
    from lightsr.training import command_line

    rec = {"args": {}, "segments": [{"step": 0, "steps": 10, "lr": 1e-3, "threads": 16, "gpu": "NVIDIA H200"}]}
    assert _sittings(rec)["hardware"] == "one NVIDIA H200 GPU"
    rec["segments"].append({"step": 10, "steps": 20, "lr": 1e-3, "threads": 2, "cpu": "Zen 9 (recorded)"})
    lines = _sittings(rec)
    assert lines["hardware"] == "Zen 9 (recorded), 2 CPU threads and one NVIDIA H200 GPU"  # not this machine's
    assert "resumed from the last checkpoint at step 10" in lines["sittings"]
    assert _shell(command_line("train_sr.py", {"amp": True, "ema": 0.999, "loss": False}, ["amp", "ema", "loss"])) == \
        "python train/train_sr.py --amp --ema 0.999"


def test_best_weights_are_selected_on_held_out_photos_not_on_a_benchmark(data, tmp_path):
    """Without --val the last --holdout photos are never trained on and validate; Set5 only scores the card."""
    train, bench = data
    common = ["--model", "rdn-test", "--data", str(train), "--bench", str(bench), "--lr-patch", "12", "--batch", "2",
              "--val-every", "2", "--warmup", "0", "--threads", "1", "--steps", "2"]
    args = train_sr.parse_args([*common, "--holdout", "1", "--out", str(tmp_path / "run")])
    trained, held = train_sr.validation_split(args)
    photos = sorted(train.iterdir())
    assert trained == photos[:1] and held == photos[1:]
    assert len(train_sr.load_hr_images(args, trained)) == 1
    train_sr.main(args)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "the last 1 photos of train, never trained on," in record["lines"]["validation"]
    assert "--holdout" in record["command"] and "--val" not in record["command"]
    assert any(row.split(",")[3] for row in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:])
    # with --val every photo trains, and the recorded command says where it validated
    args = train_sr.parse_args([*common, "--val", str(bench / "Set5"), "--out", str(tmp_path / "val")])
    assert train_sr.validation_split(args) == (photos, str(bench / "Set5"))
    for bad, match in ((["--holdout", "2"], "leaves no training photo"), (["--holdout", "0"], "nothing to validate")):
        with pytest.raises(train_sr.lightsr.LightSRError, match=match):
            train_sr.main(train_sr.parse_args([*common, *bad, "--out", str(tmp_path / "bad")]))


def test_training_on_a_public_benchmark_is_refused(data, tmp_path):
    """A --data folder that is (or lies in) a public SR benchmark is refused with one line; the
    Debian photos, test-only for flare, and the photos with real flare may train super-resolution, not flare
    removal."""
    from lightsr.training import check_training_folders

    train, bench = data
    with pytest.raises(lightsr.LightSRError, match="public super-resolution benchmark"):
        train_sr.main(args_for((bench / "Set14", bench), tmp_path / "run"))
    assert not (tmp_path / "run" / "best").exists()
    for folder in (DATA / "sr-bench" / "Set5", tmp_path / "urban100" / "x4", tmp_path / "DIV2K_valid_HR"):
        with pytest.raises(lightsr.LightSRError, match="never trained on"):
            check_training_folders([train, folder], "super-resolution")
    check_training_folders([train, DATA / "debian-photos", DATA / "flare-photos"], "super-resolution")  # allowed
    with pytest.raises(lightsr.LightSRError, match="flare-free test set"):
        check_training_folders([DATA / "debian-photos"], "flare-removal")
    with pytest.raises(lightsr.LightSRError, match="real lens flare"):
        check_training_folders([train, DATA / "flare-photos"], "flare-removal")


def test_resume_with_other_model_flags_names_the_runs_own_command(data, tmp_path):
    """A bare `--out RUN --resume` rebuilds the default network; instead of a tensor mismatch the
    trainer says, in one line, which flags the run was started with and the command to resume it."""
    out = tmp_path / "run"
    train_sr.main(args_for(data, out, "--steps", "4", "--stop-at", "2"))
    with pytest.raises(lightsr.LightSRError) as err:
        train_sr.main(args_for(data, out, "--steps", "4", "--resume", "--model", "ecbsr-test"))
    message = str(err.value)
    assert "\n" not in message and "was started with --model rdn-test" in message
    assert message.endswith("--resume") and "--model rdn-test" in message.split("command plus --resume: ")[1]
    assert train_sr.main(args_for(data, out, "--steps", "4", "--resume"))["step"] == 4  # its own flags resume


def test_amp_trains_in_bf16_on_the_cpu_too(data, tmp_path, monkeypatch):
    """--amp is bf16 autocast on whatever device trains (it was CUDA-only): on the CPU the model's
    convolutions then run in bf16 during training (fp32 without it), and the record says so."""
    seen = {}
    create = lightsr.create_model

    def watched(*a, **kw):
        model = create(*a, **kw)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        def hook(module, inputs, output):
            seen.setdefault("train" if module.training else "eval", output.dtype)

        conv.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_sr.lightsr, "create_model", watched)
    for amp, dtype in (([], torch.float32), (["--amp"], torch.bfloat16)):
        seen.clear()
        out = tmp_path / ("amp" if amp else "fp32")
        assert train_sr.main(args_for(data, out, "--steps", "2", *amp))["skipped"] == 0
        assert seen["train"] == dtype and seen["eval"] == torch.float32  # validation stays fp32
    assert "bf16 autocast" in json.loads((tmp_path / "amp" / "run.json").read_text())["objective"]


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_a_luma_model_is_trained_on_luma(kind):
    """ECBSR with colors=1 fixes its colour (bicubic): its loss compares BT.601 luma, so a colour error
    that leaves luma unchanged costs nothing, and a luma error costs what it would on a grey image.
    An RGB model's loss sees both."""
    luma_loss = train_sr.training_loss(lightsr.create_model("ecbsr-y-test"), kind)
    rgb_loss = train_sr.training_loss(lightsr.create_model("ecbsr-test"), kind)
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)
    tint = torch.tensor([0.1, -0.1 * 0.299 / 0.587, 0.0]).view(1, 3, 1, 1)  # zero luma: 0.299 r + 0.587 g = 0
    assert float(luma_loss(target + tint, target)) < 1e-7 < float(rgb_loss(target + tint, target))
    brighter = target + 0.05
    assert float(luma_loss(brighter, target)) == pytest.approx(float(rgb_loss(brighter, target)), rel=1e-5)


def test_progress_json_describes_the_run_once_last_is_gone(data, tmp_path):
    # last/ (optimizer state) leaves the repository when a run ends; progress.json, written with every
    # checkpoint, must give the card the same steps, hours and sittings
    import shutil

    from lightsr.cards import training_record

    run = tmp_path / "run"
    train_sr.main(args_for(data, run, "--steps", "3", "--stop-at", "2"))
    train_sr.main(args_for(data, run, "--steps", "3", "--resume"))
    with_last = training_record(run)
    shutil.rmtree(run / "last")
    without = training_record(run)
    assert without["step"] == 3 and [s["step"] for s in without["segments"]] == [0, 2]
    assert {k: without[k] for k in ("step", "hours", "segments", "skipped", "rollbacks", "best_psnr")} == \
        {k: with_last[k] for k in ("step", "hours", "segments", "skipped", "rollbacks", "best_psnr")}
    (run / "progress.json").unlink()
    with pytest.raises(lightsr.LightSRError, match="progress.json"):
        training_record(run)


def test_card_names_where_its_first_stage_started(data, tmp_path):
    # a recipe whose first listed stage was itself warm-started (ecbsr-x4 from ecbsr-x2's weights): its line says
    # from what; a later stage that simply continues the one before adds nothing
    from lightsr.cards import sr_card_context

    base, first, second = tmp_path / "base", tmp_path / "first", tmp_path / "second"
    train_sr.main(args_for(data, base, "--steps", "1"))
    train_sr.main(args_for(data, first, "--steps", "1", "--init", str(base / "best")))
    train_sr.main(args_for(data, second, "--steps", "1", "--init", str(first / "best")))
    model = lightsr.load(second / "best")
    t = sr_card_context(model, bench_dir=data[1], run_dir=[first, second])["training"]
    assert f"; warm start from {base / 'best'} (all weights)" in t["stage 1 (`runs/first`)"]
    assert t["initialisation"] == "warm start from stage 1's best weights (all weights)"
