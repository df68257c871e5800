"""train/train_flare.py: both models train on whole frames of both generators, resume, and the
NF-ResUNet survives an explosive LR."""

import csv
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import DATA, ROOT
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(ROOT / "train"))
import train_flare  # noqa: E402

import lightsr  # noqa: E402
from lightsr.data.flare import FrameFlarePairs  # noqa: E402
from lightsr.data.optics import OpticsConfig, psf_bank  # noqa: E402


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, p in enumerate(sorted((DATA / "sr-train").glob("*.jpg"))[:4]):
        Image.open(p).convert("RGB").resize((80, 64)).save(folder / f"{i}.png")
    return folder


def run(photos, out, *extra):
    return train_flare.main(train_flare.parse_args([
        "--data", str(photos), "--holdout", "1", "--val-count", "2", "--val-size", "48", "--frame", "48",
        "--psf-bank", "2", "--batch", "2", "--val-every", "2", "--warmup", "0", "--threads", "1", "--out", str(out),
        *extra]))


@pytest.mark.parametrize("model", ["pix2pix-test", "nf-resunet-test", "pix2pix-flare-test", "nf-resunet-flare-test"])
def test_two_steps_and_card(photos, tmp_path, model):
    out = tmp_path / model
    result = run(photos, out, "--model", model, "--steps", "2")
    assert result["step"] == 2 and result["skipped"] == 0
    card = (out / "best" / "README.md").read_text()
    assert "optics generator" in card and "hand-drawn generator" in card and "non-finite steps" in card
    assert "background PSNR" in card and "whole 48px frames" in card
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].split(",")[3] == "flare_l1" and float(log[1].split(",")[3]) > 0  # the flare-layer loss is trained
    tensors = load_file(str(out / "last" / "training_state.safetensors"))
    if model.startswith("pix2pix"):  # the discriminator and its optimizer are saved too
        assert any(k.startswith("disc/") for k in tensors) and any(k.startswith("disc_optimizer/") for k in tensors)


def test_fine_tune_from_a_model_folder_with_a_config_change(photos, tmp_path):
    from lightsr.cards import flare_card_context
    from lightsr.evaluate import evaluate_flare

    import lightsr

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    run(photos, base, "--model", "nf-resunet-test", "--steps", "2")
    run(photos, tuned, "--model", "nf-resunet-test", "--steps", "2", "--set", "upsample=bilinear",
        "--init", str(base / "best"), "--lr", "1e-5")
    model = lightsr.load(tuned / "best")
    assert model.config.upsample == "bilinear"
    start = load_file(str(base / "best" / "model.safetensors"))
    end = load_file(str(tuned / "best" / "model.safetensors"))
    assert start.keys() == end.keys()
    # warm-started: two small steps stay close to the base weights, far closer than a fresh init would be
    fresh = lightsr.create_model("nf-resunet-test").state_dict()
    near = sum((end[k] - start[k]).abs().sum() for k in start)
    far = sum((fresh[k] - start[k]).abs().sum() for k in start)
    assert near < 0.1 * far
    inp, target = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    pairs = [(inp, target, {"flare": np.abs(inp.astype(int) - target).max(2).astype(np.uint8)})]
    scores = evaluate_flare(pairs, [target])
    ctx = flare_card_context(model, {"optics": scores}, {"optics": scores}, run_dir=[base, tuned])
    t = ctx["training"]
    assert t["stage 1 (`runs/base`)"].startswith(
        "2 of 2 steps, batch 2, L1 + 1 x linear flare-layer L1, Adam (lr 0.0005")
    assert t["objective"].startswith("stage 2 (`runs/tuned`): L1 + 1 x linear flare-layer L1, Adam (lr 1e-05")
    assert t["objective"].endswith("; config upsample=bilinear")
    assert t["total"].startswith("4 steps") and t["initialisation"].startswith("warm start from stage 1's best weights")
    commands = [line for line in ctx["reproduce"].splitlines() if line.startswith("python train/")]
    assert "--set upsample=bilinear --init runs/base/best" in commands[1]


def test_pix2pix_resume_is_exact(photos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(photos, a, "--model", "pix2pix-test", "--steps", "4")
    run(photos, b, "--model", "pix2pix-test", "--steps", "4", "--stop-at", "2")
    run(photos, b, "--model", "pix2pix-test", "--steps", "4", "--resume")
    wa, wb = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_nf_resunet_with_an_explosive_learning_rate_ends_finite(photos, tmp_path, caplog):
    import lightsr

    out = tmp_path / "boom"
    try:
        result = run(photos, out, "--model", "nf-resunet-test", "--steps", "12", "--lr", "1e4",
                     "--inject-nan-at", "3", "4", "5")
    except lightsr.LightSRError as err:  # every validation overflowed: said in one line, nothing to card
        assert "no validation of this run gave a finite score" in str(err)
        result = {"skipped": json.loads((out / "last" / "training_state.json").read_text())["guard"]["skipped"]}
    weights = load_file(str(out / "last" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert state["guard"]["rollbacks"] >= 1 and state["guard"]["lr_scale"] <= 0.5
    assert result["skipped"] >= 3 and "restored the last good state" in caplog.text


def test_nf_resunet_trains_without_a_single_nonfinite_step(photos, tmp_path):
    result = run(photos, tmp_path / "calm", "--model", "nf-resunet-test", "--steps", "10")
    assert result["skipped"] == 0


def test_pix2pix_ddp_two_processes_on_cpu(photos, tmp_path):
    import os
    import subprocess

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "train" / "train_flare.py"), "--model", "pix2pix-test", "--data", str(photos), "--holdout", "1",
           "--val-count", "2", "--val-size", "48", "--frame", "48", "--psf-bank", "2", "--batch", "2", "--steps", "3",
           "--val-every", "3",
           "--threads", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights identical across 2 ranks" in result.stderr


def test_cards_render_what_runs_recorded(tmp_path):
    """A card prints a run's own record (run.json) and refuses, in one line, a run without one.
    The records reconstructed for runs from before run.json keep repeating what those runs did:
    the first NF-ResUNet run trained on patches with the presets of then."""
    from lightsr.cards import _training

    training, reproduce = _training(ROOT / "runs" / "flare-nf", "bench")
    command = next(line for line in reproduce.splitlines() if line.startswith("python train/train_flare.py"))
    assert "--set upsample=nearest output=image" in command and "--frame 0" in command
    assert "128px patches" in training["data"]
    bare = tmp_path / "runs" / "bare"
    (bare / "last").mkdir(parents=True)
    (bare / "args.json").write_text(json.dumps({"steps": 1}))
    (bare / "last" / "training_state.json").write_text(json.dumps({"step": 1, "elapsed_s": 1.0}))
    with pytest.raises(lightsr.LightSRError, match="no run.json"):
        _training(bare, "bench")


def test_warm_start_from_a_flare_output_model_keeps_its_head_and_echo_reuses_batches(photos, tmp_path):
    """--init from a model that already predicts the flare layer keeps its trained head (only an
    image-output source's head is reset); --echo and --workers run the same loop."""
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    run(photos, base, "--model", "pix2pix-flare-test", "--steps", "2", "--lr", "1e-2")
    import lightsr

    model = lightsr.create_model("pix2pix-flare-test")
    names = {n for n, p in model.named_parameters() if any(p is q for q in model.final_layer().parameters())}
    head = {k: v for k, v in load_file(str(base / "best" / "model.safetensors")).items() if k in names}
    assert len(head) == 2 and all(torch.count_nonzero(v) for v in head.values())  # trained away from zero init
    result = run(photos, tuned, "--model", "pix2pix-flare-test", "--steps", "4", "--init", str(base / "best"),
                 "--lr", "0", "--echo", "2", "--workers", "1")  # 0 is a rate, not "the default"
    assert result["step"] == 4 and result["skipped"] == 0
    after = load_file(str(tuned / "last" / "model.safetensors"))
    for k, v in head.items():
        assert torch.allclose(after[k], v, atol=1e-6), k


def test_dihedral_gives_the_eight_symmetries_of_the_square():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    outs = [train_flare.dihedral(x, k) for k in range(8)]
    assert torch.equal(outs[0], x)
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8


def test_background_loss_counts_only_unflared_unsaturated_pixels():
    target = torch.full((1, 3, 4, 4), 0.5)
    target[..., 0, 0] = 1.0  # a lamp: saturated in the target
    inp = target.clone()
    inp[..., 3, :] += 0.2  # flare over the last row
    fake = target.clone()
    assert train_flare.background_loss(fake, inp, target) == 0
    fake[..., 0, 0] = 0.0  # a dimmed lamp is the lamp loss's business, not the background's
    fake[..., 3, :] = 0.0  # so is what is done under the flare
    assert train_flare.background_loss(fake, inp, target) == 0
    fake[:, :, 1, 1] += 0.3  # one of the 11 background pixels changed, in every channel
    assert train_flare.background_loss(fake, inp, target).item() == pytest.approx(0.09 / 11)
    fake[..., 3, :] = 0.5
    assert train_flare.background_loss(fake, target, target).item() == pytest.approx(0.09 / 15)  # no flare: all


def test_lamp_loss_per_frame_is_not_drowned_by_blown_skies_of_flare_free_frames():
    """Frame 0: flare and a 1-pixel lamp dimmed by 0.5. Frame 1: no flare (input = target), a blown sky
    of 15 pixels kept exactly. Pooled, the sky dilutes the lamp's error 16-fold; per frame (with the
    input) only frame 0 counts, so the term is the lamp's own error."""
    target = torch.full((2, 3, 4, 4), 0.3)
    target[0, :, 0, 0] = 1.0
    target[1, :, :3] = 1.0
    target[1, :, 3, :3] = 1.0
    inp = target.clone()
    inp[0, :, 3, :] += 0.2  # frame 0 has flare
    fake = target.clone()
    fake[0, :, 0, 0] = 0.5
    assert train_flare.lamp_loss(fake, target).item() == pytest.approx(0.5 / 16)
    assert train_flare.lamp_loss(fake, target, inp).item() == pytest.approx(0.5)
    assert train_flare.lamp_loss(target, target, inp).item() == 0  # lamps kept: nothing to learn
    assert train_flare.lamp_loss(fake, target, target).item() == 0  # no frame with flare: no term


def test_clipped_glare_over_the_scene_is_weighted_down_and_lamps_are_not():
    target = torch.full((1, 3, 2, 2), 0.25)
    target[..., 0, 0] = 1.0  # a lamp: clipped in input and target alike, so fully counted
    inp = target.clone()
    inp[..., 0, 1] = 1.0  # glare clipped over the scene: the scene there is lost
    inp[..., 1, 0] = 0.6  # flare that does not clip: fully counted
    w = train_flare.clipped_weights(inp, target, 0.1)
    assert w.flatten().tolist() == pytest.approx([1.0, 0.1, 1.0, 1.0])
    fake = target.clone()
    fake[..., 0, 1] = 0.75  # off by 0.5 where the scene is lost
    assert train_flare.weighted_l1(fake, target, w).item() == pytest.approx(0.1 * 0.5 / 3.1)
    assert train_flare.clipped_weights(inp, target, 1.0) is None  # weight 1: the plain L1, as before
    assert train_flare.weighted_l1(fake, target, None).item() == pytest.approx(0.5 / 4)


def test_faint_flare_is_weighted_up_and_only_it():
    """--streak-weight counts the faint flare (4/255 to 64/255: rays, streaks, haze) more; strong
    glare, clipped glare over the scene and the background keep their own weights."""
    target = torch.full((1, 3, 2, 2), 0.25)
    inp = target.clone()
    inp[..., 0, 0] += 10 / 255  # a faint ray
    inp[..., 0, 1] = 1.0  # glare clipped over the scene
    inp[..., 1, 0] += 100 / 255  # strong glare that does not clip
    w = train_flare.clipped_weights(inp, target, 0.1, streak=4.0)
    assert w.flatten().tolist() == pytest.approx([4.0, 0.1, 1.0, 1.0])
    assert train_flare.clipped_weights(inp, target, 1.0, streak=4.0).flatten().tolist() == pytest.approx(
        [4.0, 1.0, 1.0, 1.0])


def test_real_pairs_and_the_lamp_loss_are_trained_and_carded(photos, tmp_path):
    pairs = tmp_path / "pairs"
    for sub in ("input", "target"):
        (pairs / sub).mkdir(parents=True)
    for i, p in enumerate(sorted(photos.iterdir())[:2]):
        clean = np.asarray(Image.open(p))
        Image.fromarray(clean).save(pairs / "target" / f"{i}.png")
        Image.fromarray(np.clip(clean.astype(int) + 60, 0, 255).astype(np.uint8)).save(pairs / "input" / f"{i}.png")
    out = tmp_path / "run"
    result = run(photos, out, "--model", "pix2pix-flare-test", "--steps", "2", "--pairs", str(pairs),
                 "--pairs-prob", "0.5", "--lamp-weight", "0.1", "--background-weight", "50")
    assert result["step"] == 2
    card = (out / "best" / "README.md").read_text()
    assert f"real pairs from {pairs} for 50% of samples" in card and "0.1 x lamp L1" in card
    assert "50 x background MSE" in card
    assert f"--pairs {pairs} --pairs-prob 0.5" in card and "--background-weight 50" in card  # repeated to reproduce
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert "lamp_l1" in header and "bg_mse" in header
    with pytest.raises(lightsr.LightSRError, match="whole frames"):
        run(photos, tmp_path / "patches", "--model", "pix2pix-flare-test", "--steps", "1", "--frame", "0",
            "--pairs", str(pairs))
    with pytest.raises(lightsr.LightSRError, match="whole frames"):
        run(photos, tmp_path / "patches-clean", "--model", "pix2pix-flare-test", "--steps", "1", "--frame", "0",
            "--clean-prob", "0.2")


def test_the_best_weights_with_clean_prob_also_weigh_photos_without_flare():
    assert train_flare.selection_score(24.0, None) == 24.0  # flare sets alone without --clean-prob
    assert train_flare.selection_score(24.0, 36.0) == pytest.approx((2 * 24 + 36) / 3)
    # a model that greys out clear skies loses to one that leaves them alone for a little less on flare
    assert train_flare.selection_score(24.0, 30.0) < train_flare.selection_score(23.5, 45.0)
    # past the cap leaving a photo alone earns nothing more (an exact copy is inf dB)
    assert train_flare.selection_score(24.0, math.inf) == train_flare.selection_score(24.0, 50.0)


def test_clean_gain_over_exposes_the_flare_free_validation_and_is_recorded(photos, tmp_path):
    val = [np.asarray(Image.open(photos / "0.png"))]
    plain = train_flare.clean_validation(val, 40, None)
    exposed = train_flare.clean_validation(val, 40, [2.0, 3.0])
    assert len(plain) == 1 and len(exposed) == 2 and all(np.array_equal(a, b) for a, b in exposed)
    assert np.array_equal(exposed[0][0], plain[0][0]) and (exposed[1][0] > exposed[0][0]).mean() > 0.5
    with pytest.raises(lightsr.LightSRError, match="give --clean-prob"):
        run(photos, tmp_path / "no-clean", "--model", "pix2pix-flare-test", "--steps", "1", "--clean-gain", "1", "2")
    out = tmp_path / "run"
    run(photos, out, "--model", "pix2pix-flare-test", "--steps", "1", "--clean-prob", "0.3", "--clean-gain", "1", "2.5",
        "--lamp-weight", "0.1", "--lamp-per-frame")
    record = json.loads((out / "run.json").read_text())
    assert "each flare frame's own mean" in record["objective"] and "--lamp-per-frame" in record["command"]
    assert "over-exposed 1 to 2.5 times" in record["data"] and "over-exposed by a seeded gain" in \
        record["lines"]["validation"]
    assert record["command"][record["command"].index("--clean-gain") + 1:][:2] == ["1.0", "2.5"]


def test_exposure_reaches_both_generators_and_the_record(photos, tmp_path):
    args = train_flare.parse_args(["--out", str(tmp_path / "x"), "--exposure", "0.9", "1.0"])
    assert train_flare.drawn_config(args).exposure == (0.9, 1.0)
    assert train_flare.optics_config(args).exposure == (0.9, 1.0)
    default = train_flare.parse_args(["--out", str(tmp_path / "y")])
    assert train_flare.optics_config(default).exposure == OpticsConfig.exposure  # unchanged without the flag
    # the scene under the flare keeps its daylight brightness: the target is the photo, not a darkened one
    photo = np.asarray(Image.open(photos / "0.png"))

    def brightness(a):  # the targets' mean over the photo's, 32 frames of the hand-drawn generator
        _, target = FrameFlarePairs([photo], 48, optics_prob=0.0, cfg=train_flare.drawn_config(a)).sample(
            np.random.default_rng(0), 32)
        return target.mean() / photo.mean()

    assert brightness(args) > 0.95 and brightness(default) < brightness(args) - 0.05
    out = tmp_path / "run"
    run(photos, out, "--model", "pix2pix-flare-test", "--steps", "1", "--optics-prob", "0", "--exposure", "0.9", "1")
    record = json.loads((out / "run.json").read_text())
    assert "scenes scaled by 0.9 to 1 before flare" in record["data"]
    assert record["command"][record["command"].index("--exposure") + 1:][:2] == ["0.9", "1.0"]


def test_psf_scale_reaches_the_optics_generator_and_the_record(photos, tmp_path):
    args = train_flare.parse_args(["--out", str(tmp_path / "x"), "--psf-scale", "0.3", "0.6"])
    assert train_flare.optics_config(args).psf_scale == (0.3, 0.6)
    default = train_flare.parse_args(["--out", str(tmp_path / "y")])
    assert train_flare.optics_config(default).psf_scale == OpticsConfig.psf_scale  # unchanged without the flag
    # the same draws with smaller PSFs: the flare reaches fewer pixels of the frame
    photo = np.asarray(Image.open(photos / "0.png"))

    def reach(a):  # the share of pixels the flare moves by more than 32 levels, 8 frames of the optics generator
        cfg = replace(train_flare.optics_config(a), bank_size=2)
        pairs = FrameFlarePairs([photo], 64, optics_prob=1.0, bank=psf_bank(cfg), optics_cfg=cfg)
        inp, target = pairs.sample(np.random.default_rng(0), 8)
        return (np.abs(inp.astype(int) - target.astype(int)).max(axis=-1) > 32).mean()

    assert reach(args) < 0.85 * reach(default)  # measured 0.56 against 0.74
    out = tmp_path / "run"
    run(photos, out, "--model", "pix2pix-flare-test", "--steps", "1", "--psf-scale", "0.3", "0.6")
    record = json.loads((out / "run.json").read_text())
    assert "optics PSFs magnified 0.3 to 0.6 times" in record["data"]
    assert record["command"][record["command"].index("--psf-scale") + 1:][:2] == ["0.3", "0.6"]


def test_frozen_batch_norm_keeps_its_statistics_and_the_harsher_drawn_flare_is_recorded(photos, tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    run(photos, base, "--model", "pix2pix-test", "--steps", "2")
    harsh = ["--optics-prob", "0", "--line-prob", "1", "--glow-gain", "1", "2", "--tail-prob", "1", "--rim-prob", "1"]
    run(photos, tuned, "--model", "pix2pix-test", "--steps", "2", "--init", str(base / "best"), "--freeze-bn",
        "--ema", "0", "--clipped-weight", "0.1", "--clean-prob", "0.2", *harsh)
    start = load_file(str(base / "best" / "model.safetensors"))
    end = load_file(str(tuned / "last" / "model.safetensors"))
    stats = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(start[k], end[k]) for k in stats)  # BatchNorm statistics untouched
    assert any(not torch.equal(start[k], end[k]) for k in start if k.endswith(".weight"))  # the weights trained
    record = json.loads((tuned / "run.json").read_text())
    assert "BatchNorm frozen" in record["objective"] and "--freeze-bn" in record["command"]
    assert "weighted 0.1 where the input is clipped" in record["objective"] and "--clipped-weight" in record["command"]
    assert all(s in record["data"] for s in ("long thin streak", "glow peaks 1 to 2", "power-law", "rimmed"))
    assert "20% of synthetic samples without flare" in record["data"]
    assert record["command"][record["command"].index("--clean-prob") + 1] == "0.2"
    assert "held-out photos without flare against themselves" in record["lines"]["validation"]
    rows = [r for r in csv.DictReader((tuned / "log.csv").open()) if r["val_psnr"]]
    assert rows and all(float(r["val_clean_psnr"]) > 0 for r in rows)  # the photos without flare were scored
    # without --freeze-bn the same fine-tune moves them: the test can fail
    moved = tmp_path / "moved"
    run(photos, moved, "--model", "pix2pix-test", "--steps", "2", "--init", str(base / "best"), "--ema", "0", *harsh)
    again = load_file(str(moved / "last" / "model.safetensors"))
    assert any(not torch.equal(start[k], again[k]) for k in stats)


def test_flare_training_on_its_flare_free_test_photos_is_refused(photos, tmp_path):
    test_set = tmp_path / "debian-photos"
    shutil.copytree(photos, test_set)
    with pytest.raises(lightsr.LightSRError, match="flare-free test set"):
        run(test_set, tmp_path / "run", "--model", "pix2pix-flare-test", "--steps", "1")


def test_average_weights_makes_the_weighted_mean_and_the_card_says_so(photos, tmp_path):
    """train/average_weights.py: every float tensor is the weighted mean of the sources' (WiSE-FT);
    the card of a recipe ending in it names the stages and weights and repeats its command. Sources
    of different configs, or weights that do not sum to 1, are refused in one line."""
    import average_weights
    from lightsr.cards import _training

    base, tuned, merged = tmp_path / "runs" / "base", tmp_path / "runs" / "tuned", tmp_path / "runs" / "merged"
    run(photos, base, "--model", "pix2pix-flare-test", "--steps", "2", "--lr", "1e-2")
    run(photos, tuned, "--model", "pix2pix-flare-test", "--steps", "2", "--lr", "1e-2", "--init", str(base / "best"))
    average_weights.main(average_weights.parse_args(
        [str(base / "best"), str(tuned / "best"), "--weights", "0.25", "0.75", "--out", str(merged)]))
    a, b, m = (load_file(str(d / "best" / "model.safetensors")) for d in (base, tuned, merged))
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved  # the fine-tune changed weights, so the mean is not trivially either source
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(m[k].double(), 0.25 * a[k].double() + 0.75 * b[k].double(), atol=1e-6), k
        else:  # BatchNorm's batch counter: the last source's
            assert torch.equal(m[k], b[k]), k
    assert lightsr.load(merged / "best").architecture == "pix2pix"

    training, reproduce = _training([base, tuned, merged], "bench")
    assert training["weights"].startswith("the weighted mean of 0.25 x stage 1's best weights and 0.75 x stage 2's")
    assert f"python train/average_weights.py {base / 'best'} {tuned / 'best'} --weights 0.25 0.75" in reproduce
    assert "stage 2 (`runs/tuned`)" in training["objective"]  # the last training stage keeps the full lines
    with pytest.raises(lightsr.LightSRError, match="needs the training runs it averages"):
        _training([merged], "bench")

    # a fine-tune of the average: the average is a stage line of its own, and the next stage starts from it
    after = tmp_path / "runs" / "after"
    run(photos, after, "--model", "pix2pix-flare-test", "--steps", "2", "--init", str(merged / "best"))
    training, reproduce = _training([base, tuned, merged, after], "bench")
    assert training["stage 3 (`runs/merged`)"].startswith("the weighted mean of 0.25 x stage 1's best weights")
    assert "stage 4 (`runs/after`)" in training["objective"] and "weights" not in training
    assert training["initialisation"].startswith("warm start from stage 3's best weights")
    assert training["total"].startswith("6 steps") and training["total"].endswith("in 4 stages")
    lines = reproduce.splitlines()
    assert lines[3].startswith("python train/average_weights.py") and "--init runs/merged/best" in lines[4]

    other = tmp_path / "runs" / "other"
    run(photos, other, "--model", "nf-resunet-flare-test", "--steps", "1")
    for argv, message in (([str(base / "best"), str(other / "best")], "not the same model"),
                          ([str(base / "best"), str(tuned / "best"), "--weights", "0.5", "0.6"], "summing to 1"),
                          ([str(base / "best"), str(tuned / "best"), "--weights", "nan", "1"], "summing to 1")):
        done = subprocess.run([sys.executable, str(ROOT / "train" / "average_weights.py"), *argv,
                               "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()


def test_streaks_prob_draws_streak_pairs_validates_them_and_is_recorded(photos, tmp_path):
    from lightsr.data.streaks import synthesize_streak_pair
    photo = np.asarray(Image.open(photos / "0.png"))
    frames = FrameFlarePairs([photo], 48, optics_prob=0.0, streaks_prob=1.0)
    a, b = frames.sample(np.random.default_rng(0), 2)
    # the streak generator's own pair, drawn after the photo, its crop and the share's draw
    rng = np.random.default_rng(0)
    rng.integers(1)
    (crop,) = frames._frame(rng, photo)
    rng.random()
    x, y = synthesize_streak_pair(crop, rng)
    assert np.array_equal(a[0], x) and np.array_equal(b[0], y)
    # at 0 nothing is drawn for it: the seeded streams of every earlier run are unchanged
    plain = FrameFlarePairs([photo], 48, optics_prob=0.0).sample(np.random.default_rng(0), 2)
    zero = FrameFlarePairs([photo], 48, optics_prob=0.0, streaks_prob=0.0).sample(np.random.default_rng(0), 2)
    assert all(np.array_equal(p, q) for p, q in zip(plain, zero))
    with pytest.raises(lightsr.LightSRError):
        FrameFlarePairs([photo], 48, optics_prob=0.0, streaks_prob=1.5)
    out = tmp_path / "run"
    run(photos, out, "--model", "pix2pix-flare-test", "--steps", "2", "--streaks-prob", "0.5")
    record = json.loads((out / "run.json").read_text())
    assert "50% from the streak generator" in record["data"]
    assert record["command"][record["command"].index("--streaks-prob") + 1] == "0.5"
    from lightsr.cards import trained_on_streaks
    plain_run = tmp_path / "plain"
    run(photos, plain_run, "--model", "pix2pix-flare-test", "--steps", "1")
    assert trained_on_streaks([plain_run, out]) and not trained_on_streaks(plain_run)  # what the cards say
    args = train_flare.parse_args(["--out", str(tmp_path / "x")])
    assert train_flare.trained_generators(args) == ("optics", "drawn")
    args.streaks_prob = 0.3
    assert train_flare.trained_generators(args) == ("optics", "drawn", "streaks")
    with pytest.raises(lightsr.LightSRError, match="whole frames"):  # patches have no streak pairs: not ignored
        run(photos, tmp_path / "patches", "--model", "pix2pix-flare-test", "--steps", "1", "--frame", "0",
            "--streaks-prob", "0.5")


def test_a_small_batch_batch_norm_fine_tune_is_warned_to_freeze_it(photos, tmp_path, caplog):
    base = tmp_path / "base"
    run(photos, base, "--model", "pix2pix-test", "--steps", "1")
    caplog.clear()
    run(photos, tmp_path / "free", "--model", "pix2pix-test", "--steps", "1", "--init", str(base / "best"))
    assert "--freeze-bn keeps them" in caplog.text
    caplog.clear()
    run(photos, tmp_path / "frozen", "--model", "pix2pix-test", "--steps", "1", "--init", str(base / "best"),
        "--freeze-bn")
    assert "--freeze-bn keeps them" not in caplog.text


def test_a_model_that_returns_its_input_is_warned_as_collapsed(photos):
    """The validation scores tell a collapse to the identity (what a large background weight did to
    Pix2Pix) from a model that changes the frames, and only the first is warned about."""
    from lightsr.data.flare import validation_frames
    from lightsr.metrics import psnr

    held = [np.asarray(Image.open(p)) for p in sorted(photos.glob("*.png"))]
    val = validation_frames(held, "drawn", count=4, long_side=64, seed=0)
    noop = float(np.mean([psnr(a, b, y_channel=False) for a, b, *_ in val]))
    cpu = torch.device("cpu")
    v, _, to_input = train_flare.validate(torch.nn.Identity(), val, cpu)
    assert v == pytest.approx(noop) and to_input == train_flare.CLEAN_CAP
    assert "collapsed to the identity" in train_flare.collapse_warning(v, to_input, noop)
    v, _, to_input = train_flare.validate(torch.nn.Sequential(torch.nn.AvgPool2d(5, 1, 2)), val, cpu)
    assert to_input < 35 and train_flare.collapse_warning(v, to_input, noop) is None


def test_a_fine_tunes_average_holds_on_to_its_starting_weights(photos, tmp_path):
    """From --init, the EMA runs at its full decay from the first step (no warm-up): the weights it
    keeps stay near the starting ones while the raw weights move (with the warm-up, which suits a
    random start, the average followed the raw weights within a few steps)."""
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    run(photos, base, "--model", "pix2pix-test", "--steps", "2")
    run(photos, tuned, "--model", "pix2pix-test", "--steps", "8", "--init", str(base / "best"), "--lr", "1e-2",
        "--ema", "0.99", "--val-every", "8")
    start = load_file(str(base / "best" / "model.safetensors"))
    raw = load_file(str(tuned / "last" / "model.safetensors"))
    kept = load_file(str(tuned / "best" / "model.safetensors"))
    weights = [k for k in start if start[k].is_floating_point() and "running" not in k]

    def moved(w):
        return float(sum((w[k] - start[k]).abs().sum() for k in weights))

    assert 0 < moved(kept) < 0.2 * moved(raw), (moved(kept), moved(raw))


@pytest.mark.parametrize("model", ["pix2pix-test", "nf-resunet-test"])
def test_amp_runs_the_forward_in_bf16_and_records_it(photos, tmp_path, model):
    """--amp trains (finite, no skipped step) with the forward passes in bf16: the second step's losses move
    off fp32's by bf16 rounding, not more; the card's objective and reproduce command say so."""
    losses = {}
    for amp in ([], ["--amp"]):
        out = tmp_path / ("amp" if amp else "fp32")
        result = run(photos, out, "--model", model, "--steps", "2", *amp)
        assert result["skipped"] == 0
        with open(out / "log.csv") as f:
            row = [r for r in csv.DictReader(f) if r["l1"]][-1]  # step 2: a fresh NF-ResUNet starts as the identity
        losses[bool(amp)] = float(row["l1"]), float(row["flare_l1"])
    for fp32, bf16 in zip(losses[False], losses[True]):
        assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)
    record = json.loads((tmp_path / "amp" / "run.json").read_text())
    assert "bf16 autocast" in record["objective"] and "--amp" in record["command"]
    assert "bf16" not in json.loads((tmp_path / "fp32" / "run.json").read_text())["objective"]
