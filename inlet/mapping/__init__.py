"""Field mappings as the runtime sees them: the layers kept in the store and the team's app schemas."""

from inlet.mapping.app_schemas import fetch_schema, schema_for
from inlet.mapping.layers import Change, build_mapper, check_change, mapping_for, reset, save, stored_layers

__all__ = [
    "Change",
    "build_mapper",
    "check_change",
    "fetch_schema",
    "mapping_for",
    "reset",
    "save",
    "schema_for",
    "stored_layers",
]
