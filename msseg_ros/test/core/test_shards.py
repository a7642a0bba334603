import numpy as np
import pytest

from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.shards import frame_shard


def test_every_frame_has_one_shard_and_periodic_stamps_spread():
    # a line frame every 0.274 s, a camera frame every 1/30 s: both spread over the shards
    for period_ns in (274_000_000, 33_333_333, 1_000_000_000):
        stamps = 1_700_000_000_000_000_000 + period_ns * np.arange(600)
        for n in (2, 3):
            shard = np.array([frame_shard(int(s), n) for s in stamps])
            assert set(shard) == set(range(n))
            share = np.bincount(shard, minlength=n) / len(shard)
            assert share.min() > 0.8 / n, (period_ns, n, share)
    assert all(frame_shard(int(s), 1) == 0 for s in range(0, 10**9, 10**7))
    assert frame_shard(123_456_789_000, 4) == frame_shard(123_456_789_000, 4)  # same stamp, same shard
    with pytest.raises(ValueError, match="shards must be >= 1"):
        frame_shard(0, 0)


@pytest.mark.parametrize("value, ok", [([0, 1], True), ([1, 2], True), ([2, 2], False), ([0], False),
                                       ([-1, 2], False), ([0, 0], False)])
def test_shard_parameter_is_checked(value, ok):
    schema = schema_for("segmenter")
    if ok:
        assert schema.check("shard", value) == value
    else:
        with pytest.raises(Exception, match=r"shard.*\[k, N\]"):
            schema.check("shard", value)
