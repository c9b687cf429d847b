"""The end of a call over real `blaze serve` processes: a content type other than
protobuf refused, a client that leaves mid-call, a model cut off at its deadline."""

from __future__ import annotations

import asyncio
import time

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from h2.events import ResponseReceived, StreamEnded
from serving_support import SCHEMA, pid_over, request, rpc
from support import RecordingChannel, app_target

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess, serve_process


class _JsonCodec(BlazeCodec):
    __content_subtype__ = "json"


async def test_a_content_type_other_than_protobuf_is_refused_with_a_message() -> None:
    with serve_process(app_target("serving_app")) as proc:
        path = next(m.path for m in SCHEMA.methods if m.model == "pid")

        async def scenario() -> tuple[GRPCError, RecordingChannel]:
            channel = RecordingChannel(proc.host, proc.port, codec=_JsonCodec())
            try:
                async with channel.request(
                    path, Cardinality.UNARY_UNARY, RawMessage, RawMessage, timeout=5
                ) as s:
                    await s.send_message(b'{"text": "x"}', end=True)
                    await s.recv_message()
            except GRPCError as exc:
                return exc, channel
            finally:
                channel.close()
            raise AssertionError("a JSON call was accepted")

        error, channel = await scenario()
        assert await pid_over(proc, None) == proc.process.pid
    # What the server sent: one HEADERS frame that ends the stream (a trailers-only
    # answer) with HTTP 415 Unsupported Media Type and a gRPC status and message.
    [(_, response)] = channel.of_type(ResponseReceived)
    headers = {name: value for name, value in response.headers}
    assert headers[":status"] == "415"
    assert headers["grpc-status"] == str(Status.UNKNOWN.value)
    assert headers["grpc-message"] == "Unacceptable content-type header"
    assert [e.stream_id for _, e in channel.of_type(StreamEnded)] == [response.stream_id]
    # grpclib's client reports the HTTP status (the gRPC HTTP mapping reads 415 as UNKNOWN).
    assert error.status is Status.UNKNOWN
    assert error.message == "Received :status = '415'"


def _calls_left_at_shutdown(proc: ServeProcess) -> int:
    """Stop the server; the number of calls its drain still found running."""
    assert proc.stop() == 0
    drains = [e for e in proc.logs if str(e.get("event", "")).startswith("Draining")]
    return drains[-1]["calls"] if drains else 0


async def test_a_client_that_disconnects_mid_call_leaves_nothing_behind() -> None:
    with serve_process(app_target("serving_app"), "--grace-period", "5") as proc:
        channel = Channel(proc.host, proc.port)
        call = asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=1), timeout=60))
        await asyncio.sleep(0.3)
        channel.close()  # the connection goes away under the call
        with pytest.raises((StreamTerminatedError, asyncio.CancelledError, ConnectionError)):
            await call
        assert await pid_over(proc, None) == proc.process.pid
        assert _calls_left_at_shutdown(proc) == 0


async def test_a_model_that_hangs_past_the_deadline_is_cut_off() -> None:
    with serve_process(app_target("serving_app"), "--grace-period", "5") as proc:
        channel = Channel(proc.host, proc.port)
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):  # grpclib: DEADLINE_EXCEEDED on its side
                await rpc(channel, "hang")(request("hang", x=1), timeout=0.5)
            assert time.monotonic() - started < 5
            assert (await rpc(channel, "pid")(request("pid", text="?"), timeout=5)).result == proc.process.pid
        finally:
            channel.close()
        assert _calls_left_at_shutdown(proc) == 0
