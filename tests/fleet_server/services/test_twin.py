import pytest

from edgefleet.protocol import ModelRef, PipelineConfig, TwinDesired, TwinReported, config_hash
from fleet_server.errors import InvalidInput
from fleet_server.schemas import TwinPatch
from fleet_server.services.twin import in_sync, merge_desired

SHA_A, SHA_B = "a" * 64, "b" * 64
MODEL_A = ModelRef(name="m", version="1", sha256=SHA_A)


def test_the_first_patch_makes_revision_one_from_defaults() -> None:
    d = merge_desired(None, TwinPatch(camera="synthetic"))
    assert d.revision == 1 and d.camera == "synthetic" and d.pipeline == PipelineConfig()


def test_patches_merge_and_bump_the_revision() -> None:
    d1 = merge_desired(None, TwinPatch(model=MODEL_A, pipeline={"score_threshold": 0.7}, properties={"a": 1}))
    d2 = merge_desired(d1, TwinPatch(pipeline={"top_k": 5}, properties={"b": 2}))
    assert d2.revision == 2 and d2.model == MODEL_A
    assert d2.pipeline.score_threshold == 0.7 and d2.pipeline.top_k == 5
    assert d2.properties == {"a": 1, "b": 2}


def test_null_clears_a_model_and_deletes_a_property() -> None:
    d1 = merge_desired(None, TwinPatch(model=MODEL_A, properties={"a": 1, "b": 2}))
    d2 = merge_desired(d1, TwinPatch.model_validate({"model": None, "properties": {"a": None}}))
    assert d2.model is None and d2.properties == {"b": 2}


def test_a_patch_that_makes_the_twin_invalid_is_refused() -> None:
    with pytest.raises(InvalidInput, match="score_threshold"):
        merge_desired(None, TwinPatch(pipeline={"score_threshold": 7}))
    with pytest.raises(InvalidInput, match="pipeline"):
        merge_desired(None, TwinPatch(pipeline={"no_such_field": 1}))


def test_an_empty_patch_is_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        merge_desired(None, TwinPatch())


def _reported(d: TwinDesired, **over: object) -> TwinReported:
    base = dict(desired_revision=d.revision, model=d.model, camera=d.camera, config_hash=config_hash(d.pipeline))
    base.update(over)
    return TwinReported(**base)  # type: ignore[arg-type]


def test_in_sync_when_revision_model_camera_and_config_hash_agree() -> None:
    d = merge_desired(None, TwinPatch(model=MODEL_A, camera="usb:0"))
    assert in_sync(d, _reported(d)) is True


@pytest.mark.parametrize("over", [
    {"desired_revision": 0},
    {"model": ModelRef(name="m", version="1", sha256=SHA_B)},
    {"model": None},
    {"camera": "usb:1"},
    {"config_hash": "0" * 16},
])
def test_not_in_sync_when_any_part_differs(over: dict) -> None:
    d = merge_desired(None, TwinPatch(model=MODEL_A, camera="usb:0"))
    assert in_sync(d, _reported(d, **over)) is False


def test_nothing_desired_is_neither_in_nor_out_of_sync_and_no_report_is_out_of_sync() -> None:
    d = merge_desired(None, TwinPatch(camera="usb:0"))
    assert in_sync(None, None) is None
    assert in_sync(d, None) is False


def test_an_unset_model_or_camera_leaves_the_choice_to_the_agent() -> None:
    d = merge_desired(None, TwinPatch(properties={"x": 1}))
    assert in_sync(d, _reported(d, camera="synthetic", model=MODEL_A)) is True
