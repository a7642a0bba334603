"""core.paths: the package's share folder, and `config/...` paths that work from any folder."""
from pathlib import Path

import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.interfaces import msg_dir
from msseg_ros.core.learning.train import load_train_config
from msseg_ros.core.paths import packaged, share_dir
from msseg_ros.core.segmentation.loading import resolve_weights

from conftest import REPO, ROOT


def test_share_dir_is_the_package_folder_in_a_source_tree():
    assert share_dir() == ROOT
    assert (share_dir() / "package.xml").is_file() and (share_dir() / "config" / "models").is_dir()


def test_the_message_sources_are_found_beside_the_package():
    assert msg_dir() == REPO / "msseg_interfaces" / "msg"


def test_a_path_that_exists_here_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config" / "training").mkdir(parents=True)
    own = tmp_path / "config" / "training" / "sorting_line_maskrcnn.yaml"
    own.write_text("model: {type: classic}\n")
    assert packaged("config/training/sorting_line_maskrcnn.yaml") == Path("config/training/sorting_line_maskrcnn.yaml")


def test_a_package_path_is_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert packaged("config/training/sorting_line_maskrcnn.yaml") == ROOT / "config/training/sorting_line_maskrcnn.yaml"
    cfg = load_train_config("config/training/sorting_line_maskrcnn.yaml", {"out": str(tmp_path / "run")})
    assert cfg.model["type"] == "maskrcnn"
    assert resolve_weights("config/models/sorting_line_classic.safetensors") == (
        ROOT / "config/models/sorting_line_classic.safetensors")


def test_a_path_found_nowhere_is_returned_as_given_and_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert packaged("config/training/nope.yaml") == Path("config/training/nope.yaml")
    assert packaged(tmp_path / "absent.yaml") == tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"training config 'config/training/nope.yaml' does not exist"):
        load_train_config("config/training/nope.yaml", {})
