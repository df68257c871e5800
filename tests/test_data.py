"""The photos under data/ carry their provenance: every folder has a README, and every file of
data/debian-photos, data/package-photos and data/flare-photos is credited there (author, licence, source package) and
listed in the script that rebuilds the folder."""

import importlib.util
import re

import pytest
from conftest import ROOT
from PIL import Image

from lightsr.imaging import image_files
from lightsr.training import split_holdout

DATA = ROOT / "data"
PHOTOS = DATA / "debian-photos"
REBUILT = [PHOTOS, DATA / "package-photos", DATA / "flare-photos"]  # folders a make.py rebuilds from packages
TRAINING = REBUILT[:2]  # of those, the ones a trainer may be given


def _make_script(folder):
    spec = importlib.util.spec_from_file_location(f"make_{folder.name}", folder / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("folder", sorted(p for p in DATA.iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_every_data_folder_has_a_readme(folder):
    assert (folder / "README.md").is_file()


@pytest.mark.parametrize("folder", REBUILT, ids=lambda p: p.name)
def test_every_package_photo_is_credited_and_rebuildable(folder):
    files = {p.name for p in image_files(folder)}
    listed = {f"{name}.jpg" for _, _, name, _, _ in _make_script(folder).PHOTOS}
    assert files == listed
    readme = (folder / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+\.jpg)` \| (\d+x\d+) \| [^|]+ \| [^|]*\S[^|]* \|", readme, flags=re.M))
    assert set(rows) == files
    for name, size in rows.items():
        with Image.open(folder / name) as im:
            assert f"{im.width}x{im.height}" == size and max(im.size) <= 1280 and im.mode == "RGB"


@pytest.mark.parametrize("folder", TRAINING, ids=lambda p: p.name)
def test_adding_the_photos_first_keeps_the_held_out_photos(folder):
    """The READMEs' promise: listed before sr-train, the validation photos are sr-train's last 8."""
    alone = split_holdout(image_files(DATA / "sr-train"), 8)[1]
    both = split_holdout(image_files(folder) + image_files(DATA / "sr-train"), 8)[1]
    assert both == alone
