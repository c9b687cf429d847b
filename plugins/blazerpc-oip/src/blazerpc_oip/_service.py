"""``inference.GRPCInferenceService``: the V2 servicer, over the app's call pipelines.

Inference calls (``ModelInfer``, each request of ``ModelStreamInfer``) go through the
model's own pipeline (``ServiceHost``): middleware, admission, the model's batcher or
limit, execution; only decode and encode are this protocol's (:class:`_InferCall`).
The metadata calls answer from what was computed at start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import Deadline
from grpclib.server import Stream

import blazerpc
from blazerpc import InvalidInputError
from blazerpc.server import RawMessage, ServedModel, ServiceHost

from ._datatypes import TRITON_TYPES
from ._model import ModelTensors
from ._params import Parameters
from ._proto import SERVICE, Messages, file_descriptor
from ._stats import Statistics

__all__ = ["EXTENSIONS", "OpenInferenceService"]

#: The protocol extensions this server implements (ServerMetadata lists them).
EXTENSIONS = ("model_configuration", "statistics")
#: Triton's methods this server does not implement: UNIMPLEMENTED, naming what is.
_NOT_SERVED = (
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus",
    "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister",
    "TraceSetting",
    "LogSettings",
)
_SERVED = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelStreamInfer",
    "ModelConfig",
    "ModelStatistics",
    "RepositoryIndex",
)


def _message(request: Any) -> Any:
    """A unary call's one request message; a call that carried none is refused."""
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "the call carried no request message")
    return request


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _Entry:
    """One model as served here: its tensors, its pipeline, its config answers."""

    def __init__(self, served: ServedModel, messages: Messages) -> None:
        self.served = served
        self.tensors = ModelTensors(served.method)
        self.name = self.tensors.name
        self.version = self.tensors.version
        self.streaming = served.method.streaming
        path = f"/{SERVICE}/ModelStreamInfer" if self.streaming else f"/{SERVICE}/ModelInfer"
        self.pipeline = served.pipeline(path)
        self.messages = messages
        self.metadata = messages.ModelMetadataResponse(
            name=self.name,
            versions=[self.version],
            platform="blazerpc",
            inputs=[{"name": i.name, "datatype": i.datatype, "shape": i.shape} for i in self.tensors.inputs],
            outputs=[
                {"name": o.name, "datatype": o.datatype, "shape": o.shape} for o in self.tensors.outputs
            ],
        )
        batch = served.max_batch_size or 0
        cut = 1 if batch else 0  # Triton's dims leave out the batch dimension
        config: dict[str, Any] = {
            "name": self.name,
            "platform": "blazerpc",
            "backend": "python",
            "max_batch_size": batch,
            "input": [
                {"name": i.name, "data_type": TRITON_TYPES[i.datatype], "dims": i.shape[cut:]}
                for i in self.tensors.inputs
            ],
            "output": [
                {"name": o.name, "data_type": TRITON_TYPES[o.datatype], "dims": o.shape[cut:]}
                for o in self.tensors.outputs
            ],
            "model_transaction_policy": {"decoupled": self.streaming},
        }
        if batch:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": int((served.batch_timeout_ms or 0) * 1000)
            }
        self.config = messages.ModelConfigResponse(config=config)
        self.output_index = {o.name: i for i, o in enumerate(self.tensors.outputs)}


class _InferCall:
    """One request's decode and encode (the pipeline's codec for this call)."""

    __slots__ = ("entry", "outputs", "request")

    def __init__(self, entry: _Entry, request: Any) -> None:
        self.entry = entry
        self.request = request
        outputs = entry.tensors.outputs
        if request.outputs:
            wanted = []
            for out in request.outputs:
                index = entry.output_index.get(out.name)
                if index is None:
                    known = ", ".join(entry.output_index)
                    raise GRPCError(
                        Status.INVALID_ARGUMENT,
                        f"model {entry.name!r} has no output {out.name!r}; its outputs: {known}",
                    )
                wanted.append(index)
            self.outputs = tuple((i, outputs[i]) for i in wanted)
        else:
            self.outputs = tuple(enumerate(outputs))

    def decode(self, data: bytes) -> list[Any]:
        return self.entry.tensors.arguments(self.request)

    def encode(self, result: Any) -> bytes:
        return self.encode_fields(self.entry.tensors.values(result))

    def encode_fields(self, values: list[Any]) -> bytes:
        tensors = self.entry.tensors
        response = self.entry.messages.ModelInferResponse(
            model_name=self.entry.name, model_version=self.entry.version, id=self.request.id
        )
        for index, info in self.outputs:
            shape, raw = tensors.output(info, values[index])
            response.outputs.add(name=info.name, datatype=info.datatype, shape=shape)
            response.raw_output_contents.append(raw)
        data: bytes = response.SerializeToString()
        return data


class _Deadlined:
    """A call's stream with the request's ``timeout`` parameter as its deadline, so the
    batcher drops it from its queue and middleware see ``DEADLINE_EXCEEDED`` when it passes."""

    def __init__(self, stream: Stream[Any, Any], deadline: Deadline) -> None:
        self._stream = stream
        self.deadline = deadline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _StreamRequest:
    """One request of a ``ModelStreamInfer`` stream, as the pipeline sees its call: its
    responses become ``ModelStreamInferResponse`` messages on the real stream, the last
    marked ``triton_final_response``; its failure becomes an ``error_message``."""

    def __init__(self, stream: Stream[Any, Any], final: bytes, not_final: bytes) -> None:
        self._stream = stream
        self.metadata = stream.metadata
        self.peer = stream.peer
        self.deadline = stream.deadline
        self._final = final
        self._not_final = not_final
        self._pending: bytes | None = None
        self.status: Status | None = None
        self.message: str | None = None

    async def _send(self, response: bytes, flag: bytes) -> None:
        body = response + flag
        await self._stream.send_message(b"\x12" + _varint(len(body)) + body)

    async def send_message(self, response: bytes) -> None:
        if self._pending is not None:
            await self._send(self._pending, self._not_final)
        self._pending = response

    async def finish(self, empty: bytes | None) -> None:
        """Send the last response, marked final (or ``empty``, marked, if none came)."""
        if self._pending is not None:
            await self._send(self._pending, self._final)
        elif empty is not None:
            await self._send(empty, self._final)

    async def send_initial_metadata(self, *, metadata: Any = None) -> None:
        return None  # the stream's headers went out with its first request

    async def send_trailing_metadata(
        self, *, status: Status = Status.OK, status_message: Any = None, **_: Any
    ) -> None:
        self.status = status
        self.message = status_message


class OpenInferenceService:
    """The V2 servicer grpclib serves."""

    def __init__(self, host: ServiceHost, statistics: Statistics | None) -> None:
        self.host = host
        host.add_file(file_descriptor())
        self.messages = m = Messages(host.schema.pool)
        self.statistics = statistics
        self.entries: dict[str, dict[str, _Entry]] = {}
        for served in host.models:
            entry = _Entry(served, m)
            self.entries.setdefault(entry.name, {})[entry.version] = entry
        final = m.ModelInferResponse(parameters={"triton_final_response": {"bool_param": True}})
        not_final = m.ModelInferResponse(parameters={"triton_final_response": {"bool_param": False}})
        self._final = final.SerializeToString()
        self._not_final = not_final.SerializeToString()
        self._index = m.RepositoryIndexResponse(
            models=[
                {"name": e.name, "version": e.version, "state": "READY"}
                for versions in self.entries.values()
                for e in versions.values()
            ]
        )
        self._server_metadata = m.ServerMetadataResponse(
            name="blazerpc", version=blazerpc.__version__, extensions=list(EXTENSIONS)
        )
        unary = Cardinality.UNARY_UNARY
        p = f"/{SERVICE}/"
        self._mapping = {
            p + "ServerLive": Handler(self.server_live, unary, m.ServerLiveRequest, m.ServerLiveResponse),
            p + "ServerReady": Handler(self.server_ready, unary, m.ServerReadyRequest, m.ServerReadyResponse),
            p + "ModelReady": Handler(self.model_ready, unary, m.ModelReadyRequest, m.ModelReadyResponse),
            p + "ServerMetadata": Handler(
                self.server_metadata, unary, m.ServerMetadataRequest, m.ServerMetadataResponse
            ),
            p + "ModelMetadata": Handler(
                self.model_metadata, unary, m.ModelMetadataRequest, m.ModelMetadataResponse
            ),
            p + "ModelInfer": Handler(self.model_infer, unary, RawMessage, RawMessage),
            p + "ModelStreamInfer": Handler(
                self.model_stream_infer, Cardinality.STREAM_STREAM, RawMessage, RawMessage
            ),
            p + "ModelConfig": Handler(self.model_config, unary, m.ModelConfigRequest, m.ModelConfigResponse),
            p + "ModelStatistics": Handler(
                self.model_statistics, unary, m.ModelStatisticsRequest, m.ModelStatisticsResponse
            ),
            p + "RepositoryIndex": Handler(
                self.repository_index, unary, m.RepositoryIndexRequest, m.RepositoryIndexResponse
            ),
        }
        for name in _NOT_SERVED:
            self._mapping[p + name] = Handler(self._unimplemented(name), unary, RawMessage, RawMessage)

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping

    # --- lookups ----------------------------------------------------------------------

    def _find(self, name: str, version: str) -> _Entry:
        versions = self.entries.get(name)
        if versions is None:
            known = ", ".join(sorted(self.entries)) or "none"
            raise GRPCError(Status.NOT_FOUND, f"unknown model {name!r}; this server has: {known}")
        if not version:
            return list(versions.values())[-1]
        entry = versions.get(version)
        if entry is None:
            raise GRPCError(
                Status.NOT_FOUND,
                f"model {name!r} has no version {version!r}; its versions: {', '.join(versions)}",
            )
        return entry

    @staticmethod
    def _unimplemented(name: str) -> Any:
        async def handler(stream: Stream[Any, Any]) -> None:
            raise GRPCError(
                Status.UNIMPLEMENTED,
                f"{SERVICE}/{name} is not implemented by this server; it serves: {', '.join(_SERVED)}",
            )

        return handler

    # --- health and metadata ----------------------------------------------------------

    async def server_live(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self.messages.ServerLiveResponse(live=True))

    async def server_ready(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self.messages.ServerReadyResponse(ready=self.host.ready))

    async def model_ready(self, stream: Stream[Any, Any]) -> None:
        request = _message(await stream.recv_message())
        self._find(request.name, request.version)
        await stream.send_message(self.messages.ModelReadyResponse(ready=self.host.ready))

    async def server_metadata(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self._server_metadata)

    async def model_metadata(self, stream: Stream[Any, Any]) -> None:
        request = _message(await stream.recv_message())
        await stream.send_message(self._find(request.name, request.version).metadata)

    async def model_config(self, stream: Stream[Any, Any]) -> None:
        request = _message(await stream.recv_message())
        await stream.send_message(self._find(request.name, request.version).config)

    async def repository_index(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(self._index)

    async def model_statistics(self, stream: Stream[Any, Any]) -> None:
        request = _message(await stream.recv_message())
        if request.name:
            entries: Sequence[_Entry] = [self._find(request.name, request.version)]
        else:
            entries = [e for versions in self.entries.values() for e in versions.values()]
        response = self.messages.ModelStatisticsResponse()
        for e in entries:
            stats = response.model_stats.add(name=e.name, version=e.version)
            if self.statistics is None:
                continue
            c = self.statistics.counts(e.name, e.version)
            stats.last_inference = c.last_inference_ms
            stats.inference_count = c.inference_count
            stats.execution_count = c.execution_count
            s = stats.inference_stats
            s.success.count = c.success
            s.fail.count = c.fail
            s.queue.count, s.queue.ns = c.queue_count, c.queue_ns
            s.compute_infer.count, s.compute_infer.ns = c.execution_count, c.compute_ns
            for rows, (calls, ns) in sorted(c.batches.items()):
                b = stats.batch_stats.add(batch_size=rows)
                b.compute_infer.count, b.compute_infer.ns = calls, ns
        await stream.send_message(response)

    # --- inference --------------------------------------------------------------------

    def _parse(self, data: bytes) -> tuple[_Entry, Any, Parameters]:
        try:
            request = self.messages.ModelInferRequest.FromString(data)
        except DecodeError as exc:
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"request is not a valid inference.ModelInferRequest: {exc}"
            ) from None
        entry = self._find(request.model_name, request.model_version)
        try:
            params = Parameters(request.parameters)
        except InvalidInputError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, exc.message) from None
        return entry, request, params

    async def model_infer(self, stream: Stream[Any, Any]) -> None:
        data = await self.host.read_request(stream)
        entry, request, params = self._parse(data)
        if entry.streaming:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"model {entry.name!r} streams its responses: call {SERVICE}/ModelStreamInfer",
            )
        call = _InferCall(entry, request)
        if params.timeout is None:
            await entry.pipeline.handle(stream, data, codec=call)
            return
        deadline = Deadline.from_timeout(params.timeout)
        if stream.deadline is not None and stream.deadline < deadline:
            deadline = stream.deadline
        try:
            async with asyncio.timeout(params.timeout):
                await entry.pipeline.handle(_Deadlined(stream, deadline), data, codec=call)  # type: ignore[arg-type]
        except TimeoutError:
            raise GRPCError(
                Status.DEADLINE_EXCEEDED,
                f"the request's timeout parameter ({params.timeout * 1e6:g} µs) passed "
                "before the call was answered",
            ) from None

    async def model_stream_infer(self, stream: Stream[Any, Any]) -> None:
        limit = self.host.limits.max_message_size
        draining = asyncio.ensure_future(self.host.draining())
        try:
            while True:
                received = asyncio.ensure_future(stream.recv_message())
                await asyncio.wait({received, draining}, return_when=asyncio.FIRST_COMPLETED)
                if not received.done():  # draining, between requests: the stream ends (OK)
                    received.cancel()
                    return
                data = received.result()
                if data is None:
                    return
                await self._stream_request(stream, data, limit)
        finally:
            draining.cancel()

    async def _stream_request(self, stream: Stream[Any, Any], data: bytes, limit: int) -> None:
        """One request of a ``ModelStreamInfer`` stream, answered on it: the model's
        responses, the last marked final; or one ``error_message``."""
        m = self.messages
        view = _StreamRequest(stream, self._final, self._not_final)
        try:
            if len(data) > limit:
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"the request is {len(data)} bytes, over this server's limit of {limit} bytes "
                    "(max_message_size)",
                )
            entry, request, params = self._parse(data)
            await entry.pipeline.handle(view, data, codec=_InferCall(entry, request))  # type: ignore[arg-type]
        except GRPCError as exc:
            error = exc.message or exc.status.name
            await stream.send_message(m.ModelStreamInferResponse(error_message=error).SerializeToString())
            return
        if view.status is not None and view.status is not Status.OK:
            error = view.message or view.status.name
            await stream.send_message(m.ModelStreamInferResponse(error_message=error).SerializeToString())
            return
        empty = None
        if params.empty_final:
            empty = m.ModelInferResponse(
                model_name=entry.name, model_version=entry.version, id=request.id
            ).SerializeToString()
        await view.finish(empty)
