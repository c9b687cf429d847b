"""The model of benchmarks/oip.py: an FP32 [batch, 1] echo, batched with BENCH_BATCHING=on.
The oip plugin is registered here, so the benchmark runs with plugin autoload off."""

import os

import numpy as np

import blazerpc_oip.hooks
from blazerpc import BlazeApp, TensorInput, TensorOutput

BATCH = "batch"
app = BlazeApp(enable_batching=os.environ.get("BENCH_BATCHING") == "on", plugins=[blazerpc_oip.hooks])


@app.model("echo")
async def echo(x: TensorInput[np.float32, BATCH, 1]) -> TensorOutput[np.float32, BATCH, 1]:
    return x
