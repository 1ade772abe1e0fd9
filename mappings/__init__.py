"""Field mappings: UDMs, the sandboxed expression engine and the mapping layers."""

from mappings.engine import CompiledMapping, compile_expression, compile_mapping
from mappings.errors import MappingError, RecordError, TemplateError
from mappings.loader import effective_mapping, read_layer
from mappings.pipeline import RecordMapper

__all__ = [
    "CompiledMapping",
    "MappingError",
    "RecordError",
    "RecordMapper",
    "TemplateError",
    "compile_expression",
    "compile_mapping",
    "effective_mapping",
    "read_layer",
]
