"""Rebuild ``src/blazerpc_oip/inference.binpb`` from ``inference.proto``.

    pip install grpcio-tools && python plugins/blazerpc-oip/scripts/build_descriptor.py

The plugin loads the serialized ``FileDescriptorProto`` this writes (see
``blazerpc_oip/_proto.py`` for why not a generated ``_pb2.py``); a test checks that the
committed file is what this script builds from the committed ``.proto``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "blazerpc_oip"


def build() -> bytes:
    """The serialized ``FileDescriptorProto`` of ``inference.proto``, comments included."""
    import tempfile

    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        code = protoc.main(
            [
                "protoc",
                f"-I{PACKAGE}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                "inference.proto",
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {PACKAGE / 'inference.proto'} (exit {code})")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    (file,) = files
    return file.SerializeToString(deterministic=True)


if __name__ == "__main__":
    target = PACKAGE / "inference.binpb"
    target.write_bytes(build())
    sys.stdout.write(f"wrote {target}\n")
