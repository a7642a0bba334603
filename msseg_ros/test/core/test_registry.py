import pytest

from msseg_ros.core.errors import RegistryError
from msseg_ros.core.registry import Registry


def test_register_and_get():
    reg = Registry("frame source", required=("read",))

    @reg.register("a")
    class A:
        def read(self):
            return 1

    assert reg.get("a") is A
    assert "a" in reg and reg.names() == ["a"] and len(reg) == 1


def test_duplicate_refused_with_names():
    reg = Registry("segmenter")
    reg.add("x", object)
    with pytest.raises(RegistryError, match="segmenter 'x' is already registered"):
        reg.add("x", int)


def test_missing_required_attribute_named():
    reg = Registry("robot backend", required=("send", "poll"))
    with pytest.raises(RegistryError, match="lacks required attribute.*send, poll"):
        reg.add("bad", object)


def test_unknown_lists_known():
    reg = Registry("segmenter")
    reg.add("classic", object)
    reg.add("bicameral", object)
    with pytest.raises(RegistryError) as err:
        reg.get("yolo")
    assert str(err.value) == "unknown segmenter 'yolo'; registered: bicameral, classic"
