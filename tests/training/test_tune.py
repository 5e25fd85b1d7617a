from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from training.errors import ConfigError
from training.train import TrainConfig
from training.tune import apply_params, tune


def test_two_trials_against_sqlite_are_logged_and_written(tiny_cfg, tiny_split, tiny_spec, tmp_path: Path) -> None:  # noqa: ANN001
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = tune(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, 2, storage=storage, study_name="s",
                  seed=0, epochs_cap=2, progress=True)
    assert [t["number"] for t in result.trials] == [0, 1]
    assert all(t["state"] == "COMPLETE" and set(t["params"]) >= {"lr", "batch_size", "optimizer", "epochs"}
               for t in result.trials)
    assert result.best_value == max(t["value"] for t in result.trials)
    assert 1 <= result.best_params["epochs"] <= 2
    files = result.write(tmp_path / "out")
    assert len(json.loads(files["json"].read_text())["trials"]) == 2
    assert len(files["csv"].read_text().strip().splitlines()) == 3
    best = result.best_config(tiny_cfg)
    assert best.lr == result.best_params["lr"] and best.arch == tiny_cfg.arch


@pytest.mark.postgres
def test_a_study_in_postgresql_is_shared_between_tune_calls(tiny_cfg, tiny_split, tiny_spec, postgres_url: str) -> None:  # noqa: ANN001
    name = f"shared-{uuid.uuid4().hex[:8]}"
    first = tune(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, 1, storage=postgres_url, study_name=name,
                 seed=0, epochs_cap=1, progress=False)
    second = tune(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, 1, storage=postgres_url, study_name=name,
                  seed=0, epochs_cap=1, progress=False)
    assert len(first.trials) == 1
    assert [t["number"] for t in second.trials] == [0, 1]
    assert second.trials[0]["params"] == first.trials[0]["params"]
    assert second.trials[0]["params"] != second.trials[1]["params"]  # the joining call does not replay trial 0


def test_label_smoothing_parameter_switches_the_loss() -> None:
    assert apply_params(TrainConfig(), {"label_smoothing": 0.1}).loss == "label_smoothing"
    assert apply_params(TrainConfig(), {"label_smoothing": 0.0}).loss == "cross_entropy"


def test_bad_trial_count_is_rejected(tiny_cfg, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError):
        tune(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, 0)
