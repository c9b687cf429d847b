"""A model that costs next to nothing, so the server's own per-call work (and what the
metrics plugin adds to it) is all there is to measure. Batched, like most models."""

from blazerpc import BlazeApp

app = BlazeApp(max_batch_size=64)


@app.model("score")
def score(x: list[float]) -> list[float]:
    return [v * 0.5 for v in x]
