"""A hook implementation may take any subset of its spec's arguments (pluggy passes each
one the arguments it names): every hook, through a real server and the real supervisor
of `blaze serve --workers 2`, with the plugin in plugin_fixtures/subset_args_plugin.py;
one plugin's failing supervisor hook does not keep the others'."""

from __future__ import annotations

import inspect
import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import pytest
from installed_plugins_support import FIXTURES, blaze, install_distribution, site_env
from plugin_fixtures import subset_args_plugin as plugin
from plugin_fixtures.subset_args_plugin import Doubler, Grid, Reading
from serving_support import wait_for_log

from blazerpc import BlazeApp, PluginError, TensorInput, TensorOutput, hookimpl, hookspecs
from blazerpc.server import ServerInfo
from blazerpc.testing import serve_app, serve_process


def _specs() -> dict[str, list[str]]:
    """Every hook spec in blazerpc.hookspecs, with its arguments."""
    pm = pluggy.PluginManager("blazerpc")
    pm.add_hookspecs(hookspecs)
    return {
        name: list(caller.spec.argnames)
        for name, caller in vars(pm.hook).items()
        if not name.startswith("_") and caller.spec is not None
    }


def test_the_plugin_implements_every_hook_with_fewer_arguments_than_its_spec() -> None:
    specs = _specs()
    assert len(specs) == len([n for n in dir(hookspecs) if n.startswith("blazerpc_")])
    pm = pluggy.PluginManager("blazerpc")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    implemented = {caller.name: caller.get_hookimpls() for caller in pm.get_hookcallers(plugin) or ()}
    assert set(implemented) == set(specs), "a hook spec the plugin does not implement"
    for name, impls in implemented.items():
        for impl in impls:
            taken = list(inspect.signature(impl.function).parameters)
            assert set(taken) <= set(specs[name])
            if specs[name]:
                assert len(taken) < len(specs[name]), f"{impl.function.__name__} takes every argument"


def _app() -> BlazeApp:
    app = BlazeApp(plugins=[plugin])

    @app.model("read")
    def read(r: Reading) -> Reading:  # blazerpc_map_type
        return Reading(r + 1)

    @app.model("grid")
    def grid(n: int) -> TensorOutput[np.float32, "n"]:  # blazerpc_array_converters
        return Grid([float(i) for i in range(n)])  # type: ignore[return-value]

    app.model("double")(Doubler())  # blazerpc_adapt_model

    @app.model("window", batching=True, batch_policy="subset-fixed", max_batch_size=4, batch_timeout_ms=1)
    def window(x: TensorInput[np.float32, "batch"]) -> TensorOutput[np.float32, "batch"]:
        return x * 2

    return app


async def test_every_server_hook_gets_only_the_arguments_it_takes() -> None:
    plugin.CALLS.clear()
    app = _app()
    async with serve_app(app, options={"subset_flag": "on"}) as server:
        port = server.port
        async with server.client() as client:
            assert await client.predict("read", r=1.5) == 2.5
            assert (await client.predict("grid", n=3)).tolist() == [0.0, 1.0, 2.0]
            assert await client.predict("double", x=4.0) == 8.0
            assert (await client.predict("window", x=np.array([1, 2], np.float32))).tolist() == [2.0, 4.0]
    called = [hook for hook, _ in plugin.CALLS]
    for hook in (
        "blazerpc_map_type",
        "blazerpc_array_converters",
        "blazerpc_adapt_model",
        "blazerpc_batching_policies",
        "blazerpc_batch_listeners",
    ):
        assert hook in called
    seen = dict(plugin.CALLS)
    assert seen["blazerpc_middleware"] == {"options": ["subset_flag"]}
    assert seen["blazerpc_startup"] == {"port": port, "options": {"subset_flag": "on"}}
    assert called[-1] == "blazerpc_shutdown", "the shutdown hook was not called, or not last"
    assert seen["blazerpc_shutdown"] == {"port": port}
    requests = [s["model"] for hook, s in plugin.CALLS if hook == "middleware.on_request"]
    assert requests == ["read", "grid", "double", "window"]
    batches = {s["model"] for hook, s in plugin.CALLS if hook == "listener.on_batch"}
    assert batches == {"read", "grid", "double", "window"}


def test_the_manifests_hook_gets_only_the_argument_it_takes() -> None:
    from blazerpc.deploy import KubernetesOptions, kubernetes_manifests

    plugin.CALLS.clear()
    manifests = kubernetes_manifests(_app(), "app.py:app", KubernetesOptions(name="readings"))
    [added] = [m for m in manifests if m.file == "subset.yaml"]
    assert added.body["data"] == {"models": "read v1,grid v1,double v1,window v1"}
    assert [seen for hook, seen in plugin.CALLS if hook == "blazerpc_kubernetes_manifests"] == [
        {"name": "readings"}
    ]


# --- installed, under `blaze serve --workers 2` -------------------------------------------


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_supervisor_and_worker_hooks_get_only_the_arguments_they_take(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_distribution(
        site, "blazerpc-subset", "1.0", "blazerpc_subset", FIXTURES / "subset_args_plugin.py", "subset"
    )
    app = tmp_path / "readings.py"
    app.write_text(
        "from blazerpc import BlazeApp\n"
        "from blazerpc_subset.plugin import Doubler, Reading\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('read')\n"
        "def read(r: Reading) -> Reading:\n"
        "    return Reading(r + 1)\n\n\n"
        "app.model('double')(Doubler())\n"
    )
    install_distribution(
        site,
        "blazerpc-raising",
        "1.0",
        "blazerpc_raising",
        FIXTURES / "raising_supervisor_plugin.py",
        "raising",
    )
    log = tmp_path / "hooks.jsonl"
    env = site_env(site, SUBSET_HOOKS_LOG=str(log))
    with serve_process(f"{app}:app", "--workers", "2", "--subset-flag", "on", env=env) as proc:
        wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Worker 2/2 serving"), timeout=120)
        with proc.client() as client:
            assert client.predict("read", r=1.5) == 2.5
            assert client.predict("double", x=4.0) == 8.0
        assert proc.stop(signal.SIGTERM) == 0
    # The raising plugin's failures are logged, each once, and stopped no other plugin.
    failures = [e["event"] for e in proc.logs if e.get("level") in ("error", "critical") or "exception" in e]
    assert sorted(failures) == [
        "Plugin raising's blazerpc_supervisor_stop hook failed",
        "Plugin raising's blazerpc_worker_exit hook failed",
        "Plugin raising's blazerpc_worker_exit hook failed",
    ]
    records = _records(log)
    parent = proc.process.pid
    workers = {r["process"] for r in records if r["hook"] == "blazerpc_startup"}
    assert len(workers) == 2
    assert parent not in workers
    # The parent: start before any worker, one exit per worker (each implementation with
    # its one argument), stop last.
    in_parent = [r for r in records if r["process"] == parent]
    hooks = [r["hook"] for r in in_parent if r["hook"] not in ("blazerpc_cli", "blazerpc_serve_options")]
    assert hooks[0] == "blazerpc_supervisor_start"
    assert hooks[-1] == "blazerpc_supervisor_stop"
    assert sorted(hooks[1:-1]) == ["blazerpc_worker_exit(pid)"] * 2 + ["blazerpc_worker_exit(returncode)"] * 2
    assert {r["pid"] for r in in_parent if r["hook"] == "blazerpc_worker_exit(pid)"} == workers
    assert [r["returncode"] for r in in_parent if r["hook"] == "blazerpc_worker_exit(returncode)"] == [0, 0]
    assert {"blazerpc_cli", "blazerpc_serve_options"} <= {r["hook"] for r in in_parent}
    # Each worker: the command line, start-up with the plugin's option, shutdown.
    for worker in workers:
        mine = {r["hook"]: r for r in records if r["process"] == worker}
        assert {"blazerpc_cli", "blazerpc_serve_options", "blazerpc_map_type", "blazerpc_adapt_model"} <= set(
            mine
        )
        assert mine["blazerpc_startup"]["options"] == {"subset_flag": "on", "access_log": True}
        assert mine["blazerpc_shutdown"]["port"] == mine["blazerpc_startup"]["port"] == proc.port


class _WrappingShutdown:
    @hookimpl(wrapper=True)
    def blazerpc_shutdown(self, server: ServerInfo) -> Any:
        return (yield)


def test_a_wrapper_of_a_hook_core_calls_one_plugin_at_a_time_is_refused() -> None:
    with pytest.raises(
        PluginError, match=r"blazerpc_shutdown cannot be a wrapper .*each plugin's implementation"
    ):
        BlazeApp(plugins=[_WrappingShutdown()])


def test_a_supervisor_start_hook_that_raises_aborts_and_only_started_plugins_stop(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name, fixture in (("subset", "subset_args_plugin.py"), ("failing", "failing_start_plugin.py")):
        install_distribution(site, f"blazerpc-{name}", "1.0", f"blazerpc_{name}", FIXTURES / fixture, name)
    app = tmp_path / "empty.py"
    app.write_text("from blazerpc import BlazeApp\n\napp = BlazeApp()\n")
    log = tmp_path / "hooks.jsonl"
    env = site_env(site, SUBSET_HOOKS_LOG=str(log))
    result = blaze("serve", f"{app}:app", "--workers", "2", "--port", "0", "--log-format", "json", env=env)
    assert result.returncode == 1
    errors = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
    assert "no shared directory for the workers" in errors
    hooks = [r["hook"] for r in _records(log) if r["hook"] not in ("blazerpc_cli", "blazerpc_serve_options")]
    assert hooks == ["blazerpc_supervisor_start", "blazerpc_supervisor_stop"]
