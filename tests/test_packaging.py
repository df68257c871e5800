"""What `pip install lightsr` gets: a PyPI page that renders off this repo, and PyAV only for video."""

import re
import subprocess
import sys
import tomllib

from conftest import ROOT


def test_pypi_long_description_stands_alone():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / project["readme"]).read_text()
    assert not text.startswith("---")  # no Space front matter
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert all(link.startswith("https://") for link in links), links  # no path that only works in the repo
    assert "/work/" not in text and "../" not in text
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in project["classifiers"])


def test_pyav_is_the_video_extra_and_the_space_still_installs_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("av") for d in project["dependencies"])
    assert any(d.startswith("av") for d in project["optional-dependencies"]["video"])
    assert any(line.startswith("av") for line in (ROOT / "requirements.txt").read_text().splitlines())


def test_video_without_pyav_is_one_clear_line_and_images_still_work(tmp_path):
    code = ("import sys; sys.modules['av'] = None\n"
            "from lightsr import cli\n"
            "import lightsr, lightsr.flare, lightsr.inference\n"
            "sys.exit(cli.main(['video', 'a.mp4', 'b.mp4']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "pip install 'lightsr[video]'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_import_lightsr_gives_what_the_readme_uses():
    """README's Python section uses only top-level names; upscale_video imports PyAV on first use."""
    import lightsr

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python"):text.index("Tensor contract")]
    used = set(re.findall(r"lightsr\.([a-z_]+)\(", section))
    assert used and all(hasattr(lightsr, name) for name in used), used
    assert "from lightsr." not in section
    assert {"remove_flare", "upscale_video", "LightSRModel", "save_image"} <= set(lightsr.__all__)
    assert lightsr.load.__kwdefaults__["device"] == "cpu"  # the caller moves a model to CUDA
