"""An installed plugin whose supervisor start hook aborts start-up, called after every
other plugin's: those that started get their stop hook, this one does not."""

from __future__ import annotations

import json
import os

from blazerpc import ConfigurationError, hookimpl


@hookimpl(trylast=True)
def blazerpc_supervisor_start() -> None:
    raise ConfigurationError("no shared directory for the workers")


@hookimpl
def blazerpc_supervisor_stop() -> None:  # never called: its start hook raised
    with open(os.environ["SUBSET_HOOKS_LOG"], "a") as out:
        out.write(json.dumps({"hook": "failing: blazerpc_supervisor_stop", "process": os.getpid()}) + "\n")
