"""Reading tensor fields straight out of the request bytes, without copying their data.

protobuf would copy a ``bytes`` field twice (into its arena, then into a Python
``bytes``). Instead the request's top-level fields are scanned: tensor fields are kept
as views of the request buffer and parsed here; the other fields are handed to
protobuf as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import InvalidInputError

__all__ = ["RawTensor", "split_fields"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise InvalidInputError("request is not a valid protobuf message: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise InvalidInputError("request is not a valid protobuf message: varint too long")


def _tag(buf: memoryview, pos: int, end: int) -> tuple[int, int, int]:
    """(field number, wire type, position after the tag); numbers outside 1..2**29-1
    are corrupt, as protobuf says."""
    tag, pos = _varint(buf, pos, end)
    number = tag >> 3
    if not 0 < number < 1 << 29:
        raise InvalidInputError(f"request is not a valid protobuf message: field number {number}")
    return number, tag & 7, pos


def _skip(buf: memoryview, pos: int, end: int, wire_type: int) -> int:
    if wire_type == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire_type == _I64:
        pos += 8
    elif wire_type == _I32:
        pos += 4
    elif wire_type == _LEN:
        length, pos = _varint(buf, pos, end)
        pos += length
    else:
        raise InvalidInputError(f"request is not a valid protobuf message: wire type {wire_type}")
    if pos > end:
        raise InvalidInputError("request is not a valid protobuf message: truncated field")
    return pos


@dataclass
class RawTensor:
    """A ``TensorProto`` read in place: ``data`` is a view of the request's bytes."""

    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    data: memoryview | bytes = b""

    def merge(self, buf: memoryview) -> None:
        """Apply one serialized ``TensorProto`` (protobuf's merge: shapes append, the
        last dtype and data win)."""
        pos, end = 0, len(buf)
        while pos < end:
            number, wire_type, pos = _tag(buf, pos, end)
            if number == 1 and wire_type == _LEN:  # packed shape
                length, pos = _varint(buf, pos, end)
                stop = pos + length
                if stop > end:
                    raise InvalidInputError("TensorProto.shape is truncated")
                while pos < stop:
                    value, pos = _varint(buf, pos, stop)
                    self.shape.append(value - (1 << 64) if value >= 1 << 63 else value)
            elif number == 1 and wire_type == _VARINT:  # unpacked shape
                value, pos = _varint(buf, pos, end)
                self.shape.append(value - (1 << 64) if value >= 1 << 63 else value)
            elif number in (2, 3) and wire_type == _LEN:
                length, pos = _varint(buf, pos, end)
                if pos + length > end:
                    raise InvalidInputError("TensorProto is truncated")
                chunk = buf[pos : pos + length]
                pos += length
                if number == 3:
                    self.data = chunk
                else:
                    try:
                        self.dtype = str(chunk, "utf-8")
                    except UnicodeDecodeError:
                        raise InvalidInputError("TensorProto.dtype is not valid UTF-8") from None
            elif number in (1, 2, 3):
                raise InvalidInputError(f"TensorProto field {number} has the wrong wire type {wire_type}")
            else:
                pos = _skip(buf, pos, end, wire_type)


def split_fields(data: bytes, numbers: dict[int, str]) -> tuple[bytes, dict[int, RawTensor]]:
    """Cut the top-level fields ``numbers`` (tensors, number -> name) out of a message.

    Returns the bytes of every other field, for protobuf to parse, and a tensor per
    number that was present.
    """
    buf = memoryview(data)
    pos, end = 0, len(buf)
    rest: list[memoryview] = []
    kept_from = 0
    tensors: dict[int, RawTensor] = {}
    while pos < end:
        start = pos
        number, wire_type, pos = _tag(buf, pos, end)
        if number not in numbers:
            pos = _skip(buf, pos, end, wire_type)
            continue
        if wire_type != _LEN:
            raise InvalidInputError(
                f"field '{numbers[number]}': expected a TensorProto (wire type 2), got wire type {wire_type}"
            )
        length, pos = _varint(buf, pos, end)
        if pos + length > end:
            raise InvalidInputError("request is not a valid protobuf message: truncated field")
        tensors.setdefault(number, RawTensor()).merge(buf[pos : pos + length])
        rest.append(buf[kept_from:start])
        pos += length
        kept_from = pos
    if not tensors:
        return data, tensors
    rest.append(buf[kept_from:end])
    return b"".join(rest), tensors
