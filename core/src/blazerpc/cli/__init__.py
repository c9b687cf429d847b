"""The ``blaze`` command line."""

from ._options import ServeOption
from .main import cli, main

__all__ = ["ServeOption", "cli", "main"]
