"""Request and webhook-body validation against LINE's own OpenAPI specs (line_openapi/).

The specs use OpenAPI 3.0 `discriminator` for polymorphic objects (Message, Action, Event, ...),
which plain JSON Schema ignores. We load each spec once, rewrite every discriminated base into a
dispatching schema (the base's own checks live on as `<Name>__base`, which the subtypes' `allOf`
now point at, so there is no recursion), and validate with a Draft 4 validator, the JSON Schema
dialect OpenAPI 3.0 is built on. Message sets repeat (the same question goes to many
residents), so results are cached per distinct body minus its volatile keys (reply token,
recipients): uncached, a reply with seven quick-reply items costs ~2 ms, cached ~0.02 ms. Below
the whole body, every object already found valid against a component (a message, a button) is
remembered and not descended into again: booking replies change a label or a number on every
step but repeat most of their parts (0.47 → 0.12 ms a reply over a booking rush's bodies).
openapi-core (a dependency) validates such a body about as fast but ignores `discriminator`, so
it accepts a text message without text or an unknown message type (bench/simulator_validation.py).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

SCHEMA_PREFIX = "#/components/schemas/"
# Valid values for volatile keys, so a cached check of the rest of a body cannot fail on them.
_STAND_INS: dict[str, Any] = {"replyToken": "x", "to": "U00000000000000000000000000000000"}


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of LINE's error `details` array."""

    message: str
    property: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "property": self.property}


def _discriminator(
    validator: Any, discriminator: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(instance, dict):
        return
    prop = discriminator["propertyName"]
    mapping: dict[str, str] = discriminator.get("mapping", {})
    value = instance.get(prop)
    if value is None:
        return  # `required` on the base reports the missing property
    target = mapping.get(value) if isinstance(value, str) else None
    if target is None:
        yield jsonschema.ValidationError(
            f"Must be one of the following values: [{', '.join(sorted(mapping))}]",
            path=[prop],
        )
        return
    yield from validator.descend(instance, {"$ref": target})


_MEMO_LIMIT = 100_000
"""Distinct (component, object) pairs remembered valid per spec (a few MB at most)."""


def _validator_class(valid: dict[tuple[str, str], None]) -> Any:
    """Draft 4 with `discriminator`, and a `$ref` that remembers which objects were valid.

    Whether an object is valid against a component depends only on the object and the
    component (Draft 4 ignores a `$ref`'s siblings, and every reference here points into the
    one document), so an object already found valid against a component is valid again, and
    a valid object produces no error whatever its place in the body. Booking replies rebuild
    most of their buttons and texts on every step (only a label's remaining places or the
    booking number change): those parts are checked once, not on every reply. Objects not
    (yet) known valid are descended into exactly as before, so every invalid body reports the
    same details as without the memo."""

    def ref(validator: Any, ref: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        if not isinstance(instance, dict):
            yield from validator._validate_reference(ref=ref, instance=instance)
            return
        key = (ref, json.dumps(instance, sort_keys=True, ensure_ascii=False))
        if key in valid:
            return
        errors = list(validator._validate_reference(ref=ref, instance=instance))
        if errors:
            yield from errors
            return
        if len(valid) >= _MEMO_LIMIT:
            valid.pop(next(iter(valid)))  # the oldest first
        valid[key] = None

    return validators.extend(
        jsonschema.Draft4Validator, {"discriminator": _discriminator, "$ref": ref}
    )


_PLAIN_KEYS = frozenset({"type", "description", "items", "minItems", "maxItems"})


def _plainly_valid(schema: dict[str, Any], value: Any) -> bool:
    """True when VALUE certainly satisfies SCHEMA, for the plain shapes of a volatile key: a
    string, or an array of them with item bounds (a multicast's `to`). Anything else (another
    keyword, a wrong type, an out-of-bounds length) answers False and is validated in full, so
    this only skips work for values that would produce no error. jsonschema walks a 500-id
    `to` item by item (3.3 ms of a multicast's ~5 ms in the simulator); this takes 0.02 ms."""
    if not schema.keys() <= _PLAIN_KEYS:
        return False
    kind = schema.get("type")
    if kind == "string":
        return isinstance(value, str)
    if kind != "array" or not isinstance(value, list):
        return False
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
        return False
    items = schema.get("items")
    if items == {"type": "string"}:
        return all(type(v) is str for v in value)
    return items is None


_ANNOTATIONS = frozenset(
    {"description", "externalDocs", "format", "default", "example", "nullable", "title"}
)
"""Keywords the Draft 4 validator ignores here (annotations; `format` without a checker) — a
`x-…` extension is ignored too."""
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _component(schemas: dict[str, Any], ref: Any) -> dict[str, Any] | None:
    """The schema a `#/components/schemas/…` reference names (None for any other reference)."""
    if not isinstance(ref, str) or not ref.startswith(SCHEMA_PREFIX):
        return None
    found = schemas.get(ref[len(SCHEMA_PREFIX) :])
    return found if isinstance(found, dict) else None


def _surely_valid(
    schemas: dict[str, Any], schema: dict[str, Any], value: Any, seen: set[tuple[int, int]]
) -> bool:
    """True only when VALUE certainly satisfies SCHEMA (Draft 4 with `discriminator`, references
    into SCHEMAS): a plain recursive walk over the keywords LINE's messaging spec uses. Any
    other keyword, a type it does not model exactly (a bool where a number is asked, a float
    for an integer), or any failed check answers False, and the body is then validated by
    jsonschema as before, which reports the details. So it only skips work for bodies that
    produce no error: a booking reply whose labels changed costs ~0.1 ms here instead of
    jsonschema's descent into every changed button. SEEN holds the (schema, value) pairs of
    this body already found valid (by id: the body is alive for the whole walk): a discriminated
    object meets its base's properties twice, through the base and through the subtype."""
    if type(value) is not dict:
        return _walk(schemas, schema, value, seen)  # cheap to check again
    pair = (id(schema), id(value))
    if pair in seen:
        return True
    if not _walk(schemas, schema, value, seen):
        return False
    seen.add(pair)
    return True


def _walk(
    schemas: dict[str, Any], schema: dict[str, Any], value: Any, seen: set[tuple[int, int]]
) -> bool:
    ref = schema.get("$ref")
    if ref is not None:  # Draft 4: a `$ref` replaces its siblings
        target = _component(schemas, ref)
        return target is not None and _surely_valid(schemas, target, value, seen)
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "type":
            kinds = _PY_TYPES.get(expected) if isinstance(expected, str) else None
            if kinds is None or type(value) not in kinds:
                return False  # also a bool for an integer: jsonschema's rule, not type()'s
        elif keyword == "properties":
            if isinstance(value, dict):
                for name, sub in expected.items():
                    if name in value and not _surely_valid(schemas, sub, value[name], seen):
                        return False
        elif keyword == "required":
            if isinstance(value, dict) and not all(name in value for name in expected):
                return False
        elif keyword == "allOf":
            if not all(_surely_valid(schemas, sub, value, seen) for sub in expected):
                return False
        elif keyword == "items":
            if isinstance(value, list):
                if not isinstance(expected, dict):
                    return False
                if not all(_surely_valid(schemas, expected, item, seen) for item in value):
                    return False
        elif keyword == "enum":
            if not any(type(v) is type(value) and v == value for v in expected):
                return False
        elif keyword in ("maxLength", "minLength", "maxItems", "minItems"):
            if isinstance(value, str if keyword.endswith("Length") else list) and not (
                len(value) <= expected if keyword.startswith("max") else len(value) >= expected
            ):
                return False
        elif keyword in ("maximum", "minimum"):
            if "exclusiveMaximum" in schema or "exclusiveMinimum" in schema:
                return False
            if type(value) in (int, float) and not (
                value <= expected if keyword == "maximum" else value >= expected
            ):
                return False
        elif keyword == "pattern":
            if isinstance(value, str) and not re.search(expected, value):
                return False
        elif keyword == "discriminator":
            if isinstance(value, dict):
                tag = value.get(expected["propertyName"])
                if tag is not None:
                    target = expected.get("mapping", {}).get(tag) if isinstance(tag, str) else None
                    sub = _component(schemas, target)
                    if sub is None or not _surely_valid(schemas, sub, value, seen):
                        return False
        elif not keyword.startswith("x-"):
            return False  # not modelled here: jsonschema decides
    return True


def _rewrite_discriminators(schemas: dict[str, Any]) -> dict[str, Any]:
    schemas = copy.deepcopy(schemas)
    for name, schema in list(schemas.items()):
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if not disc:
            continue
        base = {k: v for k, v in schema.items() if k != "discriminator"}
        schemas[f"{name}__base"] = base
        for target in disc.get("mapping", {}).values():
            sub = schemas.get(target.removeprefix(SCHEMA_PREFIX))
            for part in (sub or {}).get("allOf", []):
                if part.get("$ref") == SCHEMA_PREFIX + name:
                    part["$ref"] = f"{SCHEMA_PREFIX}{name}__base"
    return schemas


def _property_path(path: Any) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message_for(error: jsonschema.ValidationError) -> str:
    # LINE's own wording for the common cases; the raw jsonschema text otherwise.
    if error.validator == "required":
        return "Must not be null"
    if error.validator == "maxItems":
        return f"Size must be between {error.schema.get('minItems', 0)} and {error.validator_value}"
    if error.validator == "minItems":
        return f"Size must be between {error.validator_value} and {error.schema.get('maxItems')}"
    if error.validator == "maxLength":
        return f"Length must be between 0 and {error.validator_value}"
    if error.validator == "enum":
        return f"Must be one of the following values: {error.validator_value}"
    return str(error.message)


class Spec:
    """One loaded OpenAPI document; `validate(schema_name, body)` lists LINE-style details."""

    def __init__(self, document: dict[str, Any], *, memo: bool = True) -> None:
        """MEMO: remember the objects found valid (see `_validator_class`) and pass plainly
        valid bodies without jsonschema (`_surely_valid`); off, every body is validated in
        full (tests compare both)."""
        self.document = document
        self._shortcuts = memo
        self.schemas = _rewrite_discriminators(document["components"]["schemas"])
        self._validators: dict[str, Any] = {}
        self._cache: dict[tuple[str, tuple[str, ...], str], list[ErrorDetail]] = {}
        self._property_validators: dict[int, Any] = {}  # keyed by id() of a schema in self.schemas
        self._valid: dict[tuple[str, str], None] = {}  # (component ref, object JSON) known valid
        self._validator_cls = (
            _validator_class(self._valid)
            if memo
            else validators.extend(jsonschema.Draft4Validator, {"discriminator": _discriminator})
        )

    def validator(self, schema_name: str) -> Any:
        found = self._validators.get(schema_name)
        if found is None:
            if schema_name not in self.schemas:
                raise KeyError(schema_name)
            root = {"$ref": SCHEMA_PREFIX + schema_name, "components": {"schemas": self.schemas}}
            found = self._validator_cls(root)
            self._validators[schema_name] = found
        return found

    def validate(
        self, schema_name: str, body: Any, volatile: tuple[str, ...] = ()
    ) -> list[ErrorDetail]:
        """LINE-style error details for `body` against component `schema_name`.

        Keys named in `volatile` (reply tokens, recipients) change on every request while the
        rest (the messages) repeats; the rest is validated once per distinct value and cached,
        the volatile keys are checked on their own against their property schemas.
        """
        if not volatile or not isinstance(body, dict):
            if self._shortcuts and self._surely_valid(schema_name, body):
                return []
            return self._validate_now(schema_name, body)
        rest = {k: v for k, v in body.items() if k not in volatile}
        # Which volatile keys are present is part of the key: a body without its reply token
        # must not pass because the same messages once came with one (it did before).
        present = tuple(k for k in volatile if k in body)
        key = (schema_name, present, json.dumps(rest, sort_keys=True, ensure_ascii=False))
        cached = self._cache.get(key)
        if cached is None:
            props = self.schemas[schema_name].get("properties", {})
            stand_ins = {
                k: [_STAND_INS[k]] if props.get(k, {}).get("type") == "array" else _STAND_INS[k]
                for k in volatile
                if k in body
            }
            whole = {**rest, **stand_ins}
            if self._shortcuts and self._surely_valid(schema_name, whole):
                cached = []
            else:
                cached = self._validate_now(schema_name, whole)
            if len(self._cache) >= 4096:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = cached
        details = list(cached)
        properties = self.schemas[schema_name].get("properties", {})
        for name in volatile:
            if name in body and name in properties:
                for detail in self._validate_now_schema(properties[name], body[name]):
                    prop = name + (
                        detail.property
                        if detail.property.startswith("[")
                        else ("." + detail.property if detail.property else "")
                    )
                    details.append(ErrorDetail(detail.message, prop))
        return details

    def _surely_valid(self, schema_name: str, body: Any) -> bool:
        """A valid body needs no jsonschema at all (see `_surely_valid`)."""
        try:
            root = self.schemas.get(schema_name)
            return isinstance(root, dict) and _surely_valid(self.schemas, root, body, set())
        except RecursionError:
            return False

    def _validate_now_schema(self, schema: dict[str, Any], value: Any) -> list[ErrorDetail]:
        if _plainly_valid(schema, value):
            return []
        validator = self._property_validators.get(id(schema))
        if validator is None:
            validator = self._validator_cls({**schema, "components": {"schemas": self.schemas}})
            self._property_validators[id(schema)] = validator
        return self._details(validator.iter_errors(value))

    def _validate_now(self, schema_name: str, body: Any) -> list[ErrorDetail]:
        return self._details(self.validator(schema_name).iter_errors(body))

    @staticmethod
    def _details(errors_iter: Iterator[jsonschema.ValidationError]) -> list[ErrorDetail]:
        errors = sorted(errors_iter, key=lambda e: list(map(str, e.path)))
        details: list[ErrorDetail] = []
        for error in errors:
            path = list(error.absolute_path)
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                path.append(missing)
            details.append(ErrorDetail(_message_for(error), _property_path(path)))
        return list(dict.fromkeys(details))  # a discriminated subtype can report twice

    def paths(self) -> dict[str, Any]:
        paths: dict[str, Any] = self.document.get("paths", {})
        return paths


def _load(filename: str) -> dict[str, Any]:
    text = resources.files("kairand.simulator").joinpath("line_openapi", filename).read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # a safe loader, C if available
    document: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506
    return document


@functools.cache
def messaging_spec() -> Spec:
    return Spec(_load("messaging-api.yml"))


@functools.cache
def webhook_spec() -> Spec:
    return Spec(_load("webhook.yml"))
