"""The baseline: a hand-written grpclib servicer doing the same work as apps/server_app.py,
with no framework (protobuf message classes and grpclib, nothing of BlazeRPC).

    python benchmarks/baseline_server.py PORT      # prints "listening on PORT"

Same package, service, methods and messages as BlazeRPC generates, so one request
serves both servers.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.const import Cardinality, Handler
from grpclib.server import Server


def _messages() -> dict[str, type]:
    file = FileDescriptorProto(name="baseline.proto", package="blazerpc", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, str]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, kind, label_or_type in fields:
            field = msg.field.add(name=field_name, number=number, type=kind)
            field.label = F.LABEL_REPEATED if label_or_type == "repeated" else F.LABEL_OPTIONAL
            if kind == F.TYPE_MESSAGE:
                field.type_name = label_or_type

    message("TensorProto", ("shape", 1, F.TYPE_INT64, "repeated"), ("dtype", 2, F.TYPE_STRING, ""),
            ("data", 3, F.TYPE_BYTES, ""))  # fmt: skip
    message("ScoreRequest", ("x", 1, F.TYPE_DOUBLE, "repeated"))
    message("ScoreResponse", ("result", 1, F.TYPE_DOUBLE, "repeated"))
    message("EchoRequest", ("x", 1, F.TYPE_MESSAGE, ".blazerpc.TensorProto"))
    message("EchoResponse", ("result", 1, F.TYPE_MESSAGE, ".blazerpc.TensorProto"))
    message("CountRequest", ("n", 1, F.TYPE_INT64, ""))
    message("CountResponse", ("result", 1, F.TYPE_INT64, ""))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"blazerpc.{m.name}"))
        for m in file.message_type
    }


M = _messages()


class Baseline:
    async def score(self, stream) -> None:
        request = await stream.recv_message()
        await stream.send_message(M["ScoreResponse"](result=[v * 0.5 for v in request.x]))

    async def echo(self, stream) -> None:
        request = await stream.recv_message()
        x = request.x
        array = np.frombuffer(x.data, dtype=np.dtype(x.dtype)).reshape(tuple(x.shape))
        result = M["TensorProto"](shape=array.shape, dtype=array.dtype.name, data=array.tobytes())
        await stream.send_message(M["EchoResponse"](result=result))

    async def count(self, stream) -> None:
        request = await stream.recv_message()
        for i in range(request.n):
            await stream.send_message(M["CountResponse"](result=i))

    def __mapping__(self) -> dict[str, Handler]:
        unary, stream = Cardinality.UNARY_UNARY, Cardinality.UNARY_STREAM
        return {
            "/blazerpc.InferenceService/PredictScore": Handler(
                self.score, unary, M["ScoreRequest"], M["ScoreResponse"]
            ),
            "/blazerpc.InferenceService/PredictEcho": Handler(
                self.echo, unary, M["EchoRequest"], M["EchoResponse"]
            ),
            "/blazerpc.InferenceService/PredictCount": Handler(
                self.count, stream, M["CountRequest"], M["CountResponse"]
            ),
        }


async def main(port: int) -> None:
    server = Server([Baseline()])
    await server.start("127.0.0.1", port)
    print(f"listening on {port}", flush=True)
    await server.wait_closed()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
