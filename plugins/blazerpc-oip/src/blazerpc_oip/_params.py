"""The request parameters this server reads: ``timeout`` and ``priority`` (set by
``tritonclient``), and ``triton_enable_empty_final_response`` on streams."""

from __future__ import annotations

from typing import Any

from blazerpc import InvalidInputError

__all__ = ["Parameters"]


def _number(name: str, parameter: Any) -> int:
    choice = parameter.WhichOneof("parameter_choice")
    if choice not in ("int64_param", "uint64_param"):
        raise InvalidInputError(f"parameter {name!r} must be an int64 or uint64, got {choice or 'no value'}")
    value: int = getattr(parameter, choice)
    if value < 0:
        raise InvalidInputError(f"parameter {name!r} must be >= 0, got {value}")
    return value


class Parameters:
    """What a ``ModelInferRequest``'s parameters ask of this call.

    ``timeout``: seconds (the parameter is in microseconds; 0 or absent: none).
    ``priority``: checked to be an unsigned number; every request has one level here
    (the model's config declares no priority levels, and Triton then treats all alike).
    """

    __slots__ = ("empty_final", "priority", "timeout")

    def __init__(self, parameters: Any) -> None:
        self.timeout: float | None = None
        self.priority = 0
        self.empty_final = False
        if not parameters:
            return
        if "timeout" in parameters:
            micros = _number("timeout", parameters["timeout"])
            self.timeout = micros / 1e6 if micros else None
        if "priority" in parameters:
            self.priority = _number("priority", parameters["priority"])
        flag = parameters.get("triton_enable_empty_final_response")
        if flag is not None:
            if flag.WhichOneof("parameter_choice") != "bool_param":
                raise InvalidInputError("parameter 'triton_enable_empty_final_response' must be a bool")
            self.empty_final = flag.bool_param
