"""A manifest: one Kubernetes object, why it is there, and how it is written out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Manifest", "render_yaml"]


@dataclass(frozen=True)
class Manifest:
    """One object to apply, with ``about`` written above it as YAML comments.

    ``file`` is its file name under ``blaze deploy kubernetes --output-dir``.
    """

    file: str
    body: Mapping[str, Any]
    about: str = ""

    def __post_init__(self) -> None:
        if not self.file.endswith((".yaml", ".yml")) or "/" in self.file:
            raise ValueError(f"manifest file name {self.file!r} must be a bare name ending in .yaml")
        for key in ("apiVersion", "kind", "metadata"):
            if key not in self.body:
                raise ValueError(f"manifest {self.file} has no {key!r}")

    def yaml(self) -> str:
        """The object as one YAML document, ``about`` above it as comments."""
        import yaml  # only the deploy commands need it

        comments = "".join(f"# {line}".rstrip() + "\n" for line in self.about.strip().splitlines())
        # Keys keep the order they were built in (apiVersion, kind, metadata, spec), and
        # long strings (a PromQL query) stay on one line.
        text: str = yaml.safe_dump(dict(self.body), sort_keys=False, width=2**16, allow_unicode=True)
        return comments + text


def render_yaml(manifests: Iterable[Manifest]) -> str:
    """Every manifest as one multi-document YAML stream (what ``kubectl apply -f -`` reads)."""
    return "---\n".join(manifest.yaml() for manifest in manifests)
