"""Field mappings: UDMs, the sandboxed expression engine, the mapping layers and app schemas."""

from mappings.budget import MappingBudget
from mappings.engine import CompiledMapping, compile_expression, compile_mapping
from mappings.errors import BudgetExceeded, MappingError, RecordError, SchemaMismatch, TemplateError
from mappings.loader import Layer, effective_mapping, layer_from_document, merge, read_layer
from mappings.pipeline import RecordMapper
from mappings.schema import AppSchema, read_schema

__all__ = [
    "AppSchema",
    "BudgetExceeded",
    "CompiledMapping",
    "Layer",
    "MappingBudget",
    "MappingError",
    "RecordError",
    "RecordMapper",
    "SchemaMismatch",
    "TemplateError",
    "compile_expression",
    "compile_mapping",
    "effective_mapping",
    "layer_from_document",
    "merge",
    "read_layer",
    "read_schema",
]
