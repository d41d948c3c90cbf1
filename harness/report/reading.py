"""Reading a report.json or farm.json back (report.diff, deploy and farm.run --baseline, history import).

One reader for all of them: the file is read as edgeloop reads every file it is given (deploy.yamlnode:
size, UTF-8, nesting depth, duplicate keys, NaN refused) and checked against report.schema.json before
any field is used, so a hand-edited or damaged report is one line naming the field, never a traceback.
Reports of any earlier schema version are read (docs/report-schema.md): the check is the schema's types
with only the keys every version had required; a version newer than this edgeloop's is refused.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from deploy.yamlnode import load_json
from harness.report.document import SCHEMA_VERSION, schema

FARM_KIND, FARM_SCHEMA_VERSION = "edgeloop-farm", 1  # farm.json's `kind` and farm.schema.json's version
JOB_KEYS = ["model", "profile", "runtime", "status"]  # what every version's results have
HINT = "give a report.json or farm.json written by edgeloop; docs/report-schema.md"


def _open(node: Any) -> Any:
    """`node` with its types only: no key required or forbidden and no rule between fields (what older
    versions lack or had is not an error), and an integer's type a number's (the writer's check,
    jsonschema, lets 2048.0 be an integer)."""
    if isinstance(node, dict):
        return {k: "number" if (k, v) == ("type", "integer") else _open(v) for k, v in node.items()
                if k not in ("required", "if", "then", "else") and not (k == "additionalProperties" and v is False)}
    if isinstance(node, list):
        return [_open(v) for v in node]
    return node


@functools.cache
def reading_schema() -> dict[str, Any]:
    """report.schema.json's types for every schema version, farm.json's results included (the same jobs)."""
    defs = _open(copy.deepcopy(schema()["$defs"]))
    defs["result"]["required"] = JOB_KEYS
    return {"type": "object", "required": ["results"], "$defs": defs,
            "properties": {"schema_version": {"type": "integer", "minimum": 1}, "kind": {"type": "string"},
                           "created": {"type": "string"},
                           "results": {"type": "array", "items": {"$ref": "#/$defs/result"}}}}


def read_report(path: Path) -> dict[str, Any]:
    """The document of a report.json or farm.json, checked before use; else one EdgeloopError line."""
    try:
        document = load_json(Path(path), "report", reading_schema())
    except EdgeloopError as exc:
        raise EdgeloopError(exc.message, exc.hint or HINT) from None
    farm = document.get("kind") == FARM_KIND
    newest = FARM_SCHEMA_VERSION if farm else SCHEMA_VERSION
    version = document.get("schema_version", 1)
    if version > newest:
        raise EdgeloopError(f"{path} was written by a newer edgeloop (schema_version {version}; this one reads "
                            f"{'farm.json' if farm else 'report.json'} up to {newest})", "upgrade edgeloop to read it")
    return document
