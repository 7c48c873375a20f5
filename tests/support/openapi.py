"""OpenAI's own OpenAPI description, loaded once, as JSON Schema validators for its components.

The description is OpenAPI 3.1, whose schemas are JSON Schema 2020-12, with one 3.0 leftover:
`nullable: true` on a few fields, which 2020-12 ignores; it is rewritten into `anyOf [..., null]`.
`discriminator` is left as the annotation it is in 2020-12: every `oneOf` it sits on has branches
told apart by their `type` enum already, so validation does not need it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# In CI the repository is cloned with shared/ beside it: /work/main and /work/shared here.
SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "openai-openapi.yaml"
SPEC_URI = "urn:openai-openapi"  # the base that the document's "#/components/..." refs resolve on

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster on 3 MB


@cache
def _document() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"OpenAI's OpenAPI description is missing: expected it at {SPEC_PATH} "
            "(the shared/ folder cloned beside the repository); contract tests need it"
        )
    with SPEC_PATH.open("rb") as spec:
        document: dict[str, Any] = yaml.load(spec, Loader=_Loader)
    return _without_nullable(document)


def _without_nullable(node: Any) -> Any:
    """The tree with every `nullable: true` schema turned into `anyOf: [schema, null]`."""
    if isinstance(node, list):
        return [_without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    nullable = node.get("nullable")
    if not isinstance(nullable, bool):  # absent, or a property that happens to be named so
        return {key: _without_nullable(value) for key, value in node.items()}
    schema = {key: _without_nullable(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema


@cache
def _registry() -> Registry[Any]:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<schema_name>`, its refs resolved in the document."""
    if schema_name not in _document()["components"]["schemas"]:
        raise KeyError(f"{SPEC_PATH.name} has no component schema named {schema_name!r}")
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


def violations(schema_name: str, instance: Any) -> list[str]:
    """Every way the instance breaks the named schema, one readable line each (none if valid)."""
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: e.json_path)
    return [line for error in errors for line in _describe(error)]


def _describe(error: ValidationError, depth: int = 0) -> list[str]:
    indent = "    " * depth
    lines = [f"{indent}{error.json_path}: {error.message} (schema: {_schema_path(error)})"]
    for sub in error.context or ():  # why each branch of an anyOf / oneOf did not match
        lines.extend(_describe(sub, depth + 1))
    return lines


def _schema_path(error: ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_schema_path)
