"""Call a BlazeRPC server from Python: :class:`Client` (asyncio) and :class:`SyncClient`.

Both learn the server's schema through its reflection service: no ``.proto`` file, no
generated stubs, no import of the server's code. A call that fails raises
:class:`CallError` with the gRPC ``status`` and ``message``; inputs the client refuses to
send raise :class:`ClientInputError` (a ``ValueError``), and nothing is sent.
"""

from ._client import Client
from ._errors import CallError, ClientInputError
from ._schema import FieldInfo, ModelInfo
from ._sync import SyncClient

__all__ = ["CallError", "Client", "ClientInputError", "FieldInfo", "ModelInfo", "SyncClient"]
