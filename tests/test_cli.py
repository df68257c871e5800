"""The lightsr command line: real runs, and one clear line (no traceback, no partial file) on errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lightsr
from lightsr import cli, zoo


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lightsr", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_upscale_writes_the_image(tmp_path, saved_model, photo):
    folder, model = saved_model
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    result = run_cli("upscale", src, tmp_path / "out.png", "--model", folder, "--tile", "32")
    assert result.returncode == 0, result.stderr
    out = Image.open(tmp_path / "out.png")
    assert out.size == (192, 144)
    expected = lightsr.enhance(model, Image.fromarray(photo), tile=32)
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_user_errors_are_one_line_without_traceback(tmp_path, saved_model):
    folder, _ = saved_model
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    result = run_cli("upscale", bad, tmp_path / "out.png", "--model", folder)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lightsr upscale: error:") and "bad.png" in lines[0]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("args, message", [
    (["upscale", "{img}", "{tmp}/out.png", "--model", "{tmp}/nowhere"], "does not exist"),
    (["upscale", "{img}", "{tmp}/out.png", "--model", "{tmp}"], "no config.json"),
    (["upscale", "{img}", "{tmp}/out.xyz", "--model", "{model}"], "unknown image extension"),
    (["upscale", "{img}", "{tmp}/no/such/dir/out.png", "--model", "{model}"], "does not exist"),
    (["deflare", "{img}", "{tmp}/out.png", "--model", "{model}"], "is a super-resolution model, not flare-removal"),
    (["upscale", "{tmp}/missing.png", "{tmp}/out.png", "--model", "{model}"], "no such file"),
    (["info", "edsr"], "unknown model 'edsr'"),
    (["upscale", "{img}", "{tmp}/out.png", "--model", "rdn-nonexistent"],
     "not a model folder, a shipped checkpoint (ecbsr-x2, ecbsr-x4, nf-resunet-flare"),
])
def test_errors_in_process(tmp_path, saved_model, photo, capsys, args, message):
    folder, _ = saved_model
    img = tmp_path / "in.png"
    Image.fromarray(photo).save(img)
    argv = [a.format(img=img, tmp=tmp_path, model=folder) for a in args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_failure_during_processing_leaves_no_file(tmp_path, saved_model, photo, monkeypatch, capsys):
    folder, _ = saved_model
    img = tmp_path / "in.png"
    Image.fromarray(photo).save(img)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", boom)
    assert cli.main(["upscale", str(img), str(tmp_path / "out.png"), "--model", str(folder)]) == 130
    assert [p.name for p in tmp_path.iterdir()] == ["in.png", folder.name]


def test_info_and_eval(tmp_path, saved_model, capsys, photo):
    folder, _ = saved_model
    assert cli.main(["info", "rdn"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 22,123,395" in out and "GFLOPs per input megapixel" in out
    assert cli.main(["info", str(folder)]) == 0
    assert "architecture: rdn" in capsys.readouterr().out
    data = tmp_path / "hr"
    data.mkdir()
    Image.fromarray(photo).save(data / "a.png")
    assert cli.main(["eval", "--model", str(folder), "--data", str(data)]) == 0
    table = capsys.readouterr().out
    assert "| hr | x2 | 1 |" in table


def test_self_ensemble_options(tmp_path, photo, capsys):
    """upscale and eval --self-ensemble N: the model's weights shaken so it is far from symmetric,
    and the ensemble visibly changes its result."""
    import torch

    model = lightsr.create_model("rdn-test").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    folder = tmp_path / "shaken"
    model.save_pretrained(folder)
    src, data = tmp_path / "in.png", tmp_path / "hr"
    data.mkdir()
    Image.fromarray(photo).save(src)
    Image.fromarray(photo).save(data / "a.png")
    rows = []
    for n in ("1", "8"):
        assert cli.main(["eval", "--model", str(folder), "--data", str(data), "--self-ensemble", n]) == 0
        rows.append(capsys.readouterr().out.splitlines())
    assert "(self-ensemble x8) PSNR" in rows[1][0] and "self-ensemble" not in rows[0][0]
    assert rows[0][2] != rows[1][2]  # the same bicubic, another PSNR
    result = run_cli("upscale", src, tmp_path / "out.png", "--model", folder, "--self-ensemble", "4")
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out, np.asarray(lightsr.enhance(model, Image.fromarray(photo), self_ensemble=4)))
    assert not np.array_equal(out, np.asarray(lightsr.enhance(model, Image.fromarray(photo))))
    result = run_cli("upscale", src, tmp_path / "bad.png", "--model", folder, "--self-ensemble", "3")
    assert result.returncode == 2 and "invalid choice: 3" in result.stderr and not (tmp_path / "bad.png").exists()


def test_unknown_model_names_the_shipped_checkpoints_once(tmp_path, photo, capsys):
    img = tmp_path / "in.png"
    Image.fromarray(photo).save(img)
    assert cli.main(["upscale", str(img), str(tmp_path / "o.png"), "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "config.json" not in err and err.count("rdn-light-x2") == 1 and "pix2pix-flare" in err


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_respect_the_umask(tmp_path, saved_model, photo, umask):
    """Written via a private temporary file, the output still gets the mode any new file gets."""
    import os

    folder, _ = saved_model
    img = tmp_path / "in.png"
    Image.fromarray(photo).save(img)
    old = os.umask(umask)
    try:
        assert cli.main(["upscale", str(img), str(tmp_path / "out.png"), "--model", str(folder)]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_frames_of_a_non_video_leave_no_folder(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert cli.main(["frames", str(text), str(tmp_path / "frames")]) == 2
    assert "lightsr frames: error:" in capsys.readouterr().err
    assert not (tmp_path / "frames").exists()


def test_version_and_default_models(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"lightsr {lightsr.__version__}"
    parser = cli.build_parser()
    assert parser.parse_args(["upscale", "a.png", "b.png"]).model == "rdn-light-x2"
    assert parser.parse_args(["video", "a.mp4", "b.mp4"]).model == "ecbsr-x2"
    deflare = parser.parse_args(["deflare", "a.png", "b.png"])
    assert deflare.model is None and deflare.ensemble is None  # the default: zoo's flare ensemble
    loaded = [m.config for m in cli._models(deflare, "flare-removal")]
    assert loaded == [zoo.resolve(n).config for n in ("pix2pix-flare", "nf-resunet-flare")]
    alone = parser.parse_args(["deflare", "a.png", "b.png", "--model", "nf-resunet-flare"])
    assert [m.config for m in cli._models(alone, "flare-removal")] == [zoo.resolve("nf-resunet-flare").config]
    small = tmp_path / "small.png"
    Image.new("RGB", (12, 10), (90, 120, 30)).save(small)
    assert cli.main(["upscale", str(small), str(tmp_path / "big.png")]) == 0  # the shipped default runs
    assert Image.open(tmp_path / "big.png").size == (24, 20)


def test_a_folder_in_gives_a_folder_out_skips_done_files_and_lists_failures(tmp_path, saved_model, photo, capsys):
    folder, model = saved_model
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(photo).save(src / name)
    (src / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # corrupt: fails, the others go on
    (src / "notes.txt").write_text("not an image: not a candidate")
    assert cli.main(["upscale", str(src), str(dst), "--model", str(folder)]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in dst.iterdir()) == ["a.png", "b.png"]
    assert "2 written" in captured.out and "1 failed" in captured.out
    assert "failed: c.png:" in captured.err and "a.png" not in captured.err
    expected = lightsr.enhance(model, Image.fromarray(photo))
    assert np.array_equal(np.asarray(Image.open(dst / "a.png")), np.asarray(expected))
    before = (dst / "a.png").stat().st_mtime_ns
    assert cli.main(["upscale", str(src), str(dst), "--model", str(folder)]) == 1  # c.png still fails
    assert "0 written to" in capsys.readouterr().out and (dst / "a.png").stat().st_mtime_ns == before
    assert cli.main(["upscale", str(src), str(tmp_path / "one.png"), "--model", str(folder)]) == 1
    assert (tmp_path / "one.png").is_dir()  # an output that does not exist yet becomes the folder
    assert cli.main(["upscale", str(src), str(src), "--model", str(folder)]) == 2
