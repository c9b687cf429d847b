"""Run in kserve's own environment: one ModelInfer through KServe's InferenceGRPCClient.

python kserve_client.py ADDRESS
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(address: str) -> dict[str, object]:
    client = InferenceGRPCClient(address, timeout=30)
    x = InferInput("x", [2, 3], "FP32")
    x.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    factor = InferInput("factor", [1], "FP64")
    factor.set_data_from_numpy(np.array([3.0]))
    request = InferRequest(model_name="scale", infer_inputs=[x, factor], request_id="k1")
    response = await client.infer(request)
    await client.close()
    output = response.outputs[0]
    return {"id": response.id, "name": output.name, "result": output.as_numpy().tolist()}


if __name__ == "__main__":
    json.dump(asyncio.run(main(sys.argv[1])), sys.stdout)
