"""The seed README's AuthMiddleware, as written there, with the imports it needs."""

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp
from blazerpc.server.middleware import Middleware


class AuthMiddleware(Middleware):
    async def on_request(self, event):
        token = dict(event.metadata).get("authorization")
        if not token:
            raise GRPCError(Status.UNAUTHENTICATED, "Missing token")

    async def on_response(self, event):
        pass


app = BlazeApp(middleware=[AuthMiddleware()])


@app.model("sentiment")
def predict_sentiment(text: list[str]) -> list[float]:
    return [0.95] * len(text)
