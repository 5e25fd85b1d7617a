"""The training package's error tree: one base class so the CLI maps every training failure to one exit code."""

from __future__ import annotations


class TrainingError(Exception):
    """Base of every error raised on purpose by ``training``."""


class DataError(TrainingError):
    """The data cannot be used: an unknown spec, an empty folder, a malformed CSV, too few classes."""


class ConfigError(TrainingError):
    """A training, split or tuning setting is out of range or inconsistent with the data."""
