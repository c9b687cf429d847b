"""The README's quick start: `blaze serve app:app` in this directory."""

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("sentiment")
def predict_sentiment(text: list[str]) -> list[float]:
    # Stand-in for a real model: longer texts score higher.
    return [min(1.0, len(t) / 100) for t in text]
