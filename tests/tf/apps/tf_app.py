"""An app served by `blaze serve` in the TensorFlow plugin's tests: a SavedModel (its
directory from BLAZERPC_TEST_SAVED_MODEL) and a function over tf.Tensor annotations."""

from __future__ import annotations

import os
from typing import Annotated

import tensorflow as tf

from blazerpc import BlazeApp
from blazerpc_tf import SavedModel, tf_model

Rows = Annotated[tf.Tensor, tf.TensorSpec([None, 3], tf.float32)]

app = BlazeApp()
app.model("scorer")(SavedModel(os.environ["BLAZERPC_TEST_SAVED_MODEL"]))


@app.model("normalize")
@tf_model
def normalize(x: Rows) -> Rows:
    return tf.math.l2_normalize(x, axis=1)
