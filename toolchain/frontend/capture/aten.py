"""Reading core-ATen graph nodes: arguments by schema name, the module that owns a node, refusals."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from ...errors import ConversionError


def bind(node: fx.Node) -> dict[str, Any]:
    """The node's arguments by their schema names, defaults filled in (export omits trailing defaults)."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return {}
    out: dict[str, Any] = {}
    for i, argument in enumerate(schema.arguments):
        if i < len(node.args):
            out[argument.name] = node.args[i]
        elif argument.name in node.kwargs:
            out[argument.name] = node.kwargs[argument.name]
        else:
            out[argument.name] = argument.default_value if argument.has_default_value() else None
    return out


@dataclass(frozen=True)
class Owner:
    """The module a graph node came from: its path in the model (``""``: the model's own forward) and type."""

    path: str
    type_name: str

    @classmethod
    def of(cls, node: fx.Node) -> Owner:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return cls("", "")
        path, kind = list(stack.values())[-1]
        name = f"{kind.__module__}.{kind.__qualname__}" if isinstance(kind, type) else str(kind)
        return cls(path or "", name)

    @property
    def short_type(self) -> str:
        return self.type_name.rsplit(".", 1)[-1] or "function"

    def describe(self) -> str:
        return f"{self.path or '<top level>'} ({self.short_type})"


def op_name(node: fx.Node) -> str:
    """``convolution`` for ``aten.convolution.default``: the operator's short name."""
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def refusal(node: fx.Node, reason: str, fix: str) -> ConversionError:
    """One line naming the module, its type, the graph node and operator, why, and what to change."""
    return ConversionError(f"{Owner.of(node).describe()} at graph node {node.name} [{node.target}]: {reason}; {fix}")


def argument(node: fx.Node, index: int = 0) -> fx.Node:
    """The node's ``index``-th argument, which must be another node (a tensor value)."""
    value = node.args[index] if index < len(node.args) else None
    if not isinstance(value, fx.Node):
        raise refusal(node, f"argument {index} is not a tensor of the graph", "pass tensors between layers")
    return value


def shape_of(node: fx.Node) -> tuple[int, ...]:
    """The static shape export recorded for a node's value."""
    value = node.meta.get("val")
    if isinstance(value, list | tuple) and value:
        value = value[0]               # the main output of a tuple-valued op (max_pool2d_with_indices)
    if value is None or not hasattr(value, "shape"):
        raise refusal(node, "its value has no recorded shape", "export the model with torch.export.export")
    return tuple(int(s) for s in value.shape)
