import pickle

import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from msseg_ros.core.segmentation.loading import load_segmenter

SMALL_BIC = {"type": "bicameral", "width": 25, "in_channels": 3}


def test_round_trip_and_yaml_card(tmp_path):
    seg = load_segmenter(config=SMALL_BIC)
    p = save_checkpoint(tmp_path / "m", seg.state_dict(), seg.config)
    assert p.suffix == ".safetensors" and p.with_suffix(".yaml").is_file()
    arrays, cfg = load_checkpoint(p)
    assert cfg["width"] == 25 and cfg["type"] == "bicameral"
    again = load_segmenter(str(p))
    x = np.random.default_rng(0).random((32, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(again.maps(x)[0], seg.maps(x)[0])


def test_pickles_are_refused_without_loading(tmp_path):
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="is a Python pickle, not safetensors; msseg_ros never unpickles"):
        load_checkpoint(evil)
    zipped = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(CheckpointError, match="torch.save zip archive"):
        load_segmenter(str(zipped))


def test_a_header_length_starting_with_0x80_is_no_pickle(tmp_path):
    # the 8-byte header length of a safetensors file can begin with the byte pickles begin with
    for pad in range(256):
        p = save_checkpoint(tmp_path / "w", {"w": np.zeros(3, np.float32)}, {"type": "x", "pad": "p" * pad})
        if p.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length whose low byte is 0x80")
    arrays, cfg = load_checkpoint(p)
    assert cfg["pad"] == "p" * pad and arrays["w"].shape == (3,)


def test_truncated_and_missing(tmp_path):
    seg = load_segmenter(config=SMALL_BIC)
    p = save_checkpoint(tmp_path / "m", seg.state_dict(), seg.config)
    data = p.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is truncated: .* B but its header describes"):
        load_checkpoint(cut)
    cut.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="not even a safetensors header"):
        load_checkpoint(cut)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_config_mismatch_names_the_difference(tmp_path):
    seg = load_segmenter(config=SMALL_BIC)
    p = save_checkpoint(tmp_path / "m", seg.state_dict(), {**seg.config, "in_channels": 11,
                                                            "image_mean": [0.0] * 11, "image_std": [1.0] * 11})
    with pytest.raises(CheckpointError, match=r"does not match its config: shape mismatch encoder.0.0.0.weight: "
                                              r"checkpoint \(16, 3, 3, 3\) vs config \(16, 11, 3, 3\)"):
        load_segmenter(str(p))
    sd = {k: v for k, v in seg.state_dict().items() if not k.startswith("occlusion_out")}
    q = save_checkpoint(tmp_path / "n", sd, seg.config)
    with pytest.raises(CheckpointError, match="missing \\['occlusion_out.bias', 'occlusion_out.weight'\\]"):
        load_segmenter(str(q))


def test_foreign_safetensors_without_config(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "x.safetensors"
    save_file({"a": np.zeros(3, np.float32)}, str(p))
    with pytest.raises(CheckpointError, match="has no msseg_config metadata"):
        load_checkpoint(p)
