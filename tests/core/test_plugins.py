"""Plugins: hooks registered on an app or for a test, and installed plugins found through
real entry points of a fake distribution on PYTHONPATH of a `blaze` subprocess."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import QUICKSTART, AppCaller, load_app_module

import blazerpc
from blazerpc import BlazeApp, ModelRegistrationError, TensorInput, TensorOutput, TypeMappingError, hookimpl
from blazerpc.plugins import new_plugin_manager, register
from blazerpc.server import ServerInfo
from blazerpc.testing import blaze_command, serve_app, serve_process
from blazerpc.wire import ArrayConverter, FieldContext, WireType, scalar_wire_type

FIXTURES = Path(__file__).resolve().parent / "plugin_fixtures"
# Core's own plugins: the entry points its pyproject.toml declares (scalars, numpy, logging...).
BUILTINS = {ep.name for ep in metadata.distribution("blazerpc").entry_points if ep.group == "blazerpc"}
FAKE_HOOKS = ["blazerpc_cli", "blazerpc_map_type", "blazerpc_serve_options", "blazerpc_startup"]


@pytest.fixture(autouse=True)
def _no_plugin_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses inherit this environment: start from no plugin selection."""
    monkeypatch.delenv("BLAZERPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("BLAZERPC_PLUGINS", raising=False)


# --- a type plugin -----------------------------------------------------------------------


class Celsius:
    """A temperature a model works with; no built-in maps it."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusPlugin:
    """Maps `Celsius` to a double field; records what its hook and converters see."""

    def __init__(self) -> None:
        self.map_calls = 0
        self.decoded: list[float] = []
        self.encoded: list[float] = []

    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not Celsius:
            return None
        self.map_calls += 1

        def decode(value: float) -> Celsius:
            self.decoded.append(value)
            return Celsius(value)

        def encode(value: Celsius) -> float:
            self.encoded.append(value.degrees)
            return value.degrees

        return scalar_wire_type(FieldDescriptorProto.TYPE_DOUBLE, "Celsius", decode=decode, encode=encode)


def thermo_app(**kwargs: Any) -> tuple[BlazeApp, list[type]]:
    """An app with model "warm" (Celsius in, Celsius out); also returns what the model received."""
    app = BlazeApp(**kwargs)
    received: list[type] = []

    @app.model("warm")
    def warm(t: Celsius, by: float) -> Celsius:
        received.append(type(t))
        return Celsius(t.degrees + by)

    return app, received


def field_type(server: Any, message: str, field: str) -> int:
    return server.schema.pool.FindMessageTypeByName(f"blazerpc.{message}").fields_by_name[field].type


@pytest.mark.parametrize("how", ["app", "fixture"])
async def test_plugin_maps_a_custom_type(how: str, request: pytest.FixtureRequest) -> None:
    plugin = CelsiusPlugin()
    if how == "app":
        app, received = thermo_app(plugins=[plugin])
    else:
        request.getfixturevalue("blazerpc_register_plugin")(plugin)
        app, received = thermo_app()

    async with serve_app(app) as server:
        types = [field_type(server, "WarmRequest", "t"), field_type(server, "WarmResponse", "result")]
        calls_at_start = plugin.map_calls
        replies = [(await server.call("warm", t=t, by=1.25)).result for t in (20.5, -3.0, 0.0)]
        replies, types, calls_at_start, calls_after = replies, types, calls_at_start, plugin.map_calls
    assert replies == [21.75, -1.75, 1.25]
    assert plugin.decoded == [20.5, -3.0, 0.0]
    assert plugin.encoded == [21.75, -1.75, 1.25]
    assert received == [Celsius, Celsius, Celsius]
    assert types == [FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE]
    assert "double t = 1;" in app.proto()
    # Hooks run at registration and start-up, never per request.
    assert calls_at_start > 0
    assert calls_after == calls_at_start


def test_app_plugin_is_not_seen_by_another_app() -> None:
    thermo_app(plugins=[CelsiusPlugin()])
    with pytest.raises(TypeMappingError, match="Celsius"):
        thermo_app()
    assert not any(isinstance(p, CelsiusPlugin) for p in new_plugin_manager().get_plugins())


def test_register_fixture_unregisters_after_the_test(tmp_path: Path) -> None:
    # Two tests in a pytest session of their own: the first registers a plugin with the
    # fixture, the second (run after its teardown) must not see it.
    shutil.copy(FIXTURES / "fixture_scope.py", tmp_path / "test_fixture_scope.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


class Fahrenheit(float):
    """A type only FahrenheitPlugin maps."""


class FahrenheitPlugin:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not Fahrenheit:
            return None
        return scalar_wire_type(
            FieldDescriptorProto.TYPE_FLOAT, "Fahrenheit", decode=Fahrenheit, encode=float
        )


def test_plugin_manager_fixture_lets_an_author_call_hooks_directly(
    blazerpc_plugin_manager: pluggy.PluginManager,
) -> None:
    """What `blazerpc_plugin_manager` gives a plugin author: the real hook specs, the
    installed plugins and core's built-ins, in a manager of the test's own, so a hook
    implementation can be called through pluggy exactly as core calls it."""
    pm = blazerpc_plugin_manager
    assert {name for name, _ in pm.list_name_plugin()} >= BUILTINS

    def map_type(annotation: Any) -> WireType | None:
        context = FieldContext("m", "t", "input", resolve=map_type, to_array=np.asarray)
        wire: WireType | None = pm.hook.blazerpc_map_type(annotation=annotation, context=context)
        return wire

    # The built-ins answer; nothing maps the author's type yet.
    assert getattr(map_type(int), "proto_type", None) == FieldDescriptor.TYPE_INT64
    assert map_type(Fahrenheit) is None

    plugin = FahrenheitPlugin()
    pm.register(plugin)
    wire = map_type(Fahrenheit)
    assert wire is not None
    assert (wire.proto_type, wire.describe) == (FieldDescriptor.TYPE_FLOAT, "Fahrenheit")
    assert wire.decode is not None
    assert type(wire.decode(98.6)) is Fahrenheit
    # A built-in that delegates (list[T]) resolves the item through the author's plugin.
    listed = map_type(list[Fahrenheit])
    assert listed is not None
    assert (listed.repeated, listed.describe) == (True, "list[Fahrenheit]")
    # The specs check the author's hooks as they are registered.
    with pytest.raises(pluggy.PluginValidationError, match="ctx"):
        pm.register(WrongArgument())

    # The manager is the test's own: apps (and other managers) do not see the plugin.
    assert not new_plugin_manager().is_registered(plugin)
    with pytest.raises(TypeMappingError, match="Fahrenheit"):
        BlazeApp().model("m")(model_with_fahrenheit)


def model_with_fahrenheit(t: Fahrenheit) -> float:
    return float(t)


class StrAsBytes:
    """Overrides a built-in mapping: `str` travels as UTF-8 `bytes`."""

    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not str:
            return None
        return scalar_wire_type(
            FieldDescriptorProto.TYPE_BYTES,
            "str as UTF-8",
            decode=lambda raw: raw.decode("utf-8"),
            encode=lambda text: text.encode("utf-8"),
        )


def shout_app(**kwargs: Any) -> BlazeApp:
    app = BlazeApp(**kwargs)

    @app.model("shout")
    def shout(text: str) -> list[str]:
        assert isinstance(text, str)
        return [text.upper(), text]

    return app


async def test_plugin_overrides_a_builtin_mapping() -> None:
    app = shout_app(plugins=[StrAsBytes()])

    async with serve_app(app) as server:
        reply = await server.call("shout", text="héllo".encode())
        result, request_type, response_type = (
            list(reply.result),
            field_type(server, "ShoutRequest", "text"),
            field_type(server, "ShoutResponse", "result"),
        )
    assert result == ["HÉLLO".encode(), "héllo".encode()]
    assert request_type == FieldDescriptor.TYPE_BYTES
    # list[str] maps its items through the plugins too (context.resolve).
    assert response_type == FieldDescriptor.TYPE_BYTES
    # Without the plugin, the built-in mapping is back.
    plain = shout_app().schema().pool.FindMessageTypeByName("blazerpc.ShoutRequest")
    assert plain.fields_by_name["text"].type == FieldDescriptor.TYPE_STRING


# --- array converters ----------------------------------------------------------------------


class FakeTensor:
    """A framework's array type: no __array__, numpy cannot convert it on its own."""

    def __init__(self, values: list[float]) -> None:
        self.values = values


class SubFakeTensor(FakeTensor):
    pass


class OtherFakeTensor(FakeTensor):
    pass


class FakeTensorPlugin:
    def __init__(self) -> None:
        self.converted: list[str] = []

    def _convert(self, value: FakeTensor) -> np.ndarray:
        self.converted.append(f"generic:{type(value).__name__}")
        return np.asarray(value.values, dtype=np.float64)

    def _convert_other(self, value: FakeTensor) -> np.ndarray:
        self.converted.append(f"exact:{type(value).__name__}")
        return np.asarray(value.values, dtype=np.float64) * 10

    @hookimpl
    def blazerpc_array_converters(self) -> list[ArrayConverter]:
        # The base class first: an exact type must still win over it.
        return [
            ArrayConverter(FakeTensor, self._convert),
            ArrayConverter(OtherFakeTensor, self._convert_other),
        ]


def doubling_app(result_type: type[FakeTensor], batched: bool, **kwargs: Any) -> BlazeApp:
    """Model "double": a float32 vector in, the same doubled as `result_type` out. With
    `batched`, its first dimension is the "batch" axis (so core batches it)."""
    app = BlazeApp(**kwargs)
    dims: tuple[int | str, ...] = ("batch",) if batched else (3,)

    def double(x: Any) -> Any:
        return result_type((np.asarray(x) * 2).tolist())

    double.__annotations__ = {
        "x": TensorInput[(np.float32, *dims)],
        "return": TensorOutput[(np.float32, *dims)],
    }
    app.model("double")(double)
    return app


async def call_double(app: BlazeApp) -> tuple[list[int], str, list[float]]:
    async with serve_app(app) as server:
        tensor = server.schema.classes["TensorProto"](
            shape=[3], dtype="float32", data=np.array([1, 2, 3], dtype="<f4").tobytes()
        )
        out = (await server.call("double", x=tensor)).result
        got = list(out.shape), out.dtype, np.frombuffer(out.data, dtype=out.dtype).tolist()
    return got


@pytest.mark.parametrize("batched", [False, True], ids=["fixed-shape", "batch-axis"])
@pytest.mark.parametrize(
    ("result_type", "expected", "converted"),
    [
        (FakeTensor, [2.0, 4.0, 6.0], ["generic:FakeTensor"]),
        (SubFakeTensor, [2.0, 4.0, 6.0], ["generic:SubFakeTensor"]),
        (OtherFakeTensor, [20.0, 40.0, 60.0], ["exact:OtherFakeTensor"]),
    ],
)
async def test_plugin_array_converter_serializes_a_returned_tensor(
    result_type: type[FakeTensor], expected: list[float], converted: list[str], batched: bool
) -> None:
    plugin = FakeTensorPlugin()
    shape, dtype, values = await call_double(doubling_app(result_type, batched, plugins=[plugin]))
    assert (shape, dtype, values) == ([3], "float32", expected)
    assert plugin.converted == converted


async def test_without_the_converter_a_foreign_tensor_is_an_internal_error() -> None:
    with pytest.raises(GRPCError) as info:
        await call_double(doubling_app(FakeTensor, batched=False))
    assert info.value.status is Status.INTERNAL
    assert "FakeTensor" in (info.value.message or "")


# --- model adapters ------------------------------------------------------------------------


class Linear:
    """A 'framework model': weights and no annotations, not even callable."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights


class LinearAdapter:
    def __init__(self) -> None:
        self.adapted: list[str] = []

    @hookimpl
    def blazerpc_adapt_model(self, obj: Any, name: str) -> Any:
        if not isinstance(obj, Linear):
            return None
        self.adapted.append(name)
        weights = list(obj.weights)
        signature = inspect.Signature(
            [
                inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[float]),
                inspect.Parameter("bias", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=float),
            ],
            return_annotation=float,
        )

        def predict(*args: Any, **kwargs: Any) -> float:
            bound = signature.bind(*args, **kwargs)
            x, bias = bound.arguments["x"], bound.arguments["bias"]
            return sum(w * v for w, v in zip(weights, x, strict=True)) + bias

        predict.__signature__ = signature  # type: ignore[attr-defined]
        return predict


async def test_plugin_adapts_a_framework_object_into_a_model() -> None:
    adapter = LinearAdapter()
    app = BlazeApp(plugins=[adapter])
    obj = Linear([1.0, 2.0, 3.0])
    assert app.model("linear")(obj) is obj
    assert adapter.adapted == ["linear"]

    @app.model("plain")  # an ordinary function is left to core
    def plain(x: int) -> int:
        return x + 1

    async with serve_app(app) as server:
        request = server.schema.pool.FindMessageTypeByName("blazerpc.LinearRequest")
        types = [request.fields_by_name["x"].type, request.fields_by_name["bias"].type]
        linear = (await server.call("linear", x=[1.0, 1.0, 2.0], bias=0.5)).result
        linear, plain_result, types = linear, (await server.call("plain", x=41)).result, types
    assert linear == 9.5
    assert plain_result == 42
    assert types == [FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE]
    assert adapter.adapted == ["linear"]


def test_without_an_adapter_a_framework_object_is_rejected() -> None:
    with pytest.raises(ModelRegistrationError, match="linear"):
        BlazeApp().model("linear")(Linear([1.0]))


# --- lifecycle -----------------------------------------------------------------------------


class Lifecycle:
    def __init__(self, label: str, calls: list[tuple[str, str, Any, ServerInfo]]) -> None:
        self.label = label
        self.calls = calls

    @hookimpl
    def blazerpc_startup(self, app: BlazeApp, server: ServerInfo) -> None:
        # The server already listens when start-up hooks run.
        with socket.create_connection((server.host, server.port), timeout=5):
            pass
        self.calls.append(("startup", self.label, app, server))

    @hookimpl
    def blazerpc_shutdown(self, app: BlazeApp, server: ServerInfo) -> None:
        self.calls.append(("shutdown", self.label, app, server))


def two_model_app(*plugins: object) -> BlazeApp:
    app = BlazeApp(plugins=plugins)

    @app.model("alpha")
    def alpha(x: int) -> int:
        return x

    @app.model("beta", version="2", streaming=True)
    def beta(x: int) -> Iterator[int]:
        yield x

    return app


async def test_startup_and_shutdown_get_the_server_info() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    app = two_model_app(Lifecycle("a", calls))

    async with serve_app(app, options={"threshold": 0.5}) as server:
        during = list(calls)
        assert (await server.call("alpha", x=7)).result == 7
        port, during = server.port, during
    assert [(c[0], c[1]) for c in during] == [("startup", "a")]
    assert [(c[0], c[1]) for c in calls] == [("startup", "a"), ("shutdown", "a")]
    (_, _, started_app, info), (_, _, stopped_app, stopped_info) = calls
    assert started_app is app
    assert stopped_app is app
    assert port != 0
    assert info.port == port
    assert info.host == "127.0.0.1"
    assert info.address == f"127.0.0.1:{port}"
    assert [(m.model, m.version, m.rpc, m.streaming) for m in info.methods] == [
        ("alpha", "1", "PredictAlpha", False),
        ("beta", "2", "PredictBetaV2", True),
    ]
    assert dict(info.options) == {"threshold": 0.5}
    assert info.tls is False
    assert stopped_info == info


async def test_startup_hooks_run_latest_registered_first_and_shutdown_in_reverse() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    app = two_model_app(Lifecycle("first", calls), Lifecycle("second", calls))

    async with serve_app(app):
        pass
    # pluggy's order, as the hook specs document: the most recently registered first.
    assert [c[1] for c in calls if c[0] == "startup"] == ["second", "first"]
    assert [c[1] for c in calls if c[0] == "shutdown"] == ["first", "second"]


class FailingShutdown:
    @hookimpl
    def blazerpc_shutdown(self, app: BlazeApp, server: ServerInfo) -> None:
        raise RuntimeError("cannot release the GPU")


async def test_every_shutdown_hook_runs_even_if_one_raises() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    # The failing plugin sits between two others: one of them runs after it, whatever the order.
    app = two_model_app(Lifecycle("before", calls), FailingShutdown(), Lifecycle("after", calls))

    async with serve_app(app):
        pass
    assert sorted(c[1] for c in calls if c[0] == "shutdown") == ["after", "before"]


class FailingStartup:
    def __init__(self) -> None:
        self.port: int | None = None

    @hookimpl
    def blazerpc_startup(self, app: BlazeApp, server: ServerInfo) -> None:
        self.port = server.port
        raise RuntimeError("no GPU available")


async def test_a_failing_startup_hook_aborts_startup() -> None:
    failing = FailingStartup()
    app = two_model_app(failing)
    entered = []

    async def run() -> None:
        async with serve_app(app):
            entered.append(True)

    with pytest.raises(RuntimeError, match="no GPU available"):
        await run()
    assert entered == []
    assert failing.port
    # The listener was closed: the port can be bound (and listened on) again.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", failing.port))
        sock.listen()


# --- installed plugins: entry points of a fake distribution ---------------------------------


def install_distribution(
    site: Path, name: str, version: str, package: str, module_source: Path, entry_point: str
) -> None:
    """Lay out `name` as pip would: `<package>/plugin.py` and `<name>-<version>.dist-info/`."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    shutil.copy(module_source, site / package / "plugin.py")
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(f"[blazerpc]\n{entry_point} = {package}.plugin\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory with blazerpc-fake 0.1 (works) and blazerpc-broken 0.2 (import fails)."""
    path = tmp_path_factory.mktemp("site")
    install_distribution(path, "blazerpc-fake", "0.1", "blazerpc_fake", FIXTURES / "fake_plugin.py", "fake")
    install_distribution(
        path, "blazerpc-broken", "0.2", "blazerpc_broken", FIXTURES / "broken_plugin.py", "broken"
    )
    return path


def site_env(site: Path, **extra: str) -> dict[str, str]:
    """Variables (on top of this process's) for a subprocess that has `site` installed."""
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200", **extra}


def blaze(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def plugins_json(site: Path, *args: str, **extra: str) -> dict[str, dict[str, Any]]:
    result = blaze("plugins", "list", "--json", *args, env=site_env(site, **extra))
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)), names
    return {r["name"]: r for r in records}


def test_plugins_list_shows_installed_and_failed_plugins(site: Path) -> None:
    records = plugins_json(site)
    assert set(records) == {"fake", "broken"}
    assert records["fake"] == {
        "name": "fake",
        "distribution": "blazerpc-fake",
        "version": "0.1",
        "builtin": False,
        "hooks": FAKE_HOOKS,
        "error": None,
        "loaded": True,
    }
    broken = records["broken"]
    assert broken["loaded"] is False
    assert broken["builtin"] is False
    assert (broken["distribution"], broken["version"]) == ("blazerpc-broken", "0.2")
    assert broken["error"] == "ImportError: needs libfoo"


def test_plugins_list_all_adds_the_builtins(site: Path) -> None:
    records = plugins_json(site, "--all")
    assert {"scalars", "numpy", "logging"} <= BUILTINS
    assert set(records) == {"fake", "broken", *BUILTINS}
    for name in BUILTINS:
        assert records[name]["distribution"] == "blazerpc"
        assert records[name]["version"] == blazerpc.__version__
        assert records[name]["builtin"] is True
        assert records[name]["loaded"] is True
    assert records["scalars"]["hooks"] == ["blazerpc_map_type"]
    assert records["numpy"]["hooks"] == ["blazerpc_array_converters", "blazerpc_map_type"]
    assert records["logging"]["hooks"] == ["blazerpc_shutdown", "blazerpc_startup"]
    assert records["fake"]["loaded"] is True
    assert records["broken"]["loaded"] is False


def test_plugins_list_table_shows_failures(site: Path) -> None:
    result = blaze("plugins", "list", env=site_env(site))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "STATUS", "HOOKS"]
    fake = next(line for line in lines if line.startswith("fake "))
    broken = next(line for line in lines if line.startswith("broken "))
    assert "blazerpc-fake 0.1" in fake
    assert "loaded" in fake
    assert "blazerpc_serve_options" in fake
    assert "blazerpc-broken 0.2" in broken
    assert "FAILED" in broken
    assert "ImportError: needs libfoo" in broken
    assert not any(line.startswith(("scalars ", "numpy ", "logging ")) for line in lines)


def test_disable_autoload_keeps_only_builtins(site: Path) -> None:
    records = plugins_json(site, "--all", BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1")
    assert set(records) == BUILTINS
    result = blaze("plugins", "list", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert result.returncode == 0, result.stderr
    assert "No plugins installed" in result.stdout


@pytest.mark.parametrize(
    ("selection", "expected"),
    [("fake", {"fake"}), ("broken", {"broken"}), (" broken , fake ", {"fake", "broken"}), ("nope", set())],
)
def test_blazerpc_plugins_narrows_the_third_party_plugins(
    site: Path, selection: str, expected: set[str]
) -> None:
    records = plugins_json(site, "--all", BLAZERPC_PLUGINS=selection)
    assert set(records) == expected | BUILTINS


def thermo_source(tmp_path: Path) -> Path:
    path = tmp_path / "thermo.py"
    path.write_text(
        "from blazerpc import BlazeApp\n"
        "from blazerpc_fake.plugin import Kelvin\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('thermo')\n"
        "def thermo(t: Kelvin) -> Kelvin:\n"
        "    return t\n"
    )
    return path


def test_installed_plugin_maps_types_without_registration(site: Path, tmp_path: Path) -> None:
    app = thermo_source(tmp_path)
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(site))
    assert result.returncode == 0, result.stderr
    proto = (tmp_path / "out" / "blaze_service.proto").read_text()
    assert "double t = 1;" in proto
    assert "double result = 1;" in proto

    disabled = blaze(
        "proto",
        f"{app}:app",
        "--output-dir",
        str(tmp_path / "out2"),
        env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"),
    )
    assert disabled.returncode == 1
    assert "Kelvin" in disabled.stderr
    assert "'thermo'" in disabled.stderr


def test_failed_framework_plugin_is_named_in_the_type_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_distribution(
        site, "blazerpc-torch", "9.9", "blazerpc_torch_stub", FIXTURES / "broken_torch_plugin.py", "torch"
    )
    app = tmp_path / "torch_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n\n"
        "class Tensor:\n"
        "    __module__ = 'torch'\n\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('embed')\n"
        "def embed(x: Tensor) -> float:\n"
        "    return 0.0\n"
    )
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(site))
    assert result.returncode == 1
    assert "torch.Tensor" in result.stderr
    assert "blazerpc-torch is installed but failed to load" in result.stderr
    assert "libtorch_cpu.so: cannot open shared object file" in result.stderr


# --- installed plugins extend the command line ----------------------------------------------


def test_plugin_adds_a_command(site: Path) -> None:
    result = blaze("hello", "--name", "tests", env=site_env(site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello, tests, from blazerpc-fake"
    assert "hello" in blaze("--help", env=site_env(site)).stdout


def test_command_of_a_disabled_plugin_does_not_exist(site: Path) -> None:
    result = blaze("hello", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert result.returncode == 2
    assert "hello" in result.stderr


def test_serve_help_lists_plugin_options(site: Path) -> None:
    result = blaze("serve", "--help", env=site_env(site))
    assert result.returncode == 0, result.stderr
    assert "--greeting" in result.stdout
    assert "What blazerpc-fake says at start-up." in result.stdout
    assert "--repeat-count" in result.stdout
    without = blaze("serve", "--help", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert without.returncode == 0, without.stderr
    assert "--greeting" not in without.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--greeting", "hi", "--repeat-count", "3"), {"greeting": "hi", "repeat_count": 3}),
        ((), {"greeting": "none", "repeat_count": 1}),
    ],
)
def test_serve_option_values_reach_the_startup_hook(
    site: Path, tmp_path: Path, args: tuple[str, ...], expected: dict[str, Any]
) -> None:
    out = tmp_path / "startup.json"
    env = site_env(site, FAKEPLUG_OUT=str(out))
    with serve_process(f"{QUICKSTART}:app", *args, env=env) as proc:
        # The plugin's hook runs before core's (trylast) "Server listening" line.
        seen = json.loads(out.read_text())
        port = proc.port
    assert {k: seen["options"].get(k) for k in expected} == expected
    assert seen["port"] == port
    assert seen["models"] == ["sentiment"]


def test_serve_aborts_when_a_startup_hook_raises(site: Path) -> None:
    result = blaze(
        "serve",
        f"{QUICKSTART}:app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        env=site_env(site, FAKEPLUG_FAIL="the fake plugin refuses to start"),
    )
    assert result.returncode != 0
    assert "the fake plugin refuses to start" in result.stderr
    assert "Server listening" not in result.stderr


async def test_serve_starts_despite_a_failed_plugin_and_warns(site: Path) -> None:
    with serve_process(f"{QUICKSTART}:app", env=site_env(site)) as proc:
        reply = await AppCaller(load_app_module(QUICKSTART), proc).call("sentiment", text=["good"])
        warnings = [e for e in proc.logs if e.get("level") == "warning" and e.get("plugin") == "broken"]
    assert list(reply.result) == [0.95]
    assert len(warnings) == 1
    warning = warnings[0]
    assert "broken" in warning["event"]
    assert warning["error"] == "ImportError: needs libfoo"
    assert warning["distribution"] == "blazerpc-broken"
    # The working plugin is not reported.
    assert not [e for e in proc.logs if e.get("level") == "warning" and e.get("plugin") == "fake"]


# --- installed plugins that import but whose hooks are wrong ---------------------------------

BAD_HOOK_PLUGINS = {
    # entry point: (distribution, fixture module, what its error says)
    "badargs": (
        "blazerpc-badargs",
        "bad_args_plugin.py",
        "invalid hook implementation: blazerpc_map_type(annotation, ctx) takes 'ctx', which the hook "
        "spec blazerpc_map_type(annotation, context) does not pass; use the spec's argument names",
    ),
    "typo": (
        "blazerpc-typo",
        "typo_hook_plugin.py",
        "invalid hook implementation: unknown hook 'blazerpc_map_typo' (did you mean blazerpc_map_type?)",
    ),
    "clifail": (
        "blazerpc-clifail",
        "cli_raises_plugin.py",
        "its blazerpc_cli hook raised RuntimeError: cannot read ~/.clifail.toml",
    ),
}


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """blazerpc-fake (works) next to three plugins that import but whose hooks are wrong."""
    path = tmp_path_factory.mktemp("bad-site")
    install_distribution(path, "blazerpc-fake", "0.1", "blazerpc_fake", FIXTURES / "fake_plugin.py", "fake")
    for name, (distribution, source, _) in BAD_HOOK_PLUGINS.items():
        package = distribution.replace("-", "_")
        install_distribution(path, distribution, "1.0", package, FIXTURES / source, name)
    return path


def test_plugins_list_shows_plugins_with_bad_hooks_as_failed(bad_site: Path) -> None:
    records = plugins_json(bad_site)
    assert set(records) == {"fake", *BAD_HOOK_PLUGINS}
    assert records["fake"]["loaded"] is True
    assert records["fake"]["hooks"] == FAKE_HOOKS
    for name, (distribution, _, error) in BAD_HOOK_PLUGINS.items():
        record = records[name]
        assert (record["loaded"], record["distribution"], record["version"]) == (False, distribution, "1.0")
        assert record["error"] == error
    table = blaze("plugins", "list", env=site_env(bad_site))
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    for name in BAD_HOOK_PLUGINS:
        line = next(line for line in table.stdout.splitlines() if line.startswith(f"{name} "))
        assert "FAILED" in line
        assert BAD_HOOK_PLUGINS[name][2] in line


def test_commands_work_despite_plugins_with_bad_hooks(bad_site: Path) -> None:
    hello = blaze("hello", "--name", "x", env=site_env(bad_site))
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "Hello, x, from blazerpc-fake"
    # What the failing blazerpc_cli hook added before it raised is gone, and so are the
    # serve options of that plugin.
    assert "half-added" not in blaze("--help", env=site_env(bad_site)).stdout
    assert blaze("half-added", env=site_env(bad_site)).returncode == 2
    serve_help = blaze("serve", "--help", env=site_env(bad_site)).stdout
    assert "--greeting" in serve_help
    assert "--clifail-level" not in serve_help


def test_serve_warns_about_plugins_with_bad_hooks_and_serves(
    bad_site: Path, tmp_path: Path, grpcurl: str
) -> None:
    out = tmp_path / "startup.json"
    # The working plugin is used: the app's model takes a Kelvin, which it maps.
    env = site_env(bad_site, FAKEPLUG_OUT=str(out))
    with serve_process(f"{thermo_source(tmp_path)}:app", env=env) as proc:
        warnings = {e["plugin"]: e for e in proc.logs if e.get("level") == "warning" and "plugin" in e}
        done = subprocess.run(
            [
                grpcurl,
                "-plaintext",
                "-d",
                '{"t": 300.5}',
                proc.address,
                "blazerpc.InferenceService/PredictThermo",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": 300.5}
    assert json.loads(out.read_text())["models"] == ["thermo"]  # the working plugin's start-up hook ran
    assert set(warnings) == set(BAD_HOOK_PLUGINS)
    for name, (distribution, _, error) in BAD_HOOK_PLUGINS.items():
        assert warnings[name]["error"] == error
        assert warnings[name]["distribution"] == distribution
        assert warnings[name]["event"] == f"Plugin {name} failed to load; see 'blaze plugins list'"


def test_serve_fails_clearly_when_the_app_needs_a_plugin_with_bad_hooks(
    bad_site: Path, tmp_path: Path
) -> None:
    app = tmp_path / "rankine_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n"
        "from blazerpc_badargs.plugin import Rankine\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('heat')\n"
        "def heat(t: Rankine) -> float:\n"
        "    return float(t)\n"
    )
    result = blaze("serve", f"{app}:app", "--host", "127.0.0.1", "--port", "0", env=site_env(bad_site))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "parameter 't'" in result.stderr
    assert "blazerpc_badargs.plugin.Rankine" in result.stderr
    assert "The plugin badargs (blazerpc-badargs) is installed but failed to load" in result.stderr
    assert BAD_HOOK_PLUGINS["badargs"][2] in result.stderr


class MisspelledHook:
    @hookimpl
    def blazerpc_startupp(self, app: BlazeApp, server: ServerInfo) -> None:
        pass


class WrongArgument:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, ctx: FieldContext) -> None:
        return None


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (MisspelledHook(), "unknown hook 'blazerpc_startupp' (did you mean blazerpc_startup?)"),
        (WrongArgument(), "blazerpc_map_type(annotation, ctx) takes 'ctx'"),
    ],
)
def test_an_explicit_plugin_with_bad_hooks_is_a_plugin_error(plugin: object, message: str) -> None:
    with pytest.raises(blazerpc.PluginError, match=re.escape(message)) as info:
        BlazeApp(plugins=[plugin])
    assert str(info.value).startswith(f"plugin {type(plugin).__name__} cannot be registered: ")
    with pytest.raises(blazerpc.PluginError, match=re.escape(message)):
        register(plugin)
    assert not any(p is plugin for p in new_plugin_manager().get_plugins())


def test_an_unknown_batch_policy_names_the_plugins_that_failed(bad_site: Path, tmp_path: Path) -> None:
    app = tmp_path / "policy_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('rank', batch_policy='priority')\n"
        "def rank(x: list[float]) -> list[float]:\n"
        "    return x\n"
    )
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(bad_site))
    assert result.returncode == 1
    assert "model 'rank': unknown batch_policy 'priority'; available: adaptive, fixed" in result.stderr
    assert f"plugin typo failed to load: {BAD_HOOK_PLUGINS['typo'][2]}" in result.stderr
