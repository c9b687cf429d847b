"""The seed README's ONNX example and the graph registered as it is, for `blaze serve`.

CLF_MODEL is the path of the classifier graph the test wrote.
"""

import os

import numpy as np

from blazerpc import BlazeApp
from blazerpc.contrib.onnx import ONNXModel

onnx_model = ONNXModel(os.environ["CLF_MODEL"], providers=["CPUExecutionProvider"])
app = BlazeApp()

app.model("graph")(onnx_model)


@app.model("classifier")
def classify(image: np.ndarray) -> np.ndarray:
    return onnx_model.predict(image)[0]
