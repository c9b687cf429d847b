"""`blaze serve --reload`: a source change restarts the server."""

from __future__ import annotations

from pathlib import Path

from grpclib.client import Channel, UnaryUnaryMethod
from serving_support import wait_for_log

from blazerpc.testing import serve_process

RELOAD_APP = """
from blazerpc import BlazeApp

app = BlazeApp()


@app.model("version")
def version(x: int) -> str:
    return "{tag}"
"""


async def test_reload_restarts_on_a_source_change(tmp_path: Path) -> None:
    source = tmp_path / "reloading.py"
    source.write_text(RELOAD_APP.format(tag="first"))
    with serve_process(f"{source}:app", "--reload", "--grace-period", "1") as proc:
        wait_for_log(proc, lambda e: e.get("event") == "Worker 1/1 serving")

        async def call() -> str:
            channel = Channel(proc.host, proc.port)
            try:
                from blazerpc import BlazeApp

                app = BlazeApp()

                @app.model("version")
                def version(x: int) -> str:
                    return ""

                schema = app.schema()
                method = schema.methods[0]
                stub = UnaryUnaryMethod(
                    channel, method.path, schema.classes[method.request], schema.classes[method.response]
                )
                return (await stub(schema.classes[method.request](x=1), timeout=5)).result
            finally:
                channel.close()

        assert await call() == "first"
        source.write_text(RELOAD_APP.format(tag="second"))
        wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Source changed (reloading.py)"))
        serving = [e for e in proc.logs if e.get("event") == "Worker 1/1 serving"]
        wait_for_log(proc, lambda e: e.get("event") == "Worker 1/1 serving" and e not in serving)
        assert await call() == "second"
