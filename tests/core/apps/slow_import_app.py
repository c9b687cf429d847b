"""An app that is slow to import, like one that loads a large model at import time.

Each import records its process id as a file in the directory ``BLAZERPC_TEST_PIDS``
names. ``BLAZERPC_TEST_SLOW=all``: every import then takes 60 s; ``after_first``: the
first process to import it loads at once, every later one takes 60 s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from blazerpc import BlazeApp

_pids = Path(os.environ["BLAZERPC_TEST_PIDS"])
(_pids / str(os.getpid())).touch()
try:
    os.close(os.open(_pids.parent / f"{_pids.name}.first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    first = True
except FileExistsError:
    first = False
if os.environ["BLAZERPC_TEST_SLOW"] == "all" or not first:
    time.sleep(60)

app = BlazeApp()


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()
