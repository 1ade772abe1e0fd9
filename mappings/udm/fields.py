"""A UDM's fields validated into a plain dict, as the UDM's model validates them, without making the model.

The import maps every record raw -> UDM -> app record, and the app mapping reads the UDM's fields from a dict.
Validating into the pydantic model, then copying its `__dict__`, cost about half of the mapping (a model
instance, two `__setattr__` in its after-validator, the copy). The same fields declared as a TypedDict (built
from the model's own `model_fields`, with its config) go through pydantic-core's compiled validator straight
to a dict, with the same coercions, defaults and errors; the model's after-validator runs on the dict.
A UDM with validators this module does not know is validated through its model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Annotated, Any, NotRequired, Required

from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

from mappings.udm.person import Person, complete_names

__all__ = ["FieldsValidator", "fields_validator"]

FieldsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]
"""Validates a UDM's fields; raises pydantic's ValidationError as the model would."""

# The after-validators this module can run on a dict, by the model that declares them.
_ON_DICT: dict[tuple[type[BaseModel] | None, str], Callable[[MutableMapping[str, Any]], None]] = {
    (Person, "_derive_names"): complete_names,
}


def fields_validator(model: type[BaseModel]) -> FieldsValidator:
    """A validator of `model`'s fields into a dict equal to `model.model_validate(fields).__dict__`."""
    decorators = model.__pydantic_decorators__
    afters = [name for name, d in decorators.model_validators.items() if d.info.mode == "after"]
    hooks = [_ON_DICT.get((_declaring(model, name), name)) for name in afters]
    others = len(decorators.model_validators) - len(afters)
    if others or decorators.field_validators or decorators.validators or None in hooks:
        return lambda fields: model.model_validate(fields).__dict__.copy()
    adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(_typed_dict(model))
    validate = adapter.validate_python
    complete = [hook for hook in hooks if hook is not None]

    def validated(fields: Mapping[str, Any]) -> dict[str, Any]:
        values = validate(fields)
        for hook in complete:
            hook(values)
        return values

    return validated


def _declaring(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The class in `model`'s bases that defines the validator `name`."""
    for cls in model.__mro__:
        if name in vars(cls) and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    return None


def _typed_dict(model: type[BaseModel]) -> Any:
    """`model`'s fields as a TypedDict with its config: required fields Required, the rest with their defaults."""
    fields = {
        name: (Required if info.is_required() else NotRequired)[Annotated[info.annotation, info]]
        for name, info in model.model_fields.items()
    }
    make: Any = TypedDict  # the functional form, with names known only at run time
    typed = make(f"{model.__name__}Fields", fields)
    typed.__pydantic_config__ = model.model_config
    return typed
