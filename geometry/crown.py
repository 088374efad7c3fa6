"""Local certificates by linear bound propagation (CROWN): a sound lower bound of every margin over a ball.

CROWN (Zhang, Weng, Chen, Hsieh, Daniel, "Efficient Neural Network Robustness Certification with
General Activation Functions", NeurIPS 2018, Thm. 3.2 and §3.3) bounds ``c·f(x')`` over an input
ball ``‖x' − x‖_p ≤ ε`` by walking the network *backwards* from the specification ``c`` and
replacing every nonlinearity by a pair of linear bounds valid on its input interval:

* affine layers pass the linear coefficients back exactly (``Λ ← Λ A``, constant ``+= Λ b``);
* a ReLU with pre-activation bounds ``l < 0 < u`` (unstable) is bounded above by the chord
  ``u (z − l) / (u − l)`` and below by ``α z`` with CROWN's adaptive slope ``α = 1`` if ``u ≥ −l``
  else ``0`` (§3.3; the same choice as auto_LiRPA's default); stable neurons are exact;
* max pooling with window inputs in ``[l, u]``: below by the input with the largest lower bound,
  above by the window's largest upper bound (a constant) — both linear, so sound but loose; a
  window whose winner is decided (its lower bound ≥ every other upper bound) is exact;
* at the input, Hölder's inequality closes the bound: ``min_{‖δ‖_p ≤ ε} Λ·(x + δ) = Λ·x − ε‖Λ‖_q``
  with the dual norm ``q`` (ℓ2 → ℓ2, ℓ∞ → ℓ1).

The specification is ``f_y − f_k`` for every class ``k`` (:func:`crown_margin_bounds`); the
certified radius (:func:`crown_radius`) is the largest ε at which every one of these lower bounds
is positive, found by bisection on ε (each step a full bound computation: intermediate bounds depend
on ε). No input box ([0, 1] pixels) is imposed: the ball alone is a larger set, so the radius stays
sound for attacks that keep to the box.

**Intermediate bounds** (the ``l, u`` of every ReLU / max-pool input) are the intersection of interval
bound propagation (IBP, Gowal et al. 2018: always computed, cheap, loose) and CROWN itself run
backwards from that layer — the latter for layers of at most ``crown_neurons`` neurons (default
:data:`CROWN_NEURONS`), so that small networks (the digits zoo, the 2-D toys) get full CROWN and a
wide convolutional layer falls back to IBP alone (the "CROWN-IBP" setting of Zhang et al., ICLR
2020). ``intermediate="ibp"`` forces IBP everywhere, ``"crown"`` raises the limit to every layer.

The network is read with the same tracer as :mod:`geometry.lipschitz` (torch.fx; exported programs
and TorchScript modules inlined as ATen graphs), and the same layers are handled: Linear, Conv2d,
batch norm in eval mode, normalisation, ReLU, max / average / adaptive-average pooling, flatten
and other reshapes, dropout in eval mode, residual ``add`` / ``sub``, ``cat``, ``mean``, scaling
by constants. Anything else (other activations, a product of two input-dependent tensors …) raises
:class:`~geometry.lipschitz.UnsupportedLayerError` naming the layer. All arithmetic is float64 on
the CPU (a float64 copy of the weights; the user's model is untouched).
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from .classifier import Classifier, Normalize
from .errors import InvalidInputError
from .lipschitz import UnsupportedLayerError, _is_exported, _is_graph_leaf, _trace

__all__ = ["CROWN_NEURONS", "CrownNetwork", "crown_margin_bounds", "crown_radius"]

#: largest layer (neurons) whose intermediate bounds are computed by CROWN; wider layers use IBP
CROWN_NEURONS = 4096
_BUDGET = 2**24  # float64 entries of one backward pass's coefficient tensor (128 MiB), batches split above it
_DENSE = 2**20  # a convolution whose dense matrix has at most this many entries passes Λ back by a matmul with it
_PREFIX_BUDGET = 2**22  # float64 entries of a first layer's matrix A kept for its Hölder bounds (32 MiB)
_NORMS = ("l2", "linf")

_RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze"}
_IDENTITY_METHODS = {"contiguous", "clone", "to", "float", "double", "detach"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_ATEN_RESHAPE = {"view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze"}
_ATEN_IDENTITY = {"clone", "contiguous", "alias", "detach", "_to_copy", "to", "lift_fresh_copy"}
_ATEN_NONNEG = {  # linear maps with nonnegative coefficients: |A| r = A r
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "mean",
    "cat",
    "permute",
    "transpose",
    "t",
    "slice",
    "select",
}
_ATEN_CONV = {"conv2d", "convolution", "_convolution", "linear"}
_ATEN_BN = {"batch_norm", "_native_batch_norm_legit_no_training"}
_SHAPE_ONLY = {"size", "sym_size", "dim"}


@dataclass
class _Op:
    """One input-dependent node of the network, in execution order.

    kind : "input", "affine", "relu" or "maxpool"
    parents : indices (into the op list) of the input-dependent arguments
    shape : the output shape without the batch dimension
    fn : affine ops — the map itself, batch first, ``fn(*parent values)``
    absfn : affine ops — ``|A|`` applied to nonnegative radii of the parents (IBP)
    pool : maxpool ops — (kernel, stride, padding)
    back : affine ops whose transpose is known in closed form — ``Λ ↦ Λ A`` for coefficient rows
        ``Λ`` (N, *shape) and the parents' shapes, giving one (N, *parent shape) tensor per parent
        (a matmul with the weight or with a small op's dense matrix, ``conv_transpose2d``, a per-channel
        scale, a reshape); None: the vmapped autograd vjp of ``fn``
    """

    name: str
    kind: str
    parents: tuple[int, ...]
    shape: tuple[int, ...]
    fn: Callable[..., torch.Tensor] | None = None
    absfn: Callable[..., torch.Tensor] | None = None
    pool: tuple | None = None
    back: Callable[[torch.Tensor, list[tuple[int, ...]]], tuple[torch.Tensor, ...]] | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class CrownNetwork:
    """A network read into CROWN's layer list once, bounded at many points and radii.

    Parameters
    ----------
    model : nn.Module or Classifier (its ``network``, normalisation included) mapping a batch of
        inputs of ``input_shape`` to logits (B, K)
    input_shape : the input shape without the batch dimension, e.g. (1, 8, 8) or (2,)
    intermediate : "auto" (CROWN for layers of at most ``crown_neurons`` neurons, IBP beside it),
        "crown" (CROWN for every layer) or "ibp" (IBP only: CROWN-IBP)
    crown_neurons : the "auto" limit
    backward : "direct" (default): coefficients pass back through Linear / Conv2d / batch norm /
        reshapes / ``±`` by their closed-form transposes (a matmul with the weight or a small
        convolution's dense matrix, ``conv_transpose2d``, a per-channel scale), other small affine
        ops by their dense matrix, a first layer's bounds come from its weight rows' dual norms, and constants are summed by matrix products; "autograd": every affine op by the
        vmapped autograd vjp of its forward and elementwise arithmetic (the original path, kept as
        the reference the direct one is tested and benchmarked against — same bounds to rounding)

    Raises
    ------
    UnsupportedLayerError
        a layer or operation without a linear relaxation here (the message names it), or a network
        that cannot be traced.
    InvalidInputError
        an unknown ``intermediate`` or ``backward``.

    References: Zhang et al., NeurIPS 2018 (CROWN); Zhang et al., ICLR 2020 (CROWN-IBP); Gowal et
    al., "On the Effectiveness of Interval Bound Propagation", 2018 (IBP).
    """

    def __init__(
        self,
        model: nn.Module | Classifier,
        input_shape: tuple[int, ...],
        *,
        intermediate: str = "auto",
        crown_neurons: int = CROWN_NEURONS,
        backward: str = "direct",
    ) -> None:
        if intermediate not in ("auto", "crown", "ibp"):
            raise InvalidInputError(f"intermediate must be 'auto', 'crown' or 'ibp', got {intermediate!r}")
        if backward not in ("direct", "autograd"):
            raise InvalidInputError(f"backward must be 'direct' or 'autograd', got {backward!r}")
        self.backward = backward
        network = model.network if isinstance(model, Classifier) else model
        self.input_shape = tuple(int(s) for s in input_shape)
        self.intermediate = intermediate
        self.crown_neurons = {"auto": int(crown_neurons), "crown": 2**62, "ibp": 0}[intermediate]
        tensors = [*network.parameters(), *network.buffers()]  # a plain function's weights are buffers
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        was_training = network.training and not _is_exported(network)  # exported programs have no eval()
        if was_training:
            network.eval()
        try:
            bare = _is_graph_leaf(network)  # a program / script alone: traced as Sequential(it)
            gm = _trace(nn.Sequential(network) if bare else network, self.input_shape, dtype)
        finally:
            if was_training:
                network.train(True)
        self._gm = copy.deepcopy(gm).to(device="cpu", dtype=torch.float64).requires_grad_(False)
        self.ops = self._read(self._gm)
        if self.ops[-1].shape == () or len(self.ops[-1].shape) != 1:
            raise UnsupportedLayerError(f"the network's output has shape {self.ops[-1].shape}: logits (K,) expected")
        self.n_classes = self.ops[-1].shape[0]
        self._vjps: dict[int, Callable] = {}
        self._offsets: dict[int, torch.Tensor] = {}
        self._prefixes: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = {}

    # ------------------------------------------------------------------ reading the graph
    def _read(self, gm: fx.GraphModule) -> list[_Op]:
        modules = dict(gm.named_modules())
        ops: list[_Op] = []
        index: dict[fx.Node, int] = {}  # input-dependent node → op index
        const: dict[fx.Node, Any] = {}  # values of the other nodes (weights, shapes …), batch of one
        output: int | None = None
        env: dict[fx.Node, Any] = {}
        for node in gm.graph.nodes:  # a concrete forward pass (batch of one) for the constants
            if node.op == "placeholder":
                env[node] = torch.zeros((1, *self.input_shape), dtype=torch.float64)
            elif node.op == "output":
                pass
            else:
                args = fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                env[node] = _execute(gm, modules, node, args, kwargs)
        for node in gm.graph.nodes:
            if node.op == "output":
                first = node.args[0]
                if isinstance(first, (tuple, list)) and len(first) == 1:
                    first = first[0]
                if not isinstance(first, fx.Node) or first not in index:
                    raise UnsupportedLayerError("the network's output is not a single tensor that depends on its input")
                output = index[first]
                continue
            if node.op == "placeholder":
                index[node] = len(ops)
                ops.append(_Op(node.name, "input", (), self.input_shape))
                continue
            deps = [a for a in node.all_input_nodes if a in index]
            if not deps or _shape_only(node):
                const[node] = env[node]
                continue
            value = env[node]
            if isinstance(value, torch.Tensor):
                shape = tuple(value.shape[1:])
            elif isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
                shape = tuple(value[0].shape[1:])  # (output, …) of batch norm / max pooling with indices
            else:
                raise UnsupportedLayerError(f"graph node {node.name!r} ({_where(node, modules)}) is not a tensor")
            op = _op_for(gm, modules, node, deps, index, const, shape)
            if op.kind == "affine" and op.back is None:
                shapes = [ops[index[d]].shape for d in deps]
                op.back = _closed_form_back(gm, modules, node, deps, const, shape, shapes) or _dense_back(op, shapes)
            index[node] = len(ops)
            ops.append(op)
        if output is None:
            raise UnsupportedLayerError("the network has no output")
        needed = {output}  # keep only the ops the logits depend on
        for i in range(output, -1, -1):
            if i in needed:
                needed.update(ops[i].parents)
        keep = sorted(needed)
        remap = {old: new for new, old in enumerate(keep)}
        kept = []
        for old in keep:
            op = ops[old]
            op.parents = tuple(remap[p] for p in op.parents)
            kept.append(op)
        if kept[0].kind != "input":
            raise UnsupportedLayerError("the network's output does not depend on its input")
        return kept

    # ------------------------------------------------------------------ bounds
    def interval(self, x: torch.Tensor, eps: torch.Tensor, norm: str) -> list:
        """Intermediate bounds ``(l, u)`` (each (B, *shape)) of every op, IBP ∩ CROWN (module docstring)."""
        bounds: list = [None] * len(self.ops)
        needs = {p for op in self.ops if op.kind in ("relu", "maxpool") for p in op.parents}
        e = eps.reshape(-1, *([1] * len(self.input_shape)))
        for i, op in enumerate(self.ops):
            if op.kind == "input":
                lo, hi = x - e, x + e  # the ℓ2 ball lies inside the ℓ∞ box of the same radius
            elif op.kind == "relu":
                lo, hi = (b.clamp_min(0.0) for b in bounds[op.parents[0]])
            elif op.kind == "maxpool":
                k, s, p = op.pool  # type: ignore[misc]
                pl, pu = bounds[op.parents[0]]
                lo = F.max_pool2d(pl, k, s, p)
                hi = F.max_pool2d(pu, k, s, p)
            else:
                assert op.fn is not None and op.absfn is not None
                centres = [(bounds[p][0] + bounds[p][1]) / 2 for p in op.parents]
                radii = [((bounds[p][1] - bounds[p][0]) / 2).clamp_min(0.0) for p in op.parents]
                c, r = op.fn(*centres), op.absfn(*radii)
                lo, hi = c - r, c + r
            if i in needs and op.kind != "input" and op.size <= self.crown_neurons:
                lo, hi = self._crown_node(i, x, eps, norm, bounds, lo, hi)
            bounds[i] = (lo, hi)
        return bounds

    def _crown_node(
        self, i: int, x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: list, lo: torch.Tensor, hi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CROWN bounds of op ``i``'s neurons (specification ±identity), intersected with ``lo, hi``.

        Only the neurons that IBP leaves unstable (``lo < 0 < hi`` at some point of the batch) get a row:
        a stable neuron's relaxation is exact already.
        """
        n, shape = self.ops[i].size, self.ops[i].shape
        B = len(x)
        unstable = ((lo < 0) & (hi > 0)).reshape(B, n).any(0)
        rows = torch.nonzero(unstable).flatten()
        m = len(rows)
        if m == 0:
            return lo, hi
        prefix = None if self.backward == "autograd" else self._prefix(i, norm)
        if prefix is not None:  # op i = A x + c: min over the ball of ±(A_j x' + c_j) = ±(A_j x + c_j) − ε‖A_j‖_q
            A, c, dual = prefix
            centre = x.reshape(B, -1) @ A[rows].T + c[rows]
            spread = eps[:, None] * dual[rows]
            low = torch.cat([centre - spread, -centre - spread], 1)
        else:
            low = self._crown_rows(i, rows, x, eps, norm, bounds)
        c_lo, c_hi = lo.reshape(B, n).clone(), hi.reshape(B, n).clone()
        c_lo[:, rows] = torch.maximum(c_lo[:, rows], low[:, :m])
        c_hi[:, rows] = torch.minimum(c_hi[:, rows], -low[:, m:])
        return c_lo.reshape(B, *shape), c_hi.reshape(B, *shape)

    def _crown_rows(
        self, i: int, rows: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: list
    ) -> torch.Tensor:
        """CROWN lower bounds (B, 2m) of ``+z_j`` then ``−z_j`` for the neurons ``rows`` (m,) of op ``i``."""
        n, shape = self.ops[i].size, self.ops[i].shape
        B, m = len(x), len(rows)
        eye = torch.zeros(m, n, dtype=torch.float64)
        eye[torch.arange(m), rows] = 1.0
        eye = eye.reshape(m, *shape)
        spec = torch.cat([eye, -eye])  # (2m, *shape)
        per_point = 2 * m * max(op.size for op in self.ops[: i + 1])
        step = max(1, _BUDGET // max(per_point, 1))
        lows = []
        for a in range(0, B, step):
            sl = slice(a, min(B, a + step))
            lam = spec.expand(sl.stop - sl.start, *spec.shape)
            lows.append(self._backward(i, lam, x[sl], eps[sl], norm, [_slice(b, sl) for b in bounds]))
        return torch.cat(lows)  # (B, 2m)

    def _backward(
        self, start: int, lam0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: list
    ) -> torch.Tensor:
        """min over the ball of ``Λ · op_start(x')`` for every row of ``lam0`` (B, S, *shape) → (B, S).

        The coefficient rows pass back through affine ops by their closed-form transpose (``_Op.back``:
        a matmul with the weight, ``conv_transpose2d`` …) where one is known, else by the vmapped vjp;
        the constants are accumulated by matrix products (no (B, S, n) products are formed).
        """
        if self.backward == "autograd":
            return self._backward_autograd(start, lam0, x, eps, norm, bounds)
        B, S = lam0.shape[:2]
        lams: dict[int, torch.Tensor] = {start: lam0}
        const = torch.zeros(B, S, dtype=torch.float64)
        for i in range(start, -1, -1):
            if i not in lams:
                continue
            lam = lams.pop(i)
            op = self.ops[i]
            if op.kind == "input":
                flat = lam.reshape(B, S, -1)
                dual = _dual(flat, norm)
                const = const + torch.bmm(flat, x.reshape(B, -1, 1))[..., 0] - eps[:, None] * dual
                continue
            if op.kind == "relu":
                p = op.parents[0]
                chord, alpha, offset = _relu_relaxation(*bounds[p])  # (B, 1, n) each
                flat = lam.reshape(B, S, -1)
                neg = flat.clamp_max(0.0)  # Λ⁻ takes the upper line chord·(z − l), Λ⁺ the lower one α·z
                const = const + torch.bmm(neg, offset.transpose(1, 2))[..., 0]
                _accumulate(lams, p, torch.addcmul(flat * alpha, neg, chord - alpha).reshape(lam.shape))
                continue
            if op.kind == "maxpool":
                p = op.parents[0]
                lam_in, c = self._maxpool_back_direct(op, lam, bounds[p])
                const = const + c
                _accumulate(lams, p, lam_in)
                continue
            shift, grads = self._affine_back(i, lam)
            if shift is not None:
                const = const + shift
            for p, g in grads:
                _accumulate(lams, p, g)
        return const

    def _affine_back(self, i: int, lam: torch.Tensor) -> tuple[torch.Tensor | None, list[tuple[int, torch.Tensor]]]:
        """Λ (B, S, *shape) through affine op ``i``: the constant ``Λ · b`` (B, S), or None where ``b = 0``, and
        ``Λ A`` split per parent as ``(parent index, (B, S, *parent shape))``."""
        op = self.ops[i]
        B, S = lam.shape[:2]
        if B > 1 and lam.stride(0) == 0:  # the same rows at every point (a specification): map them once
            c, once = self._affine_back(i, lam[:1])
            return (None if c is None else c.expand(B, S)), [(p, g.expand(B, *g.shape[1:])) for p, g in once]
        flat = lam.reshape(B * S, *op.shape)
        shapes = [self.ops[p].shape for p in op.parents]
        if op.back is not None:
            grads = op.back(flat, shapes)
        else:
            grads = self._vjp(i, B * S)(flat)  # each (B·S, 1, *parent shape)
        offset = self._offset(i)
        c = None if not bool(offset.any()) else lam.reshape(B, S, -1) @ offset.reshape(-1)
        return c, [(p, g.reshape(B, S, *sh)) for p, g, sh in zip(op.parents, grads, shapes, strict=True)]

    def _prefix(self, i: int, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Op ``i`` as an affine map of the input, ``A x + c`` with ``A`` (n, d), ``c`` (n,), and the dual norms
        ‖A_j‖_q (n,), when every op below it is affine (the first layer: its CROWN bound needs no backward pass
        per point and ε, Hölder alone) and ``A`` has at most ``_PREFIX_BUDGET`` entries; else None."""
        key = (i, norm)
        if key not in self._prefixes and (i, "l2" if norm == "linf" else "linf") in self._prefixes:
            other = self._prefixes[(i, "l2" if norm == "linf" else "linf")]  # A and c do not depend on the norm
            self._prefixes[key] = None if other is None else (other[0], other[1], _dual(other[0], norm))
        if key not in self._prefixes:
            below, stack = set(), [i]
            while stack:
                j = stack.pop()
                if j not in below:
                    below.add(j)
                    stack.extend(self.ops[j].parents)
            n, d = self.ops[i].size, self.ops[0].size
            if any(self.ops[j].kind in ("relu", "maxpool") for j in below) or n * d > _PREFIX_BUDGET:
                self._prefixes[key] = None
            else:
                lams = {i: torch.eye(n, dtype=torch.float64).reshape(1, n, *self.ops[i].shape)}
                c = torch.zeros(1, n, dtype=torch.float64)
                A = torch.zeros(n, d, dtype=torch.float64)
                for j in range(i, -1, -1):
                    if j not in lams:
                        continue
                    lam = lams.pop(j)
                    if self.ops[j].kind == "input":
                        A = lam.reshape(n, d)
                        continue
                    cj, grads = self._affine_back(j, lam)
                    c = c if cj is None else c + cj
                    for p, g in grads:
                        _accumulate(lams, p, g)
                self._prefixes[key] = (A, c[0], _dual(A, norm))
        return self._prefixes[key]

    def _backward_autograd(
        self, start: int, lam0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: list
    ) -> torch.Tensor:
        """:meth:`_backward` by vmapped autograd vjps and elementwise arithmetic alone (the reference path)."""
        B, S = lam0.shape[:2]
        lams: dict[int, torch.Tensor] = {start: lam0}
        const = torch.zeros(B, S, dtype=torch.float64)
        for i in range(start, -1, -1):
            if i not in lams:
                continue
            lam = lams.pop(i)
            op = self.ops[i]
            if op.kind == "input":
                flat = lam.reshape(B, S, -1)
                dual = flat.norm(dim=-1) if norm == "l2" else flat.abs().sum(-1)
                const = const + (flat * x.reshape(B, 1, -1)).sum(-1) - eps[:, None] * dual
                continue
            if op.kind == "relu":
                p = op.parents[0]
                lb, ub = (b[:, None] for b in bounds[p])  # (B, 1, *shape)
                active, unstable = lb >= 0, (lb < 0) & (ub > 0)
                chord = torch.where(unstable, ub / (ub - lb).clamp_min(1e-300), active.to(lb.dtype))
                alpha = torch.where(unstable, (ub >= -lb).to(lb.dtype), active.to(lb.dtype))
                pos, neg = lam.clamp_min(0.0), lam.clamp_max(0.0)
                offset = torch.where(unstable, -chord * lb, torch.zeros_like(lb))
                const = const + (neg * offset).reshape(B, S, -1).sum(-1)
                _accumulate(lams, p, pos * alpha + neg * chord)
                continue
            if op.kind == "maxpool":
                p = op.parents[0]
                lam_in, c = self._maxpool_back(op, lam, bounds[p])
                const = const + c
                _accumulate(lams, p, lam_in)
                continue
            assert op.fn is not None
            flat = lam.reshape(B * S, *op.shape)
            vjp = self._vjp(i, B * S)
            const = const + (lam * self._offset(i).reshape(1, 1, *op.shape)).reshape(B, S, -1).sum(-1)
            for p, g in zip(op.parents, vjp(flat), strict=True):  # g: (B·S, 1, *parent shape)
                _accumulate(lams, p, g.reshape(B, S, *self.ops[p].shape))
        return const

    def _vjp(self, i: int, rows: int) -> Callable:
        """Λ ↦ Λ A of affine op ``i`` for a batch of coefficient rows: the vjp of an affine map is the same at
        every point, so it is built once (at a batch of one) and mapped over the rows with ``torch.func.vmap``."""
        if i not in self._vjps:
            op = self.ops[i]
            assert op.fn is not None
            zeros = [torch.zeros(1, *self.ops[p].shape, dtype=torch.float64) for p in op.parents]
            single = torch.func.vjp(op.fn, *zeros)[1]

            def row(lam: torch.Tensor) -> Any:
                return single(lam[None])

            self._vjps[i] = torch.func.vmap(row)
        return self._vjps[i]

    def _offset(self, i: int) -> torch.Tensor:
        """The constant ``b = op(0)`` of affine op ``i`` (1, *shape)."""
        if i not in self._offsets:
            op = self.ops[i]
            assert op.fn is not None
            with torch.no_grad():
                self._offsets[i] = op.fn(*(torch.zeros(1, *self.ops[p].shape, dtype=torch.float64) for p in op.parents))
        return self._offsets[i]

    def _maxpool_back(self, op: _Op, lam: torch.Tensor, bound: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Λ through max pooling: lower relaxation x_j* (largest lower bound), upper max u (or x_j* if decided)."""
        k, s, p = op.pool  # type: ignore[misc]
        lb, u = bound  # (B, C, H, W)
        B, S = lam.shape[:2]
        C, H, W = lb.shape[1:]
        low_max, idx = _pool_winner(lb, k, s, p)  # idx: flat index into H·W
        up_max = F.max_pool2d(u, k, s, p)
        # the largest upper bound among the *other* inputs of a window: mask the winner, pool again
        flat_u = u.reshape(B, C, H * W).clone()
        others = F.max_pool2d(
            flat_u.scatter(2, idx.reshape(B, C, -1), -math.inf).reshape(B, C, H, W), k, s, p
        )  # ≥ the true "others" max when the winner is shared by windows (only looser)
        decided = (low_max >= others)[:, None]  # (B, 1, C, h, w): the winner is certain, y = x_j*
        pos, neg = lam.clamp_min(0.0), lam.clamp_max(0.0)
        to_winner = pos + torch.where(decided, neg, torch.zeros_like(neg))
        const = (torch.where(decided, torch.zeros_like(neg), neg) * up_max[:, None]).reshape(B, S, -1).sum(-1)
        lam_in = torch.zeros(B, S, C, H * W, dtype=lam.dtype)
        lam_in.scatter_add_(
            3, idx[:, None].expand(B, S, *idx.shape[1:]).reshape(B, S, C, -1), to_winner.reshape(B, S, C, -1)
        )
        return lam_in.reshape(B, S, C, H, W), const

    def _maxpool_back_direct(self, op: _Op, lam: torch.Tensor, bound: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_maxpool_back` with the constant as a matrix product and one scatter (fewer (B, S, n) passes)."""
        k, s, p = op.pool  # type: ignore[misc]
        lb, u = bound  # (B, C, H, W)
        B, S = lam.shape[:2]
        C, H, W = lb.shape[1:]
        low_max, idx = _pool_winner(lb, k, s, p)
        up_max = F.max_pool2d(u, k, s, p)
        others = F.max_pool2d(
            u.reshape(B, C, H * W).scatter(2, idx.reshape(B, C, -1), -math.inf).reshape(B, C, H, W), k, s, p
        )
        undecided = (low_max < others).to(lam.dtype).reshape(B, 1, -1)  # the winner is not certain: y ≤ max u
        flat = lam.reshape(B, S, -1)
        neg = flat.clamp_max(0.0)
        const = torch.bmm(neg, (undecided * up_max.reshape(B, 1, -1)).transpose(1, 2))[..., 0]
        to_winner = flat - neg * undecided  # Λ⁺ always, Λ⁻ where decided (y = x_j*), to the winner j*
        lam_in = torch.zeros(B, S, C, H * W, dtype=lam.dtype)
        lam_in.scatter_add_(3, idx.reshape(B, 1, C, -1).expand(B, S, C, -1), to_winner.reshape(B, S, C, -1))
        return lam_in.reshape(B, S, C, H, W), const

    def margin_bounds(self, x: torch.Tensor, labels: torch.Tensor, eps: Any, norm: str) -> torch.Tensor:
        """Lower bounds (B, K) of ``f_y − f_k`` over the ε-balls (``+inf`` at ``k = y``); see :func:`crown_margin_bounds`."""
        x, labels, eps_t = self._check(x, labels, eps, norm)
        B, K = len(x), self.n_classes
        out = torch.empty(B, K, dtype=torch.float64)
        per_point = K * max(op.size for op in self.ops)
        step = max(1, _BUDGET // max(per_point, 1))
        last = len(self.ops) - 1
        for a in range(0, B, step):
            sl = slice(a, min(B, a + step))
            xs, ys, es = x[sl], labels[sl], eps_t[sl]
            bounds = self.interval(xs, es, norm)
            spec = torch.eye(K, dtype=torch.float64)[ys][:, None, :] - torch.eye(K, dtype=torch.float64)[None]
            low = self._backward(last, spec, xs, es, norm, bounds)  # (b, K)
            out[sl] = low.scatter(1, ys[:, None], math.inf)
        return out

    def _check(self, x: torch.Tensor, labels: torch.Tensor, eps: Any, norm: str) -> tuple:
        if norm not in _NORMS:
            raise InvalidInputError(f"norm must be one of {_NORMS}, got {norm!r}")
        x = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
        if tuple(x.shape[1:]) != self.input_shape:
            raise InvalidInputError(f"inputs of shape {tuple(x.shape)} for a network of input shape {self.input_shape}")
        if not torch.isfinite(x).all():
            raise InvalidInputError("the inputs contain NaN or inf")
        labels = torch.as_tensor(labels).detach().to("cpu").reshape(-1).long()
        if len(labels) != len(x):
            raise InvalidInputError(f"{len(labels)} labels for {len(x)} inputs")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise InvalidInputError(f"labels must lie in [0, {self.n_classes}), got {labels.tolist()[:10]}")
        eps_t = torch.as_tensor(eps, dtype=torch.float64).detach().to("cpu").reshape(-1)
        eps_t = eps_t.expand(len(x)) if eps_t.numel() == 1 else eps_t
        if eps_t.shape != (len(x),) or not torch.isfinite(eps_t).all() or (eps_t < 0).any():
            raise InvalidInputError(
                f"eps must be one finite radius ≥ 0 or one per input, got shape {tuple(eps_t.shape)}"
            )
        return x, labels, eps_t.clone()

    def certified(self, x: torch.Tensor, labels: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
        """(B,) bool: every margin lower bound at radius ``eps`` is > 0."""
        return self.margin_bounds(x, labels, eps, norm).min(1).values > 0

    def radius(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        *,
        norm: str = "l2",
        lower: float | None = None,
        upper: float | None = None,
        tol: float = 1e-4,
        max_radius: float | None = None,
    ) -> torch.Tensor:
        """Certified radii (B,) by bisection; see :func:`crown_radius`."""
        x, labels, _ = self._check(x, labels, 0.0, norm)
        if not (tol > 0):
            raise InvalidInputError(f"tol must be > 0, got {tol}")
        B = len(x)
        cap = math.inf if max_radius is None else float(max_radius)
        lo = torch.zeros(B, dtype=torch.float64)
        ok0 = self.certified(x, labels, lo, norm)  # the label wins at the point itself
        if lower is not None and lower > 0:
            start = torch.full((B,), min(float(lower), cap), dtype=torch.float64)
            lo = torch.where(ok0 & self.certified(x, labels, start, norm), start, lo)
        first = float(upper) if upper is not None else (1.0 if norm == "l2" else 0.1)
        hi = torch.full((B,), min(max(first, 1e-12), cap), dtype=torch.float64)
        hi = torch.maximum(hi, lo)
        # grow the bracket until CROWN fails at hi (or hi reaches the cap)
        grow = ok0 & (hi < cap)
        for _ in range(60):
            idx = torch.nonzero(grow).flatten()
            if len(idx) == 0:
                break
            ok = self.certified(x[idx], labels[idx], hi[idx], norm)
            lo[idx] = torch.where(ok, hi[idx], lo[idx])
            hi[idx] = torch.where(ok, torch.clamp(hi[idx] * 4.0, max=cap), hi[idx])
            grow[idx] = ok & (lo[idx] < cap)
        active = ok0 & (lo < hi) & ~((lo >= cap) & (hi >= cap))
        for _ in range(200):
            idx = torch.nonzero(active & (hi - lo > tol * hi) & (hi > 1e-12)).flatten()
            if len(idx) == 0:
                break
            mid = torch.where(lo[idx] > 0, torch.sqrt(lo[idx] * hi[idx]), hi[idx] / 4)  # bisection in log ε
            ok = self.certified(x[idx], labels[idx], mid, norm)
            lo[idx] = torch.where(ok, mid, lo[idx])
            hi[idx] = torch.where(ok, hi[idx], mid)
        return torch.where(ok0, lo, torch.zeros_like(lo))


def _dual(rows: torch.Tensor, norm: str) -> torch.Tensor:
    """The dual norm of every row over the last dimension: ℓ2 for the ℓ2 ball, ℓ1 for the ℓ∞ ball."""
    return torch.linalg.vector_norm(rows, ord=2 if norm == "l2" else 1, dim=-1)


#: lower bounds within this much (relative to max(1, |largest|)) of a pooling window's largest count as tied
_TIE = 1e-9


def _pool_winner(lb: torch.Tensor, kernel: tuple, stride: tuple, padding: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The input j* of every max-pooling window whose lower bound is the largest, and that lower bound.

    Any input of the window gives a sound lower relaxation ``max ≥ x_j``; the largest lower bound is the
    tightest. Inputs within :data:`_TIE` of the largest are tied and the first of them (raster order, as
    ``max_pool2d``'s own index) wins, so that rounding noise of 1e-16 in two equal bounds (a constant image
    region under a convolution) does not decide the relaxation.

    lb : (B, C, H, W) → (lower bound of j* (B, C, h, w), flat index of j* into H·W (B, C, h, w), int64)
    """
    B, C, H, W = lb.shape
    ph, pw = padding
    padded = F.pad(lb.reshape(B * C, 1, H, W), (pw, pw, ph, ph), value=-math.inf)
    where = F.pad(torch.arange(H * W, dtype=lb.dtype).reshape(1, 1, H, W), (pw, pw, ph, ph), value=-1.0)
    cols = F.unfold(padded, kernel, stride=stride)  # (B·C, kh·kw, L)
    spots = F.unfold(where, kernel, stride=stride)  # (1, kh·kw, L)
    top = cols.max(1, keepdim=True).values
    tied = cols >= top - _TIE * top.abs().clamp_min(1.0)
    first = tied.to(torch.uint8).argmax(1, keepdim=True)  # the first maximal (= first tied) entry
    out = F.max_pool2d(lb[:1, :1], kernel, stride, padding).shape[-2:]
    low = cols.gather(1, first).reshape(B, C, *out)
    idx = spots.expand(B * C, -1, -1).gather(1, first).reshape(B, C, *out).long()
    return low, idx


def _relu_relaxation(lb: torch.Tensor, ub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CROWN's ReLU relaxation on pre-activation bounds (B, *shape): the upper slope (the chord; 1 active,
    0 inactive), the adaptive lower slope α and the upper line's intercept ``−chord · l``, each (B, 1, n)."""
    B = lb.shape[0]
    lb, ub = lb.reshape(B, 1, -1), ub.reshape(B, 1, -1)
    active, unstable = lb >= 0, (lb < 0) & (ub > 0)
    chord = torch.where(unstable, ub / (ub - lb).clamp_min(1e-300), active.to(lb.dtype))
    alpha = torch.where(unstable, (ub >= -lb).to(lb.dtype), active.to(lb.dtype))
    offset = torch.where(unstable, -chord * lb, torch.zeros_like(lb))
    return chord, alpha, offset


def _slice(b: Any, sl: slice) -> Any:
    return None if b is None else (b[0][sl], b[1][sl])


def _accumulate(lams: dict[int, torch.Tensor], i: int, value: torch.Tensor) -> None:
    lams[i] = value if i not in lams else lams[i] + value


def _shape_only(node: fx.Node) -> bool:
    """A node that reads the input's shape, not its values (``x.size(0)``, ``x.shape``)."""
    if node.op == "call_method" and node.target in _SHAPE_ONLY:
        return True
    if node.op == "call_function" and node.target is getattr:
        return True
    return isinstance(node.target, torch._ops.OpOverload) and node.target.overloadpacket.__name__ in _SHAPE_ONLY


def _where(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"{type(modules[str(node.target)]).__name__} at {str(node.target)!r}"
    return str(getattr(node.target, "__name__", node.target))


def _execute(gm: fx.GraphModule, modules: dict, node: fx.Node, args: Any, kwargs: Any) -> Any:
    if node.op == "get_attr":
        obj: Any = gm
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
        return obj
    if node.op == "call_module":
        return modules[str(node.target)](*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)
    return node.target(*args, **kwargs)  # type: ignore[operator]


_INPLACE = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul}


def _op_for(
    gm: fx.GraphModule,
    modules: dict,
    node: fx.Node,
    deps: list[fx.Node],
    index: dict[fx.Node, int],
    const: dict[fx.Node, Any],
    shape: tuple[int, ...],
) -> _Op:
    """The op of one input-dependent node, or UnsupportedLayerError naming it."""
    where = _where(node, modules)
    parents = tuple(index[d] for d in deps)
    target = node.target
    src = node.args[0] if node.args else None

    def call(substitute: Callable[[fx.Node, Any], Any] | None = None, target_override: Any = None) -> Callable:
        """``fn(*parent values)``: the node run with its input-dependent arguments replaced."""

        def fn(*values: torch.Tensor) -> torch.Tensor:
            table = dict(zip(deps, values, strict=True))

            def value(n: fx.Node) -> Any:
                if n in table:
                    return table[n]
                v = const[n]
                return substitute(n, v) if substitute is not None else v

            args = fx.node.map_arg(node.args, value)
            kwargs = fx.node.map_arg(node.kwargs, value)
            if target_override is not None:
                out = target_override(*args, **kwargs)
            else:
                out = _execute(gm, modules, node, args, kwargs)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if tuple(out.shape[1:]) != shape or out.shape[0] != values[0].shape[0]:
                raise UnsupportedLayerError(f"cannot bound {where}: it mixes the batch dimension")
            return out

        return fn

    def nonneg(fn: Callable) -> Callable:  # |A| r = A r for maps with nonnegative coefficients
        def absfn(*radii: torch.Tensor) -> torch.Tensor:
            return fn(*radii) - fn(*(torch.zeros_like(r) for r in radii))

        return absfn

    def reshape() -> _Op:
        fn = lambda z: z.reshape(z.shape[0], *shape)
        return _Op(node.name, "affine", parents, shape, fn, fn)

    def identity() -> _Op:
        fn = lambda z: z
        return _Op(node.name, "affine", parents, shape, fn, fn)

    def relu() -> _Op:
        if len(deps) != 1 or src is not deps[0]:
            raise UnsupportedLayerError(f"cannot bound {where}: a ReLU of a constant-shifted input")
        return _Op(node.name, "relu", parents, shape)

    def maxpool(kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any) -> _Op:
        if _pair(dilation or 1) != (1, 1) or ceil_mode:
            raise UnsupportedLayerError(f"cannot bound {where}: max pooling with dilation or ceil_mode")
        k = _pair(kernel)
        s = _pair(stride) if stride else k
        if len(deps) != 1 or src is not deps[0]:
            raise UnsupportedLayerError(f"cannot bound {where}: max pooling of a non-tensor argument")
        return _Op(node.name, "maxpool", parents, shape, pool=(k, s, _pair(padding or 0)))

    def scaled() -> _Op:  # mul / div by a constant
        a, b = node.args[0], node.args[1]
        dep_a = isinstance(a, fx.Node) and a in index
        dep_b = isinstance(b, fx.Node) and b in index
        if dep_a and dep_b:
            raise UnsupportedLayerError(
                f"cannot bound {where} (graph node {node.name!r}): the product of two input-dependent tensors"
            )
        name = target.overloadpacket.__name__ if isinstance(target, torch._ops.OpOverload) else str(target)
        div = target in (operator.truediv, torch.div) or name in ("div", "div_")
        if div and not dep_a:
            raise UnsupportedLayerError(f"cannot bound {where} (graph node {node.name!r}): division by the input")
        other = b if dep_a else a
        value = const[other] if isinstance(other, fx.Node) else other
        c_abs = value.abs() if isinstance(value, torch.Tensor) else abs(float(value))  # type: ignore[arg-type]

        def absfn(r: torch.Tensor) -> torch.Tensor:
            out = r / c_abs if div else r * c_abs
            return out.expand(r.shape[0], *shape)

        return _Op(node.name, "affine", parents, shape, call(), absfn)

    def add_sub() -> _Op:
        alpha = abs(float(node.kwargs.get("alpha", 1) or 1))  # type: ignore[arg-type]
        twice = len(node.args) > 1 and node.args[0] is node.args[1]  # x + x: one parent, twice

        def absfn(*radii: torch.Tensor) -> torch.Tensor:
            total = radii[0] * (1.0 + alpha) if twice else radii[0]
            if len(radii) == 2:
                total = total + alpha * radii[1]
            return total.expand(total.shape[0], *shape)

        return _Op(node.name, "affine", parents, shape, call(), absfn)

    def weighted(weight_pos: int, bias_pos: int | None) -> _Op:
        """Linear / convolution / batch norm: |A| = the same op with |weight| and no bias."""
        weight_node = node.args[weight_pos] if len(node.args) > weight_pos else None
        bias_node = node.args[bias_pos] if bias_pos is not None and len(node.args) > bias_pos else None
        for arg in (weight_node, bias_node):
            if isinstance(arg, fx.Node) and arg in index:
                raise UnsupportedLayerError(f"cannot bound {where}: its weight depends on the input")

        def sub(n: fx.Node, v: Any) -> Any:
            if n is weight_node:
                return v.abs()
            if n is bias_node:
                return torch.zeros_like(v)
            return v

        return _Op(node.name, "affine", parents, shape, call(), call(sub))

    def matmul() -> _Op:
        """``z @ W`` with a constant ``W`` (an analytic affine classifier's ``x @ W.T``): |A| = ``@ |W|``."""
        a, b = (*node.args, None, None)[:2]
        if not (isinstance(a, fx.Node) and a in index) or (isinstance(b, fx.Node) and b in index):
            raise UnsupportedLayerError(
                f"cannot bound {where} (graph node {node.name!r}): only an input-dependent tensor times a constant "
                "matrix is linear"
            )
        return weighted(1, None)

    # ---------------------------------------------------------------- modules
    if node.op == "call_module":
        m = modules[str(target)]
        if isinstance(m, nn.ReLU):
            return relu()
        if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d)):
            return identity()
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return reshape()
        if isinstance(m, (nn.Linear, nn.Conv2d)):

            def conv_abs(r: torch.Tensor, m: nn.Module = m) -> torch.Tensor:
                if isinstance(m, nn.Linear):
                    return F.linear(r, m.weight.abs())
                return m._conv_forward(r, m.weight.abs(), None)  # type: ignore[operator]

            return _Op(node.name, "affine", parents, shape, call(), conv_abs)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.running_var is None:
                raise UnsupportedLayerError(f"cannot bound {where}: batch statistics (no running averages)")

            def bn_abs(r: torch.Tensor, m: nn.modules.batchnorm._BatchNorm = m) -> torch.Tensor:
                w = m.weight.abs() if m.weight is not None else None
                var = m.running_var
                assert var is not None
                return F.batch_norm(r, torch.zeros_like(var), var, w, None, False, 0.0, m.eps)

            return _Op(node.name, "affine", parents, shape, call(), bn_abs)
        if isinstance(m, Normalize):
            return _Op(node.name, "affine", parents, shape, call(), lambda r, m=m: r / m.std.to(r.dtype).abs())
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            fn = call()
            return _Op(node.name, "affine", parents, shape, fn, nonneg(fn))
        if isinstance(m, nn.MaxPool2d):
            return maxpool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        raise UnsupportedLayerError(f"CROWN has no linear relaxation of the layer {where}")
    # ---------------------------------------------------------------- ATen operators
    if isinstance(target, torch._ops.OpOverload):
        op = target.overloadpacket.__name__
        names = [a.name for a in target._schema.arguments]

        def arg(name: str) -> Any:
            i = names.index(name)
            if i < len(node.args):
                return node.args[i]
            a = target._schema.arguments[i]
            return node.kwargs.get(name, a.default_value if a.has_default_value() else None)

        if op in ("relu", "relu_"):
            return relu()
        if op in _ATEN_RESHAPE:
            return reshape()
        if op in _ATEN_IDENTITY:
            return identity()
        if op == "dropout":
            if arg("train"):
                raise UnsupportedLayerError(f"cannot bound {target}: dropout in training mode")
            return identity()
        if op in ("mm", "matmul"):
            return matmul()
        if op in _ATEN_CONV:
            if op in ("convolution", "_convolution") and arg("transposed"):
                raise UnsupportedLayerError(f"cannot bound {target}: transposed convolution")
            return weighted(names.index("weight"), names.index("bias"))
        if op in _ATEN_BN:
            if op == "batch_norm" and arg("training"):
                raise UnsupportedLayerError(f"cannot bound {target}: batch statistics (training mode)")
            wi, bi, mi = names.index("weight"), names.index("bias"), names.index("running_mean")
            weight_node, bias_node, mean_node = (node.args[i] if i < len(node.args) else None for i in (wi, bi, mi))

            def bn_sub(n: fx.Node, v: Any) -> Any:
                if n is weight_node:
                    return v.abs()
                if n is bias_node or n is mean_node:
                    return torch.zeros_like(v)
                return v

            return _Op(node.name, "affine", parents, shape, call(), call(bn_sub))
        if op in ("max_pool2d", "max_pool2d_with_indices"):
            return maxpool(arg("kernel_size"), arg("stride"), arg("padding"), arg("dilation"), arg("ceil_mode"))
        if op in _ATEN_NONNEG:
            fn = call()
            return _Op(node.name, "affine", parents, shape, fn, nonneg(fn))
        if op in ("add", "add_", "sub", "sub_"):
            base = add_sub()
            base.fn = call(target_override=_out_of_place(target))
            return base
        if op == "neg":
            return _Op(node.name, "affine", parents, shape, call(), lambda r: r)
        if op in ("mul", "mul_", "div", "div_"):
            op_ = scaled()
            op_.fn = call(target_override=_out_of_place(target))
            return op_
        raise UnsupportedLayerError(
            f"CROWN has no linear relaxation of the operator {target} (graph node {node.name!r})"
        )
    # ---------------------------------------------------------------- functions and methods
    if target in (F.relu, torch.relu, torch.relu_) or (node.op == "call_method" and target in ("relu", "relu_")):
        return relu()
    if (node.op == "call_method" and target in _RESHAPE_METHODS) or target in _RESHAPE_FUNCTIONS:
        return reshape()
    if node.op == "call_method" and target in _IDENTITY_METHODS:
        return identity()
    if target is F.dropout:
        training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
        if training:
            raise UnsupportedLayerError(f"cannot bound dropout at graph node {node.name!r}: training mode")
        return identity()
    if target in (operator.add, torch.add, operator.iadd, operator.sub, torch.sub, operator.isub) or (
        node.op == "call_method" and target in ("add", "sub", "add_", "sub_")
    ):
        subtract = target in (operator.sub, torch.sub, operator.isub, "sub", "sub_")
        base = add_sub()
        if target in _INPLACE:
            base.fn = call(target_override=_INPLACE[target])
        elif node.op == "call_method" and str(target).endswith("_"):
            base.fn = call(target_override=torch.sub if subtract else torch.add)
        return base
    if target in (operator.neg, torch.neg):
        return _Op(node.name, "affine", parents, shape, call(), lambda r: r)
    if target in (operator.mul, torch.mul, operator.imul, operator.truediv, torch.div) or (
        node.op == "call_method" and target in ("mul", "div")
    ):
        op_ = scaled()
        if target in _INPLACE:
            op_.fn = call(target_override=_INPLACE[target])
        return op_
    if target in (torch.cat, torch.mean, F.avg_pool2d, F.adaptive_avg_pool2d, operator.getitem) or (
        node.op == "call_method" and target in ("mean", "permute", "transpose")
    ):
        fn = call()
        return _Op(node.name, "affine", parents, shape, fn, nonneg(fn))
    if target is F.max_pool2d:

        def get(i: int, name: str, default: Any) -> Any:
            return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)

        return maxpool(
            get(1, "kernel_size", None),
            get(2, "stride", None),
            get(3, "padding", 0),
            get(4, "dilation", 1),
            get(5, "ceil_mode", False),
        )
    if target in (F.linear, F.conv2d):
        return weighted(1, 2)
    if target in (operator.matmul, torch.matmul, torch.mm) or (node.op == "call_method" and target == "matmul"):
        return matmul()
    name = getattr(target, "__name__", str(target))
    raise UnsupportedLayerError(f"CROWN has no linear relaxation of the operation {name!r} (graph node {node.name!r})")


_Back = Callable[[torch.Tensor, list[tuple[int, ...]]], tuple[torch.Tensor, ...]]


def _closed_form_back(
    gm: fx.GraphModule,
    modules: dict,
    node: fx.Node,
    deps: list[fx.Node],
    const: dict[fx.Node, Any],
    shape: tuple[int, ...],
    parent_shapes: list[tuple[int, ...]],
) -> _Back | None:
    """``Λ ↦ Λ A`` in closed form for an affine node :func:`_op_for` accepted, or None (then the autograd vjp).

    Linear / ``mm`` / ``matmul``: a matmul with the weight; Conv2d: ``conv_transpose2d`` with the same weight,
    stride, padding, dilation and groups, and the output padding that restores the input's size — or, for a
    map of at most ``_DENSE`` entries, a matmul with its dense matrix (float64 ``conv_transpose2d`` on the CPU
    runs per row: 6–18× slower on the LeNets' layers); batch norm
    in eval and :class:`~geometry.classifier.Normalize`: a per-channel scale; reshapes and identities: a
    reshape; ``±`` of two input-dependent tensors of the output's shape; scaling by a constant that does
    not broadcast the input. Anything else (pooling, ``cat``, ``mean``, broadcasting …) returns None.
    """
    target = node.target
    same = all(p == shape for p in parent_shapes)

    def value(a: Any) -> Any:
        return const[a] if isinstance(a, fx.Node) else a

    def linear(weight: Any, transpose: bool = False) -> _Back | None:
        w = value(weight)
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or len(parent_shapes) != 1:
            return None
        w = w.detach().to(torch.float64)
        w = w.T.contiguous() if transpose else w
        return lambda lam, shapes: (lam @ w,)

    def conv(weight: Any, stride: Any, padding: Any, dilation: Any, groups: Any) -> _Back | None:
        w = value(weight)
        if isinstance(padding, str):
            if padding != "valid":
                return None
            padding = 0
        if not isinstance(w, torch.Tensor) or w.dim() != 4 or len(parent_shapes) != 1 or len(parent_shapes[0]) != 3:
            return None
        w = w.detach().to(torch.float64)
        st, pa, di = _pair(stride), _pair(padding), _pair(dilation)
        extra = tuple(
            parent_shapes[0][1 + a] - ((shape[1 + a] - 1) * st[a] - 2 * pa[a] + di[a] * (w.shape[2 + a] - 1) + 1)
            for a in (0, 1)
        )
        if any(not 0 <= e < max(st[a], di[a]) for a, e in enumerate(extra)):
            return None
        g = int(groups or 1)
        size_in = math.prod(parent_shapes[0])
        if size_in * math.prod(shape) <= _DENSE:  # small maps: one matmul with the dense matrix beats the conv
            basis = torch.eye(size_in, dtype=torch.float64).reshape(size_in, *parent_shapes[0])
            dense = F.conv2d(basis, w, None, st, pa, di, g).reshape(size_in, -1).T.contiguous()  # (out, in)
            return lambda lam, shapes: ((lam.reshape(len(lam), -1) @ dense).reshape(len(lam), *shapes[0]),)
        return lambda lam, shapes: (F.conv_transpose2d(lam, w, None, st, pa, extra, g, di),)

    def scale(factor: torch.Tensor) -> _Back | None:  # Λ ↦ Λ · factor, the factor broadcast over the output
        if not same or len(parent_shapes) != 1:
            return None
        f = factor.detach().to(torch.float64)
        try:
            if torch.broadcast_shapes(f.shape, (1, *shape)) != (1, *shape):
                return None
        except RuntimeError:
            return None
        return lambda lam, shapes: (lam * f,)

    def channel_scale(weight: Any, var: Any, eps: Any) -> _Back | None:  # batch norm in eval mode
        v = value(var)
        if not isinstance(v, torch.Tensor) or not shape:
            return None
        w = value(weight)
        factor = (w if isinstance(w, torch.Tensor) else torch.ones_like(v)) / torch.sqrt(v + float(eps))
        return scale(factor.reshape(-1, *([1] * (len(shape) - 1))))

    def plus_minus(subtract: bool, alpha: Any) -> _Back | None:
        a, b = (*node.args, None, None)[:2]
        if "other" in node.kwargs:
            b = node.kwargs["other"]
        if not same or a is b:
            return None
        coefficient = {a: 1.0, b: (-1.0 if subtract else 1.0) * float(alpha if alpha is not None else 1)}
        found = [coefficient.get(d) for d in deps]
        signs = [float(c) for c in found if c is not None]
        if len(signs) != len(found):
            return None
        return lambda lam, shapes: tuple(lam if c == 1.0 else lam * c for c in signs)

    def scaled() -> _Back | None:  # mul / div by a constant (the dependent argument first for div)
        a, b = (*node.args, None, None)[:2]
        other = b if isinstance(a, fx.Node) and a in deps else a
        c = value(other)
        name = target.overloadpacket.__name__ if isinstance(target, torch._ops.OpOverload) else str(target)
        div = target in (operator.truediv, torch.div) or name in ("div", "div_")
        if isinstance(c, torch.Tensor):
            return scale(1.0 / c.to(torch.float64) if div else c)
        if isinstance(c, (int, float)) and same and len(parent_shapes) == 1:
            k = 1.0 / float(c) if div else float(c)
            return lambda lam, shapes: (lam * k,)
        return None

    def reshape() -> _Back:
        return lambda lam, shapes: tuple(lam.reshape(lam.shape[0], *p) for p in shapes)

    if node.op == "call_module":
        m = modules[str(target)]
        if isinstance(m, nn.Linear):
            return linear(m.weight)
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                return None
            return conv(m.weight, m.stride, m.padding, m.dilation, m.groups)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return channel_scale(m.weight, m.running_var, m.eps)
        if isinstance(m, Normalize):
            return scale(1.0 / m.std.to(torch.float64))
        if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Unflatten)):
            return reshape()
        return None
    if isinstance(target, torch._ops.OpOverload):
        op = target.overloadpacket.__name__
        names = [a.name for a in target._schema.arguments]

        def arg(name: str) -> Any:
            if name not in names:
                return None
            i = names.index(name)
            if i < len(node.args):
                return node.args[i]
            a = target._schema.arguments[i]
            return node.kwargs.get(name, a.default_value if a.has_default_value() else None)

        if op in _ATEN_RESHAPE or op in _ATEN_IDENTITY or op == "dropout":
            return reshape()
        if op == "linear":
            return linear(arg("weight"))
        if op in ("mm", "matmul"):
            return linear(node.args[1], transpose=True)
        if op in ("conv2d", "convolution", "_convolution"):
            return conv(arg("weight"), arg("stride"), arg("padding"), arg("dilation"), arg("groups"))
        if op in _ATEN_BN:
            return channel_scale(arg("weight"), arg("running_var"), arg("eps"))
        if op in ("add", "add_", "sub", "sub_"):
            return plus_minus(op.startswith("sub"), arg("alpha"))
        if op == "neg" and same:
            return lambda lam, shapes: (-lam,)
        if op in ("mul", "mul_", "div", "div_"):
            return scaled()
        return None
    if (node.op == "call_method" and target in _RESHAPE_METHODS | _IDENTITY_METHODS) or target in _RESHAPE_FUNCTIONS:
        return reshape()
    if target is F.dropout:
        return reshape()
    if target in (operator.add, torch.add, operator.iadd, operator.sub, torch.sub, operator.isub) or (
        node.op == "call_method" and target in ("add", "sub", "add_", "sub_")
    ):
        subtract = target in (operator.sub, torch.sub, operator.isub, "sub", "sub_")
        return plus_minus(subtract, node.kwargs.get("alpha"))
    if target in (operator.neg, torch.neg) and same:
        return lambda lam, shapes: (-lam,)
    if target in (operator.mul, torch.mul, operator.imul, operator.truediv, torch.div) or (
        node.op == "call_method" and target in ("mul", "div")
    ):
        return scaled()
    if target is F.linear:
        return linear(node.args[1] if len(node.args) > 1 else node.kwargs.get("weight"))
    if target is F.conv2d:

        def get(i: int, name: str, default: Any) -> Any:
            return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)

        return conv(
            get(1, "weight", None),
            get(3, "stride", 1),
            get(4, "padding", 0),
            get(5, "dilation", 1),
            get(6, "groups", 1),
        )
    if target in (operator.matmul, torch.matmul, torch.mm) or (node.op == "call_method" and target == "matmul"):
        return linear(node.args[1], transpose=True)
    return None


def _dense_back(op: _Op, parent_shapes: list[tuple[int, ...]]) -> _Back | None:
    """``Λ ↦ Λ A`` by the dense matrix of any other affine op (pooling, ``cat``, ``mean`` …) whose matrix has at
    most ``_DENSE`` entries per parent: column block ``A_p = op(e_i at parent p, 0 elsewhere) − op(0)``; None
    when larger, or when ``op.fn`` cannot take a batch of basis vectors (then the autograd vjp)."""
    fn, n = op.fn, op.size
    if fn is None or any(math.prod(p) * n > _DENSE for p in parent_shapes):
        return None
    try:
        with torch.no_grad():
            zeros = [torch.zeros(1, *p, dtype=torch.float64) for p in parent_shapes]
            base = fn(*zeros).reshape(1, n)
            blocks = []
            for k, p in enumerate(parent_shapes):
                size = math.prod(p)
                basis = torch.eye(size, dtype=torch.float64).reshape(size, *p)
                args = [basis if j == k else z.expand(size, *z.shape[1:]) for j, z in enumerate(zeros)]
                blocks.append((fn(*args).reshape(size, n) - base).T.contiguous())  # (out, in)
    except (RuntimeError, UnsupportedLayerError):
        return None

    def back(lam: torch.Tensor, shapes: list[tuple[int, ...]]) -> tuple[torch.Tensor, ...]:
        flat = lam.reshape(len(lam), -1)
        return tuple((flat @ d).reshape(len(lam), *p) for d, p in zip(blocks, shapes, strict=True))

    return back


def _out_of_place(target: Any) -> Any:
    """aten ``add_`` → ``add`` (in-place operators are not differentiable under torch.func)."""
    name = target.overloadpacket.__name__
    if not name.endswith("_"):
        return target
    packet = getattr(torch.ops.aten, name[:-1])
    return getattr(packet, target._overloadname)


def crown_margin_bounds(
    model: nn.Module | Classifier,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "l2",
    *,
    intermediate: str = "auto",
) -> torch.Tensor:
    """CROWN lower bounds of every margin ``f_y(x') − f_k(x')`` over the ball ``‖x' − x‖_p ≤ ε``.

    Parameters
    ----------
    model : nn.Module or Classifier — logits (B, K) of inputs x (normalisation, if any, inside it)
    x : (B, *input_shape) inputs (pixel units)
    labels : (B,) int — the class y whose margins are bounded
    eps : float or (B,) radii ≥ 0 (input units)
    norm : "l2" or "linf"
    intermediate : "auto", "crown" or "ibp" (module docstring)

    Returns
    -------
    (B, K) float64 tensor on the CPU — sound lower bounds; ``+inf`` at ``k = y``. ``min_k > 0`` means
    the label y is certified on the whole ball.

    Raises
    ------
    UnsupportedLayerError
        a layer without a relaxation here (named).
    InvalidInputError
        shapes, labels, eps or norm out of range.

    References: Zhang et al., NeurIPS 2018, Thm. 3.2 (CROWN); module docstring.
    """
    x = torch.as_tensor(x)
    net = CrownNetwork(model, tuple(x.shape[1:]), intermediate=intermediate)
    return net.margin_bounds(x, labels, eps, norm)


def crown_radius(
    model: nn.Module | Classifier,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    norm: str = "l2",
    lower: float | None = None,
    upper: float | None = None,
    tol: float = 1e-4,
    max_radius: float | None = None,
    intermediate: str = "auto",
) -> torch.Tensor:
    """The CROWN-certified radius: the largest ε at which every margin lower bound is positive.

    Bisection on ε per point (every step a full CROWN computation). The bracket starts at
    ``[lower, upper]`` when given (``lower``: a radius believed certified, e.g. a Lipschitz
    certificate — checked, and dropped where CROWN does not certify it; ``upper``: e.g. an attack
    radius, which no sound radius exceeds) and grows by ×4 while CROWN still certifies its top.

    Parameters
    ----------
    model : nn.Module or Classifier
    x : (B, *input_shape) inputs
    labels : (B,) int — the protected class (usually the predicted one)
    norm : "l2" or "linf"
    lower, upper : optional bracket (input units)
    tol : relative width at which bisection stops: ``hi − lo ≤ tol · hi``
    max_radius : radii are capped here (and the search never looks beyond it)
    intermediate : "auto", "crown" or "ibp" (module docstring)

    Returns
    -------
    (B,) float64 tensor on the CPU — certified radii in the input's units (the bracket's certified
    end ``lo``, so every returned radius is itself certified); 0 where the margin at ``x`` is not
    positive.

    Raises
    ------
    UnsupportedLayerError, InvalidInputError — as :func:`crown_margin_bounds`.
    """
    x = torch.as_tensor(x)
    net = CrownNetwork(model, tuple(x.shape[1:]), intermediate=intermediate)
    return net.radius(x, labels, norm=norm, lower=lower, upper=upper, tol=tol, max_radius=max_radius)
