"""KServe's InferenceGRPCClient against a real ``blaze serve``."""

from __future__ import annotations

from oip_support import run_client

from blazerpc.testing import ServeProcess


def test_kserve_infer(oip_server: ServeProcess) -> None:
    seen = run_client("kserve", "kserve_client.py", oip_server.address)
    assert seen == {"id": "k1", "name": "result", "result": [[0.0, 3.0, 6.0], [9.0, 12.0, 15.0]]}
