"""ONNX models (protobuf, no code): checked for external data, custom domains and local functions,
then converted to PyTorch modules by onnx2torch."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from typing import Any

from torch import nn

from ..errors import ModelLoadError
from ..errors import first_line as _first_line
from .detect import _corrupt

__all__ = ["ONNX_DOMAINS"]

#: ONNX operator domains accepted (the standard operator set); custom domains are refused.
ONNX_DOMAINS = ("", "ai.onnx")


def _onnx_graphs(graph: Any) -> Iterable:
    """The graph and every subgraph (If / Loop / Scan bodies) inside it."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _onnx_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _onnx_graphs(g)


def _load_onnx(data: bytes, name: str, detected: tuple[str, str] | None, info: dict) -> nn.Module:
    """Parse an ONNX model (protobuf only: no code) and convert it with onnx2torch.

    Refused before conversion: tensors stored as external data (they name files to read),
    operators outside the standard domains, model-local functions. onnx2torch then builds ordinary
    PyTorch modules from its own table of converters; an operator (or operator-set version) it has
    no converter for is refused by name.
    """
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:  # pragma: no cover - both are dependencies of the project
        raise ModelLoadError(f"ONNX support needs the packages onnx and onnx2torch ({_first_line(exc)})") from exc
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise _corrupt(name, "onnx", exc, detected) from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelLoadError(f"{name!r} is not an ONNX model with a graph (it parsed as an empty ModelProto)")
    if model.functions:
        raise ModelLoadError(
            f"refusing {name!r}: it defines model-local ONNX functions "
            f"({', '.join(f.name for f in model.functions)[:200]}); export without them"
        )
    op_types: set[str] = set()
    for g in _onnx_graphs(model.graph):
        for t in list(g.initializer) + [a.t for n in g.node for a in n.attribute if a.HasField("t")]:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise ModelLoadError(
                    f"refusing {name!r}: tensor {t.name!r} is stored as external data (a file path); upload one "
                    "self-contained .onnx (onnx.save_model(m, f, save_as_external_data=False))"
                )
        for node in g.node:
            if node.domain not in ONNX_DOMAINS:
                raise ModelLoadError(
                    f"refusing {name!r}: it uses operator {node.op_type!r} of the custom domain "
                    f"{node.domain!r}; only the standard ONNX operator set is accepted"
                )
            op_types.add(node.op_type)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = convert(model)
    except NotImplementedError as exc:
        m = re.search(r"operation_type='(\w+)', version=(\d+)", str(exc))
        what = f"operator {m.group(1)!r} at operator-set version {m.group(2)}" if m else _first_line(exc)
        raise ModelLoadError(
            f"refusing {name!r}: onnx2torch has no converter for {what}; only operators of its table can be "
            "loaded (exporting with an older opset, e.g. torch.onnx.export(..., opset_version=17), often helps)"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"could not convert the ONNX model {name!r} to PyTorch: {_first_line(exc)}") from exc
    info["onnx_operators"] = sorted(op_types)
    info["onnx_opset"] = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    return module
