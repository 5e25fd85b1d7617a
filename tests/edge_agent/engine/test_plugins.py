"""The three plug-in tables are declared one way: the table in the package's base module, the plug-in modules
in one PLUGIN_MODULES tuple loaded by import_plugins, each plug-in registered from its own listed module."""

from __future__ import annotations

import importlib

import pytest

from edge_agent.engine.plugins import PluginTable, import_plugins

TABLES = [("edge_agent.engine.sources", "SOURCES", {"synthetic", "file", "v4l2", "rtsp"}),
          ("edge_agent.engine.backends", "BACKENDS", {"onnxruntime", "openvino"}),
          ("edge_agent.engine.postprocess", "POSTPROCESSORS", {"softmax", "logits", "yolo", "ssd"})]


@pytest.mark.parametrize(("package", "name", "built_ins"), TABLES)
def test_every_table_is_declared_the_same_way(package: str, name: str, built_ins: set[str]) -> None:
    pkg = importlib.import_module(package)
    base = importlib.import_module(f"{package}.base")
    table = getattr(base, name)
    assert isinstance(table, PluginTable) and getattr(pkg, name) is table
    assert isinstance(pkg.PLUGIN_MODULES, tuple) and all(m.startswith(f"{package}.") for m in pkg.PLUGIN_MODULES)
    assert set(table.keys()) == built_ins
    assert {item.__module__ for _, item in table.items()} == set(pkg.PLUGIN_MODULES)


def test_a_missing_third_party_module_is_skipped_but_a_missing_module_of_ours_is_raised() -> None:
    assert import_plugins(["no_such_dependency_for_edgefleet_tests.plugin", "edge_agent.engine.sources.rtsp"]) == [
        "edge_agent.engine.sources.rtsp"]
    with pytest.raises(ModuleNotFoundError) as caught:
        import_plugins(["edge_agent.engine.no_such_plugin_for_tests"])
    assert caught.value.name == "edge_agent.engine.no_such_plugin_for_tests"


def test_a_key_registers_once_and_can_be_taken_out() -> None:
    table: PluginTable[object] = PluginTable("widget")
    first, second = object(), object()
    table.register("a")(first)
    table.register("a")(first)  # the same plug-in imported twice is not a conflict
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        table.register("a")(second)
    table.register("b")(second)
    assert table.items() == [("a", first), ("b", second)]
    assert table.unregister("a") is first and "a" not in table
    with pytest.raises(KeyError, match="unknown widget 'a' \\(known: b\\)"):
        table.get("a")
