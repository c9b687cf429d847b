"""Call a BlazeRPC server from Python: :class:`Client` (asyncio) and :class:`SyncClient`.

Both learn the server's schema through its reflection service: no ``.proto`` file, no
generated stubs, no import of the server's code. Every failure raises :class:`CallError`
with the gRPC ``status`` and ``message``.
"""

from ._client import Client
from ._errors import CallError
from ._schema import FieldInfo, ModelInfo
from ._sync import SyncClient

__all__ = ["CallError", "Client", "FieldInfo", "ModelInfo", "SyncClient"]
