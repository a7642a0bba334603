import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField

from msseg_ros.core import tables
from msseg_ros.ros.pointcloud_table import TableCodecError, cloud_to_table, table_to_cloud


@pytest.mark.parametrize("name", sorted(tables.TABLES))
def test_contract_tables_round_trip_through_cdr(name):
    dtype = tables.TABLES[name]
    t = tables.empty(dtype, 4)
    for i, field in enumerate(dtype.names):
        t[field] = np.arange(4) + i
    if "affordance" in dtype.names:
        t["affordance"][1] = np.nan
    msg = table_to_cloud(t)
    assert (msg.height, msg.width, msg.point_step) == (1, 4, dtype.itemsize)
    assert [f.name for f in msg.fields] == list(dtype.names)
    assert msg.is_dense == ("affordance" not in dtype.names)
    back = cloud_to_table(deserialize_message(serialize_message(msg), PointCloud2), dtype)
    assert back.dtype == dtype
    for field in dtype.names:
        np.testing.assert_array_equal(back[field], t[field])


def test_field_types_match_contract():
    msg = table_to_cloud(tables.empty(tables.CANDIDATES, 1))
    types = {f.name: f.datatype for f in msg.fields}
    assert types["x"] == PointField.FLOAT32 and types["pick_id"] == PointField.UINT32
    assert types["class_id"] == PointField.UINT16 and types["belt_position"] == PointField.FLOAT64


def test_empty_table():
    msg = table_to_cloud(tables.empty(tables.DETECTIONS, 0))
    assert msg.width == 0 and len(cloud_to_table(msg, tables.DETECTIONS)) == 0


def test_other_field_order_and_padding_is_read():
    # a producer that orders fields differently and pads each point to 16 B
    wire = np.dtype({"names": ["score", "instance"], "formats": ["<f4", "<u2"],
                     "offsets": [4, 0], "itemsize": 16})
    rows = np.zeros(3, wire)
    rows["score"], rows["instance"] = [0.5, 0.25, 1.0], [3, 1, 2]
    msg = PointCloud2(height=1, width=3, point_step=16, row_step=48, is_bigendian=False,
                      fields=[PointField(name="score", offset=4, datatype=7, count=1),
                              PointField(name="instance", offset=0, datatype=4, count=1)],
                      data=rows.tobytes())
    want = np.dtype([("instance", np.uint16), ("score", np.float32)])
    out = cloud_to_table(msg, want)
    assert out["instance"].tolist() == [3, 1, 2] and out["score"].tolist() == [0.5, 0.25, 1.0]


def test_mismatch_errors_name_the_field():
    msg = table_to_cloud(tables.empty(tables.DETECTIONS, 2))
    with pytest.raises(TableCodecError, match="field 'x' missing; cloud has instance, class_id"):
        cloud_to_table(msg, tables.CANDIDATES)
    wrong = np.dtype([("instance", np.uint32)])
    with pytest.raises(TableCodecError, match="field 'instance' is uint16 but uint32 is expected"):
        cloud_to_table(msg, wrong)
    msg.data = bytes(msg.data)[:10]
    need = 2 * tables.DETECTIONS.itemsize  # 2 rows of 49 B (packed)
    with pytest.raises(TableCodecError, match=f"data has 10 B but 2 points need {need} B"):
        cloud_to_table(msg, tables.DETECTIONS)
    with pytest.raises(TableCodecError, match="expected a 1-D structured array"):
        table_to_cloud(np.zeros(3))
