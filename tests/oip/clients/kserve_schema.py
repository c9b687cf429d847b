"""Run in kserve's own environment: check objects against the API types the ``kserve``
package generates from KServe's OpenAPI spec (``kserve.models``, with the Kubernetes
client's ``V1...`` types for the embedded pod fields), strictly: a field no type defines,
or a value of the wrong JSON type, is a problem.

python kserve_schema.py < [[TYPE, OBJECT], ...]   prints the problems, as a JSON list
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kserve
import kubernetes.client

#: kserve's generator writes list[X] and dict(str, X); the Kubernetes client's, List[X]
#: and Dict[str, X].
_LIST = re.compile(r"^[lL]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(\w+, (.+)\)|Dict\[\w+, (.+)\])$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
}


def _model(name: str) -> Any:
    for module in (kserve, kserve.models, kubernetes.client):
        found = getattr(module, name, None)
        if found is not None:
            return found
    raise LookupError(f"no API type {name}")


def check(kind: str, value: Any, path: str, problems: list[str]) -> None:
    if kind in _SCALARS:
        wanted = _SCALARS[kind]
        bad_bool = isinstance(value, bool) and bool not in wanted and kind != "object"
        if not isinstance(value, wanted) or bad_bool:
            problems.append(f"{path}: {value!r} is not {kind}")
        return
    if found := _LIST.match(kind):
        if not isinstance(value, list):
            problems.append(f"{path}: not a list ({kind})")
            return
        for i, item in enumerate(value):
            check(found[1], item, f"{path}[{i}]", problems)
        return
    if found := _DICT.match(kind):
        if not isinstance(value, dict):
            problems.append(f"{path}: not a map ({kind})")
            return
        for key, item in value.items():
            check(found[1] or found[2], item, f"{path}.{key}", problems)
        return
    model = _model(kind)
    if not isinstance(value, dict):
        problems.append(f"{path}: not an object ({kind})")
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: no such field in {kind}")
            continue
        check(model.openapi_types[by_json[key]], item, f"{path}.{key}", problems)


def main() -> list[str]:
    problems: list[str] = []
    for kind, obj in json.load(sys.stdin):
        check(kind, obj, kind, problems)
    return problems


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
