"""The one spelling of a JSON object as Python holds it, for the places where JSON is read
or written (result.json, inputs.json, a cache entry's manifest, QMP, a snapshot's
metadata): anything past those places is a typed value (a dataclass, a TypedDict, an
enum), so that an untyped dict never travels through the rig."""

from __future__ import annotations

from typing import Any, TypeAlias

JsonObject: TypeAlias = dict[str, Any]
