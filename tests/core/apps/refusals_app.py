"""Models whose inputs the client must refuse, or send exactly, before the server sees them."""

from collections.abc import Iterator

import numpy as np

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp()


@app.model("generate")
def generate(n: int, prompt: str) -> str:
    return prompt * n


@app.model("scale")
def scale(x: TensorInput[np.float32, "batch", 3]) -> TensorOutput[np.float32, "batch", 3]:
    return x * 2


@app.model("kinds")
def kinds(on: bool, ratio: np.float32, small: np.int32, ids: list[int], blob: bytes) -> str:
    return f"{on} {ratio} {small} {ids} {blob!r}"


@app.model("echo")
def echo(x: np.ndarray) -> np.ndarray:
    """Any dtype and shape, returned as received."""
    return x


@app.model("sentiment")
def sentiment(text: list[str]) -> list[float]:
    return [0.5] * len(text)


@app.model("sentiment", version="2")
def sentiment_v2(text: list[str]) -> list[float]:
    return [0.75] * len(text)


@app.model("words", streaming=True)
def words(text: str) -> Iterator[str]:
    yield from text.split()


@app.model("tagger", version="a")
def tagger_a(text: str) -> str:
    return "a"


@app.model("tagger", version="b")
def tagger_b(text: str) -> str:
    return "b"
