"""The V2 baseline: a hand-written grpclib servicer of ``inference.GRPCInferenceService``
doing what apps/oip_app.py's `echo` does through blazerpc-oip (parse the request, check
the input, echo it as raw output), with the protocol's own message classes and nothing
else of BlazeRPC.

    python benchmarks/oip_baseline_server.py PORT [uvloop]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from blazerpc_oip import Messages

M = Messages()


class Baseline:
    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/inference.GRPCInferenceService/ModelInfer": Handler(
                self.infer, Cardinality.UNARY_UNARY, M.ModelInferRequest, M.ModelInferResponse
            )
        }

    async def infer(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        assert request is not None
        if request.model_name != "echo" or len(request.inputs) != 1:
            raise GRPCError(Status.NOT_FOUND, "echo takes one input")
        tensor = request.inputs[0]
        raw = request.raw_input_contents[0]
        if tensor.datatype != "FP32" or len(raw) != 4 * int(np.prod(tensor.shape)):
            raise GRPCError(Status.INVALID_ARGUMENT, "x is FP32")
        x = np.frombuffer(raw, dtype="<f4").reshape(list(tensor.shape))
        response = M.ModelInferResponse(model_name="echo", model_version="1", id=request.id)
        response.outputs.add(name="result", datatype="FP32", shape=list(x.shape))
        response.raw_output_contents.append(x.tobytes())
        await stream.send_message(response)


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
