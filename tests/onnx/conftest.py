"""tests/onnx runs in its own environment: core, blazerpc-onnx, onnxruntime, and onnx to build
graphs with onnx.helper (no torch, no other framework)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for plugin_support
