from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from training.errors import ConfigError, DataError
from training.preprocess import input_spec_for
from training.train import TrainConfig, evaluate, fit


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [v.detach().numpy().copy() for v in model.state_dict().values()]


def test_same_seed_same_weights_and_history(tiny_cfg: TrainConfig, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    a = fit(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    b = fit(tiny_cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert all(np.array_equal(x, y) for x, y in zip(_weights(a.model), _weights(b.model)))
    c = fit(tiny_cfg.model_copy(update={"seed": 1}), tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    assert not all(np.array_equal(x, y) for x, y in zip(_weights(a.model), _weights(c.model)))


def test_history_has_one_row_per_epoch_and_best_weights_are_restored(tiny_cfg, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    cfg = tiny_cfg.model_copy(update={"epochs": 4, "patience": 10, "optimizer": "sgd", "lr": 0.05,
                                      "loss": "label_smoothing", "monitor": "val_loss"})
    result = fit(cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert set(result.history[0]) >= {"train_loss", "val_loss", "val_acc"}
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.best_epoch == best["epoch"]
    val_loss, val_acc = evaluate(result.model, tiny_split.val, tiny_spec)
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-5) and val_acc == pytest.approx(best["val_acc"])
    assert not result.model.training


def test_early_stopping_ends_training_after_patience(tiny_cfg, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    # a learning rate this small cannot improve validation accuracy for long
    cfg = tiny_cfg.model_copy(update={"epochs": 30, "patience": 2, "monitor": "val_acc", "lr": 1e-9,
                                      "scheduler": "none", "augment": False})
    result = fit(cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    accs = [h["val_acc"] for h in result.history]
    last_gain = max(i for i, a in enumerate(accs, 1) if a > max(accs[:i - 1], default=-1))
    assert result.stopped_early and len(result.history) == last_gain + 2 < 30


def test_with_val_acc_the_latest_of_equally_accurate_epochs_is_kept(tiny_cfg, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    cfg = tiny_cfg.model_copy(update={"epochs": 6, "monitor": "val_acc"})
    result = fit(cfg, tiny_split.train, tiny_split.val, tiny_spec, progress=False)
    accs = [h["val_acc"] for h in result.history]
    assert result.best_epoch == max(i for i, a in enumerate(accs, 1) if a == max(accs))
    assert evaluate(result.model, tiny_split.val, tiny_spec)[1] == pytest.approx(max(accs))


def test_config_rejects_unknown_and_out_of_range_settings() -> None:
    with pytest.raises(ValidationError):
        TrainConfig(learning_rate=0.1)
    with pytest.raises(ValidationError):
        TrainConfig(optimizer="lion")
    with pytest.raises(ValidationError):
        TrainConfig(epochs=0)


def test_mismatched_spec_or_empty_data_is_a_clear_error(tiny_cfg, tiny_split, tiny_spec) -> None:  # noqa: ANN001
    from training.data import load_dataset

    rgb, _ = load_dataset("synthetic:20")
    with pytest.raises(ConfigError, match="channels"):
        fit(tiny_cfg, tiny_split.train, tiny_split.val, input_spec_for(rgb), progress=False)
    with pytest.raises(DataError):
        fit(tiny_cfg, tiny_split.train.subset([]), tiny_split.val, tiny_spec, progress=False)
