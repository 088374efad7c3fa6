"""TorchScript modules as fx graphs of ATen operators, so that :mod:`geometry.lipschitz` can bound them.

The module is frozen (``torch.jit.freeze(..., optimize_numerics=False)``: attributes become
constants, branches on them are folded, the forward is inlined) and its graph is rewritten node by
node: ``aten::`` nodes become ``call_function`` nodes of the same ATen overload, tensor constants
(the weights) ``get_attr`` nodes of buffers named like the parameters (``conv1.weight``), other
constants and ``prim::ListConstruct`` of constants Python values. Any other node (control flow,
``aten::size``, tuples …) raises :class:`~geometry.lipschitz.UnsupportedLayerError` naming it.
"""

from __future__ import annotations

import re

import torch
from torch import fx, nn

__all__ = ["script_to_fx"]


def _set_buffer(root: nn.Module, path: str, value: torch.Tensor) -> None:
    *parents, leaf = path.split(".")
    module = root
    for part in parents:
        if not hasattr(module, part):
            module.add_module(part, nn.Module())
        module = getattr(module, part)
    module.register_buffer(leaf, value.detach().clone())


def _overload(node: torch._C.Node) -> torch._ops.OpOverload:
    """The ATen overload a TorchScript node calls, from its schema (``aten::add.Tensor(...)``)."""
    schema = node.schema()
    name = schema.split("(", 1)[0].split("::", 1)[1] if "::" in schema else node.kind()[6:]
    packet, _, overload = name.partition(".")
    return getattr(getattr(torch.ops.aten, packet), overload or "default")


def script_to_fx(script: torch.jit.ScriptModule, error: type[Exception]) -> fx.GraphModule:
    """An fx GraphModule of ATen operators computing the same function as ``script`` (one tensor in,
    one tensor out).

    Parameters
    ----------
    script : torch.jit.ScriptModule in eval mode
    error : the exception class raised for a node that cannot be converted (the message names it)

    Returns
    -------
    fx.GraphModule — weights as buffers under their parameter names.
    """
    try:
        frozen = torch.jit.freeze(script, optimize_numerics=False)
    except Exception as exc:
        raise error(f"cannot freeze the TorchScript module to read its graph ({str(exc).splitlines()[0]})") from exc
    graph = frozen.graph
    root = nn.Module()
    g = fx.Graph()
    inputs = list(graph.inputs())
    if len(inputs) != 2:
        raise error(f"the TorchScript module takes {len(inputs) - 1} inputs: only one image tensor is bounded")
    env: dict = {inputs[1].unique(): g.placeholder("x")}
    names: set[str] = set()
    for i, node in enumerate(graph.nodes()):
        kind = node.kind()
        outs = list(node.outputs())
        if kind == "prim::Constant":
            value = outs[0].toIValue()
            if isinstance(value, torch.Tensor):
                parts = [re.sub(r"\W", "_", q) for q in outs[0].debugName().removeprefix("self.").split(".")]
                name = ".".join(q if q and not q[0].isdigit() else f"c{q}" for q in parts)
                if name in names:
                    name = f"_constant{i}"
                names.add(name)
                _set_buffer(root, name, value)
                env[outs[0].unique()] = g.get_attr(name)
            else:
                env[outs[0].unique()] = value
        elif kind == "prim::ListConstruct":
            env[outs[0].unique()] = [env[v.unique()] for v in node.inputs()]
        elif kind.startswith("aten::"):
            try:
                op = _overload(node)
            except (AttributeError, RuntimeError) as exc:
                raise error(f"cannot bound the TorchScript node {kind}: no ATen operator for it") from exc
            args: list = []
            kwargs: dict = {}
            for a, v in zip(op._schema.arguments, node.inputs(), strict=False):
                if a.kwarg_only:
                    kwargs[a.name] = env[v.unique()]
                else:
                    args.append(env[v.unique()])
            if len(outs) != 1:
                raise error(f"cannot bound the TorchScript node {kind}: it has {len(outs)} outputs")
            env[outs[0].unique()] = g.call_function(op, tuple(args), kwargs)
        else:
            raise error(
                f"cannot bound the TorchScript node {kind} (graph value %{outs[0].debugName() if outs else '?'})"
            )
    result = list(graph.outputs())
    if len(result) != 1 or not isinstance(env.get(result[0].unique()), fx.Node):
        raise error("the TorchScript module does not return a single tensor")
    g.output(env[result[0].unique()])
    return fx.GraphModule(root, g)
