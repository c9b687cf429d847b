"""How BlazeRPC's own distributions are installed, for the messages that say so.

They install from a clone of the repository, by path (see Installation in the README):
none of them is on PyPI, where the name ``blazerpc`` belongs to an unrelated project.
"""

from __future__ import annotations

__all__ = ["plugin_install"]


def plugin_install(distribution: str, *options: str) -> str:
    """``pip install ./plugins/blazerpc-torch (from the root of the BlazeRPC repository;
    see Installation in its README)``: the command that installs one of BlazeRPC's
    plugins where the core is installed (pip keeps the installed ``blazerpc``)."""
    command = " ".join(["pip install", *options, f"./plugins/{distribution}"])
    return f"{command} (from the root of the BlazeRPC repository; see Installation in its README)"
