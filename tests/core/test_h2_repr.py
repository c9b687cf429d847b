"""blazerpc._h2's DATA frame repr is the text hyperframe would have made, without
copying and hex-encoding the whole payload."""

from __future__ import annotations

import os

import pytest
from hyperframe.frame import DataFrame, Frame

from blazerpc._h2 import _body_repr, install


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 12, 100, 70_000])
@pytest.mark.parametrize("padding", [None, 0, 1, 3, 20])
def test_same_text_as_hyperframe(size: int, padding: int | None) -> None:
    frame = DataFrame(1, data=os.urandom(size))
    if padding is not None:
        frame.flags.add("PADDED")
        frame.pad_length = padding
    assert _body_repr(frame) == Frame._body_repr(frame)


def test_a_memoryview_payload_is_shown_the_same() -> None:
    frame = DataFrame(3, data=memoryview(bytes(range(40))))
    assert _body_repr(frame) == Frame._body_repr(DataFrame(3, data=bytes(range(40))))


def test_installed_it_is_the_repr_of_data_frames() -> None:
    install()
    frame = DataFrame(5, data=b"\x00" * (4 * 1024 * 1024))
    assert repr(frame) == "DataFrame(stream_id=5, flags=[]): <hex:00000000000000000000...>"
