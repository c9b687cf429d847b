"""TensorFlow plugin tests: TensorFlow is imported once for the whole run, quietly."""

from __future__ import annotations

import os

# Before the first import of TensorFlow (here, for every test module and subprocess).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow  # noqa: F401  (imported once, here: it takes seconds)


@pytest.fixture(autouse=True)
def _no_plugin_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees the installed plugins, whatever the calling environment selects."""
    monkeypatch.delenv("BLAZERPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("BLAZERPC_PLUGINS", raising=False)
