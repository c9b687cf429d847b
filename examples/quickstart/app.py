"""The README's quick start, exactly: `blaze serve app:app` in this directory."""

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("sentiment")
def predict_sentiment(text: list[str]) -> list[float]:
    # Your model goes here.
    return [0.95] * len(text)
