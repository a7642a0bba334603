"""`msseg train` -> `msseg eval` -> `msseg models info`, end to end, for every model type."""
import json
import subprocess
import sys

import pytest

from msseg_ros.core.sim.dataset import generate

from conftest import ROOT


def _msseg(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "msseg_ros.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate("sorting_line", root / "line", 6, 3, {"pixel_size": 0.004, "line_pitch": 0.004}, lines=64)
    generate("bin_picking", root / "bins", 4, 3, {"width": 64, "height": 64, "max_instances": 10})
    return root


@pytest.mark.parametrize("model, cell, extra", [
    ("classic", "line", ["--set", "model.min_area_px=4", "--set", "train.pixels_per_class=300",
                         "--set", "model.rff_components=64"]),
    ("maskrcnn", "line", ["--set", "model.backbone=resnet18", "--set", "model.fpn_channels=32",
                          "--set", "model.box_representation=64", "--set", "model.mask_channels=16",
                          "--set", "model.min_size=64", "--set", "model.max_size=128",
                          "--set", "train.max_steps=2", "--set", "train.batch_size=2",
                          "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]),
    ("embeddings", "line", ["--set", "model.width=25", "--set", "train.max_steps=2", "--set", "train.batch_size=2",
                            "--set", "train.precision=bf16", "--set", "model.offset_range_px=16.0",
                            "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]),
    ("bicameral", "bins", ["--set", "model.width=25", "--set", "train.max_steps=2",
                           "--set", "train.batch_size=2", "--set", "train.crop=32",
                           "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]),
])
def test_train_eval_info(tmp_path, data, model, cell, extra):
    ann = data / cell / "annotations"
    run = tmp_path / "run"
    out = _msseg("train", "--set", f"model.type={model}", "--set", f"data.train={ann / 'learning.json'}",
                 "--set", f"data.val={ann / 'validation.json'}", "--set", f"out={run}",
                 "--set", "train.epochs=1", "--set", "train.device=cpu", *extra)
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = run / "model.safetensors"
    assert ckpt.is_file() and (run / "model.yaml").is_file() and (run / "state.json").is_file()
    ev = _msseg("eval", str(ckpt), "--data", str(ann / "test.json"), "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr[-2000:]
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("segm_AP", "bbox_AP50", "accuracy", "missed_pct", "time_median_ms", "time_p90_ms"):
        assert key in metrics["summary"]
    assert (tmp_path / "ev" / "contingency.png").is_file()
    if model == "bicameral":
        assert 0 <= metrics["summary"]["boundary_ODS"] <= 1 and "occlusion_AP" in metrics["summary"]
    info = _msseg("models", "info", str(ckpt), "--json")
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["config"]["type"] == model and doc["parameters"]["total"] > 0
    if model == "classic":
        assert metrics["summary"]["segm_AP"] > 0.2  # even a tiny classic model finds objects
        # the operating threshold, chosen on the validation split and stored in the checkpoint
        cal = _msseg("eval", str(ckpt), "--data", str(ann / "validation.json"), "--calibrate", "--write")
        assert cal.returncode == 0, cal.stderr[-2000:]
        assert "operating threshold:" in cal.stdout and "written: operating_threshold" in cal.stdout
        stored = json.loads(_msseg("models", "info", str(ckpt), "--json").stdout)["config"]["operating_threshold"]
        assert 0.05 <= stored <= 0.95
        op = _msseg("eval", str(ckpt), "--data", str(ann / "test.json"), "--score-threshold", "operating",
                    "--out", str(tmp_path / "op"))
        assert op.returncode == 0, op.stderr[-2000:]
        assert json.loads((tmp_path / "op" / "metrics.json").read_text())["summary"]["score_threshold"] == stored


def test_resume_continues(tmp_path, data):
    ann = data / "bins" / "annotations"
    args = ["train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
            "--set", f"out={tmp_path}", "--set", "train.batch_size=2", "--set", "train.crop=32",
            "--set", "train.device=cpu", "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]
    assert _msseg(*args, "--set", "train.epochs=1").returncode == 0
    r = _msseg(*args, "--set", "train.epochs=2", "--resume")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "resumed from epoch 1" in r.stdout
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2


@pytest.mark.parametrize("args, message", [
    (["train", "--set", "model.type=yolo", "--set", "data.train=x", "--set", "out=y"], "unknown model.type 'yolo'"),
    (["train", "--set", "model.type=classic", "--set", "out=y"], "lacks the 'data' section"),
    (["train", "--set", "model.type=classic", "--set", "data.train=/nope.json", "--set", "out=/tmp/x"],
     "annotation file '/nope.json' does not exist"),
    (["train", "--set", "model.type=classic", "--set", "data.train=x", "--set", "out=y",
      "--set", "train.epoch=3"], "unknown train option 'epoch'"),
    (["eval", "/nope.safetensors", "--data", "x.json"], "annotation file 'x.json' does not exist"),
    (["eval", "/nope.safetensors", "--data", "x.json", "--write"], "--write and --precision-target go with --calibrate"),
    (["eval", "/nope.safetensors", "--data", "x.json", "--calibrate", "--precision-target", "1.5"],
     "--precision-target must be in (0, 1]"),
    (["models", "info", "nothing"], "no checkpoint 'nothing'"),
])
def test_errors_one_line(args, message):
    r = _msseg(*args, timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_same_seed_same_weights(tmp_path, data):
    """A seed makes a CPU training run repeatable, bit for bit."""
    from safetensors.numpy import load_file

    ann = data / "bins" / "annotations"
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        r = _msseg("train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
                   "--set", f"out={out}", "--set", "train.batch_size=2", "--set", "train.crop=32",
                   "--set", "train.max_steps=3", "--set", "train.epochs=1", "--set", "train.device=cpu",
                   "--set", "train.seed=5", "--set", "train.augment.hflip=0.5",
                   "--set", "model.image_mean=auto", "--set", "model.image_std=auto")
        assert r.returncode == 0, r.stderr[-1500:]
        outs.append(load_file(str(out / "model.safetensors")))
    assert outs[0].keys() == outs[1].keys()
    assert all((outs[0][k] == outs[1][k]).all() for k in outs[0])


def test_fine_tune_from_a_checkpoint(tmp_path, data):
    """train.init starts from a checkpoint's weights (lr 0: they come out unchanged) and
    keeps its normalisation; a checkpoint of another model type is refused in one line."""
    from safetensors.numpy import load_file

    ann = data / "bins" / "annotations"
    base = ["train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
            "--set", "train.batch_size=2", "--set", "train.crop=32", "--set", "train.max_steps=1",
            "--set", "train.epochs=1", "--set", "train.device=cpu", "--set", "model.width=25"]
    first = tmp_path / "first"
    assert _msseg(*base, "--set", f"out={first}", "--set", "model.image_mean=[0.1,0.2,0.3]",
                  "--set", "model.image_std=[0.5,0.5,0.5]").returncode == 0
    tuned = tmp_path / "tuned"
    r = _msseg(*base, "--set", f"out={tuned}", "--set", f"train.init={first / 'model.safetensors'}",
               "--set", "train.lr=0")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "initialised from" in r.stdout
    a, b = load_file(first / "model.safetensors"), load_file(tuned / "model.safetensors")
    weights = [k for k in a if "running" not in k and "num_batches" not in k]
    assert weights and all((a[k] == b[k]).all() for k in weights)
    cfg = json.loads((tuned / "train_config.json").read_text())["model"]
    assert cfg["image_mean"] == [0.1, 0.2, 0.3]  # inherited, not recomputed from the data
    wrong = _msseg("train", "--set", "model.type=maskrcnn", "--set", f"data.train={ann / 'learning.json'}",
                   "--set", f"out={tmp_path / 'wrong'}", "--set", f"train.init={first / 'model.safetensors'}")
    assert wrong.returncode == 2 and "is a bicameral checkpoint" in wrong.stderr, wrong.stderr


def test_fine_tune_with_a_part_frozen(tmp_path, data):
    """train.freeze holds the named parts at their starting values while the rest learns;
    a prefix naming no parameter is refused with the network's parts."""
    from safetensors.numpy import load_file

    ann = data / "bins" / "annotations"
    base = ["train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
            "--set", "train.batch_size=2", "--set", "train.crop=32", "--set", "train.max_steps=2",
            "--set", "train.epochs=1", "--set", "train.device=cpu", "--set", "model.width=25",
            "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]
    first = tmp_path / "first"
    assert _msseg(*base, "--set", f"out={first}").returncode == 0
    tuned = tmp_path / "tuned"
    r = _msseg(*base, "--set", f"out={tuned}", "--set", f"train.init={first / 'model.safetensors'}",
               "--set", "train.lr=0.01", "--set", "train.freeze=encoder")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "parameters held at their starting values" in r.stdout
    a, b = load_file(first / "model.safetensors"), load_file(tuned / "model.safetensors")
    learnt = [k for k in a if "running" not in k and "num_batches" not in k]
    frozen = [k for k in learnt if k.startswith("encoder.")]
    assert frozen and all((a[k] == b[k]).all() for k in frozen)
    assert any((a[k] != b[k]).any() for k in learnt if not k.startswith("encoder."))
    bad = _msseg(*base, "--set", f"out={tmp_path / 'bad'}", "--set", "train.freeze=backbone.body")
    assert bad.returncode == 2 and "names no parameter" in bad.stderr and "encoder" in bad.stderr, bad.stderr


def test_rehearsal_mixes_a_second_set_into_every_epoch(tmp_path, data):
    """data.rehearsal: each epoch visits the training frames plus as many rehearsal frames
    (fraction 0.5), so twice the steps; a bicameral model reads each frame's own maps from
    its own set. A set with other classes is refused in one line."""
    generate("bin_picking", tmp_path / "more", 8, 4, {"width": 64, "height": 64, "max_instances": 10})
    ann = data / "bins" / "annotations"
    base = ["train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
            "--set", "train.batch_size=1", "--set", "train.crop=32", "--set", "train.epochs=2",
            "--set", "train.device=cpu", "--set", "model.width=25",
            "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]
    own = len(json.loads((ann / "learning.json").read_text())["images"])
    r = _msseg(*base, "--set", f"out={tmp_path / 'run'}",
               "--set", f"data.rehearsal={tmp_path / 'more' / 'annotations' / 'learning.json'}")
    assert r.returncode == 0, r.stderr[-1500:]
    assert f"data.rehearsal: {own} frames of 4 in" in r.stdout and f"join the {own} training frames" in r.stdout
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [e["step"] for e in state["history"]] == [2 * own, 4 * own]
    wrong = _msseg(*base, "--set", f"out={tmp_path / 'wrong'}",
                   "--set", f"data.rehearsal={data / 'line' / 'annotations' / 'learning.json'}")
    assert wrong.returncode == 2 and "they must match" in wrong.stderr and "Traceback" not in wrong.stderr, \
        wrong.stderr
    fitted = _msseg("train", "--set", "model.type=classic", "--set", f"data.train={ann / 'learning.json'}",
                    "--set", f"out={tmp_path / 'fitted'}", "--set", f"data.rehearsal={ann / 'learning.json'}")
    assert fitted.returncode == 2 and "classic is fitted in one pass" in fitted.stderr, fitted.stderr


def test_a_diverging_training_skips_non_finite_steps_then_stops(tmp_path, data):
    """An absurd learning rate: the first step blows the weights up, the next steps' losses
    are not finite; each is skipped (the weights are not touched again), counted and
    named, and the run stops with the advice after MAX_NONFINITE_STREAK of them."""
    from msseg_ros.core.learning.train import MAX_NONFINITE_STREAK

    ann = data / "bins" / "annotations"
    r = _msseg("train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
               "--set", "train.batch_size=2", "--set", "train.crop=32", "--set", "train.max_steps=40",
               "--set", "train.epochs=20", "--set", "train.device=cpu", "--set", "model.width=25",
               "--set", "model.image_mean=auto", "--set", "model.image_std=auto", "--set", "train.lr=1e30",
               "--set", f"out={tmp_path / 'run'}")
    assert r.returncode == 2, (r.stdout[-1500:], r.stderr[-1500:])
    assert f"training diverged: {MAX_NONFINITE_STREAK} steps in a row were not finite" in r.stderr, r.stderr
    assert "train.clip_grad_norm" in r.stderr and "Traceback" not in r.stderr
    assert f"({MAX_NONFINITE_STREAK} skipped so far)" in r.stdout + r.stderr


def test_gradient_clipping_caps_the_step(tmp_path, data):
    """train.clip_grad_norm: a huge learning rate with the gradient's norm capped still
    trains to finite weights over a few steps (Adam's step is bounded by lr either way;
    the option is accepted, checked and used)."""
    ann = data / "bins" / "annotations"
    base = ["train", "--set", "model.type=bicameral", "--set", f"data.train={ann / 'learning.json'}",
            "--set", "train.batch_size=2", "--set", "train.crop=32", "--set", "train.max_steps=2",
            "--set", "train.epochs=1", "--set", "train.device=cpu", "--set", "model.width=25",
            "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]
    ok = _msseg(*base, "--set", "train.clip_grad_norm=1.0", "--set", f"out={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr[-1500:]
    bad = _msseg(*base, "--set", "train.clip_grad_norm=-1", "--set", f"out={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "train.clip_grad_norm must be >= 0" in bad.stderr, bad.stderr


def test_fit_class_head_writes_a_checkpoint_that_loads_with_its_head(tmp_path, data):
    """`msseg fit-class-head` stores a LightGBM head in a copy of the checkpoint; loading
    attaches it (``class_head: null`` leaves it off); bad channels and classes are refused."""
    from msseg_ros.core.segmentation.checkpoint import load_checkpoint
    from msseg_ros.core.segmentation.loading import load_segmenter

    ann = data / "line" / "annotations"
    out = tmp_path / "headed.safetensors"
    r = _msseg("fit-class-head", "sorting_line_maskrcnn", "--data", str(ann / "learning.json"),
               "--val", str(ann / "test.json"), "--spectral-channels", "3-10", "--out", str(out),
               "--set", "rounds=5")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "class head on" in r.stdout and "written:" in r.stdout
    arrays, cfg = load_checkpoint(out)
    assert arrays["class_head.lightgbm"].dtype.name == "uint8"
    assert cfg["class_head"]["features"] == 2 * 11 + 8 + 1 + 1 and cfg["class_head"]["fit"]["rounds"] == 5
    seg = load_segmenter(str(out))
    assert seg.class_head is not None
    assert load_segmenter(str(out), overrides={"class_head": None}).class_head is None
    bad = _msseg("fit-class-head", "sorting_line_maskrcnn", "--data", str(ann / "learning.json"),
                 "--spectral-channels", "3-12", "--out", str(tmp_path / "x.safetensors"))
    assert bad.returncode == 2 and "outside the model's channels 0..10" in bad.stderr, bad.stderr
    bad = _msseg("fit-class-head", "sorting_line_maskrcnn", "--data", str(ann / "learning.json"),
                 "--dual-energy", "1,11", "--out", str(tmp_path / "x.safetensors"))
    assert bad.returncode == 2 and "dual_energy_ratio.high" in bad.stderr, bad.stderr
    other = _msseg("fit-class-head", "sorting_line_maskrcnn", "--data",
                   str(data / "bins" / "annotations" / "learning.json"), "--out", str(tmp_path / "y.safetensors"))
    assert other.returncode == 2 and "are not the model's" in other.stderr, other.stderr
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()


def test_fine_tuning_from_a_checkpoint_with_a_class_head_leaves_the_head(tmp_path, data):
    line, bins = data / "line" / "annotations", data / "bins" / "annotations"
    base = ["train", "--set", "model.type=embeddings", "--set", f"data.train={line / 'learning.json'}",
            "--set", "train.batch_size=2", "--set", "train.max_steps=1", "--set", "train.epochs=1",
            "--set", "train.device=cpu", "--set", "model.width=25", "--set", "model.offset_range_px=16.0",
            "--set", "model.image_mean=auto", "--set", "model.image_std=auto"]
    first = tmp_path / "first"
    r = _msseg(*base, "--set", f"out={first}")
    assert r.returncode == 0, r.stderr[-1500:]
    headed = tmp_path / "headed.safetensors"
    r = _msseg("fit-class-head", str(first / "model.safetensors"), "--data", str(line / "learning.json"),
               "--out", str(headed), "--set", "rounds=3")
    assert r.returncode == 0, r.stderr[-1500:]
    r = _msseg(*base, "--set", f"out={tmp_path / 'tuned'}", "--set", f"train.init={headed}")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "class head is not carried over" in r.stdout + r.stderr and "initialised from" in r.stdout
    one = _msseg("fit-class-head", "bin_picking_bicameral", "--data", str(bins / "learning.json"),
                 "--out", str(tmp_path / "z.safetensors"))
    assert one.returncode == 2 and "this model has 1" in one.stderr, one.stderr
