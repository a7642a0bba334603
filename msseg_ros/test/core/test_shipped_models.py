"""The demo models shipped in config/models: safe to load, documented, small, working."""
import numpy as np
import pytest
import yaml

from msseg_ros.core.segmentation.checkpoint import load_checkpoint
from msseg_ros.core.segmentation.loading import load_segmenter, shipped_models
from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld
from msseg_ros.core.sim.tabletop import TabletopConfig, TabletopWorld

from conftest import ROOT

MODELS = ROOT / "config" / "models"
EXPECTED = {"sorting_line_classic", "sorting_line_maskrcnn", "bin_picking_bicameral", "bin_picking_maskrcnn",
            "tabletop_pretrained_maskrcnn"}


def test_expected_models_are_shipped_within_30_mb():
    names = set(shipped_models())
    assert EXPECTED <= names
    total = sum(p.stat().st_size for p in MODELS.glob("*.safetensors"))
    assert total <= 30 * 1024 * 1024, f"{total / 2**20:.1f} MB of checkpoints"


def test_every_checkpoint_is_declared_with_size_and_digest():
    """config/models/README.md declares each checkpoint (the only large files allowed)."""
    import hashlib

    rows = {}
    for line in (MODELS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].endswith(".safetensors"):
            rows[cells[0]] = (int(cells[1]), cells[2])
    files = {p.name: p for p in MODELS.glob("*.safetensors")}
    assert set(rows) == set(files), "declare every checkpoint in config/models/README.md (and only those)"
    for name, path in files.items():
        size, digest = rows[name]
        assert path.stat().st_size == size, f"{name}: size differs from its declaration"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{name}: sha256 differs"


@pytest.mark.parametrize("name", sorted(p.stem for p in MODELS.glob("*.safetensors")))
def test_model_card_config_and_inference(name):
    arrays, cfg = load_checkpoint(MODELS / f"{name}.safetensors")
    assert yaml.safe_load((MODELS / f"{name}.yaml").read_text()) == cfg
    card = (MODELS / f"{name}.md").read_text()
    for section in ("## Reproduce", "msseg train", "msseg sim-data", "## Metrics", "seed"):
        assert section in card, f"{name}.md lacks {section!r}"
    seg = load_segmenter(name)
    if name.startswith("sorting_line"):
        frame = SortingLineWorld(SortingLineConfig(seed=11, feed_rate=12.0)).render(0, 250)
        inst = seg(frame.image)
        assert len(inst) >= 1 and inst.labels.shape == frame.labels.shape
        assert set(np.unique(inst.class_ids)) <= set(range(1, 10))
    elif name.startswith("tabletop"):
        scene = TabletopWorld(TabletopConfig(seed=11)).render(0)
        inst = seg(scene["rgb"].astype(np.float32))
        assert inst.labels.shape == scene["labels"].shape and len(inst) >= 1
    else:
        r = BinPileWorld(BinPileConfig(seed=11)).scene(0).render()
        inst = seg(r["rgb"].astype(np.float32))
        assert inst.labels.shape == r["labels"].shape and len(inst) >= 1
        if seg.type_name == "bicameral":  # the one type that ranks its own picks
            assert np.isfinite(inst.affordance).all()
        else:
            assert np.isnan(inst.affordance).all() and ((inst.scores > 0) & (inst.scores <= 1)).all()
