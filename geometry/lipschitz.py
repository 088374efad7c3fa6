"""Upper bounds on the ℓ2 Lipschitz constant of a classifier, pixels → logits (DESIGN §8).

Lipschitz-margin certification (Tsuzuku, Sato, Sugiyama, "Lipschitz-Margin Training", NeurIPS 2018,
§3–4) needs an *upper* bound ``L`` of the network's ℓ2 Lipschitz constant: then no perturbation
smaller than ``margin / (√2 · L)`` changes the label (:mod:`geometry.certify`). A power-iteration
estimate of a layer's spectral norm approaches it from *below*, so a certificate built on it alone
can be unsound; this module returns, for every layer, both the power-iteration estimate and a
guaranteed upper bound, and says which method produced each number.

The network (``clf.network``: normalisation included) is traced with :mod:`torch.fx` (so functional
ReLUs, ``flatten`` and residual additions are seen, and a module called twice counts twice) and every
node gets a bound of the map input → node:

==========================  ======================================================================
node                        bound of the layer
==========================  ======================================================================
Linear, Conv2d              spectral norm of the *operator* (a convolution on its input shape, not
                            the reshaped kernel): ``min`` of two sound bounds — the exact spectrum
                            of the dense Gram operator AᵀA (eigvalsh in float64 plus its rounding
                            slack; only when the input has at most :data:`DENSE_LIMIT` entries) and
                            Gram iteration (Delattre et al., ICML 2023, Alg. 1) on the per-frequency
                            matrices of the circular convolution that contains the zero-padded one;
                            the power-iteration estimate on ``conv2d`` / its adjoint beside it
BatchNorm (eval)            max |γ| / √(var + eps) (exact)
normalisation               max 1/std (exact)
ReLU, LeakyReLU, softplus,  sup |σ'| (1 for these; sigmoid ¼, GELU 1.13, SiLU 1.10)
tanh, ELU …
MaxPool                     √(windows per input): 1 for non-overlapping windows
AvgPool, AdaptiveAvgPool    √(windows per input / smallest window): exact when windows tile
x + g(x), cat               L_x + L_g, √(ΣL²)
flatten, view, dropout …    1
==========================  ======================================================================

Uploaded programs are walked through their graphs: a ``torch.export`` program (an fx graph of ATen
operators) and a TorchScript module (frozen, converted to the same ATen nodes by
:mod:`geometry.lipschitz_torchscript`) are inlined into the trace and bounded operator by operator
with the rules above (``aten.conv2d`` / ``convolution`` / ``_convolution``, ``linear``, ``batch_norm``, pooling,
activations, ``add``, ``cat``, views …). Layers or operators it cannot bound raise
:class:`UnsupportedLayerError` naming them.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .classifier import Classifier, Normalize
from .errors import AtlasError
from .lipschitz_torchscript import script_to_fx

__all__ = [
    "DENSE_LIMIT",
    "LayerBound",
    "LipschitzBound",
    "UnsupportedLayerError",
    "gram_iteration",
    "lipschitz_bound",
    "operator_norm_bounds",
]

DENSE_LIMIT = 2048  # largest operator input size (entries) for which the dense Gram operator AᵀA is formed
#: (upper bound, power-iteration estimate) of the Lipschitz constant of the network up to a graph node;
#: None where the node does not depend on the input.
_Bounds: TypeAlias = tuple[float, float] | None
_EPS64 = float(np.finfo(np.float64).eps)


class UnsupportedLayerError(AtlasError):
    """The network contains a layer (or graph operation) this module cannot bound."""


@dataclass(frozen=True)
class LayerBound:
    """One layer's ℓ2 Lipschitz constant.

    Attributes
    ----------
    name : str — the module's qualified name (or the graph node's name for functional operations)
    kind : str — e.g. ``"Conv2d"``, ``"Linear"``, ``"normalisation"``, ``"ReLU"``
    input_shape : tuple of int — the layer's input shape without the batch dimension
    upper : float — a guaranteed upper bound of its Lipschitz constant
    estimate : float — power-iteration estimate (a lower bound up to convergence); ``== upper`` for
        layers whose constant is known exactly
    method : str — how ``upper`` was obtained
    """

    name: str
    kind: str
    input_shape: tuple
    upper: float
    estimate: float
    method: str


@dataclass(frozen=True)
class LipschitzBound:
    """An upper bound of the ℓ2 Lipschitz constant of pixels → logits, and its ingredients.

    Attributes
    ----------
    upper : float — sound bound ``L`` (sound layer bounds composed over the graph: products along
        chains, sums over residual branches)
    estimate : float — the same composition of power-iteration estimates (not sound)
    layers : tuple of LayerBound — in execution order; only layers with a constant ≠ 1 or that
        carry weights are listed
    body_upper, body_estimate : float or None — the bound of pixels → input of the last ``Linear``
        layer (None when the logits do not come from a Linear layer)
    last_weight : (L, h) float64 tensor or None — that layer's weight (for the pair refinement)
    method : str — one line saying which bound each number uses

    References: Tsuzuku et al., NeurIPS 2018, §4 (layer-wise bounds, pairwise refinement);
    Delattre et al., "Efficient Bound of Lipschitz Constant for Convolutional Layers by Gram
    Iteration", ICML 2023, Alg. 1.
    """

    upper: float
    estimate: float
    layers: tuple
    body_upper: float | None
    body_estimate: float | None
    last_weight: torch.Tensor | None
    method: str

    @property
    def pair_norms(self) -> torch.Tensor | None:
        """(L, L) ‖w_i − w_j‖₂ of the last layer's rows, or None."""
        if self.last_weight is None:
            return None
        return torch.cdist(self.last_weight, self.last_weight)


# ---------------------------------------------------------------------------- spectral norms
def gram_iteration(matrices: torch.Tensor, *, n_iter: int = 12) -> torch.Tensor:
    """Guaranteed upper bounds of the spectral norms of a batch of (real or complex) matrices.

    Gram iteration (Delattre et al., ICML 2023, Alg. 1): ``G ← Gᴴ G`` with rescaling, so that
    ``σ₁(W)^(2^t) = σ₁(G_t) ≤ ‖G_t‖_F``; the bound ``‖G_t‖_F^(1/2^t)`` exceeds σ₁ by at most the
    factor ``rank^(1/2^(t+1))`` (1.0006 for rank 120 at t = 12) and is never below it.

    Parameters
    ----------
    matrices : (..., m, n) tensor (computed in float64 / complex128)
    n_iter : int ≥ 1

    Returns
    -------
    (...) float64 tensor — upper bounds, one per matrix (slightly inflated for rounding).
    """
    G = matrices.to(torch.complex128 if matrices.is_complex() else torch.float64)
    if G.shape[-2] < G.shape[-1]:  # work on the smaller Gram side
        G = G.mT.conj()
    log_scale = torch.zeros(G.shape[:-2], dtype=torch.float64)
    for _t in range(n_iter):
        f = torch.linalg.matrix_norm(G, ord="fro").clamp_min(1e-300)
        log_scale = 2.0 * (log_scale + torch.log(f))  # G_{t+1} = c_{t+1} · G̃_{t+1}
        G = G / f[..., None, None]
        G = G.mT.conj() @ G
    fro = torch.linalg.matrix_norm(G, ord="fro").clamp_min(1e-300)
    bound = torch.exp((log_scale + torch.log(fro)) / 2**n_iter)
    return bound * (1.0 + 1e-9)


def _power_iteration(op: Callable, shape: tuple, *, n_iter: int, generator: torch.Generator) -> float:
    """σ₁ of the linear map ``op`` (on inputs of ``shape``, batch of one) by power iteration on AᵀA."""
    v = torch.randn((1, *shape), generator=generator, dtype=torch.float64)
    v = v / v.norm()
    sigma = 0.0
    for _ in range(n_iter):
        Av, vjp = torch.func.vjp(op, v)[:2]
        sigma = float(Av.norm())
        (w,) = vjp(Av)
        n = w.norm()
        if n == 0:
            return 0.0
        v = w / n
    return max(sigma, float(op(v).norm()))


def _dense_gram_bound(op: Callable, shape: tuple, *, chunk: int = 256) -> float:
    """σ₁ of ``op`` from the eigenvalues of the dense AᵀA (float64), plus a rounding slack."""
    D = math.prod(shape)
    M = torch.empty(D, D, dtype=torch.float64)
    for start in range(0, D, chunk):
        stop = min(D, start + chunk)
        E = torch.zeros(stop - start, D, dtype=torch.float64)
        E[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        E = E.reshape(-1, *shape)
        AE, vjp = torch.func.vjp(op, E)[:2]
        (ATAE,) = vjp(AE)
        M[:, start:stop] = ATAE.reshape(stop - start, D).T
    M = 0.5 * (M + M.T)
    lam = float(torch.linalg.eigvalsh(M)[-1])
    # backward stability of the symmetric eigensolver: computed λ are exact for M + E, ‖E‖ ≲ c·D·eps·‖M‖
    slack = 10.0 * D * _EPS64 * float(torch.linalg.matrix_norm(M, ord="fro"))
    return math.sqrt(max(lam, 0.0) + slack)


def _conv_fourier_bound(conv: nn.Conv2d, shape: tuple, *, n_iter: int = 12) -> float:
    """Sound bound of a zero-padded Conv2d: the norm of the circular convolution on the padded grid.

    The zero-padded (strided) convolution is a restriction of the circular convolution on an
    ``(H + 2p_h) × (W + 2p_w)`` grid (zero embedding, then selection of outputs), whose norm is
    ``max_ω σ₁(K̂(ω))`` over the 2-D DFT of the kernel; each σ₁ by :func:`gram_iteration`.
    """
    _, H, W = shape
    w = conv.weight.detach().to(torch.float64)
    kh, kw = w.shape[-2:]
    dh, dw = conv.dilation
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if conv.padding == "same":
        ph, pw = eff_h - 1, eff_w - 1  # total padding
    elif conv.padding == "valid":
        ph, pw = 0, 0
    else:
        ph, pw = 2 * int(conv.padding[0]), 2 * int(conv.padding[1])
    Nh, Nw = max(H + ph, eff_h), max(W + pw, eff_w)
    g = conv.groups
    cout, cin_g = w.shape[0], w.shape[1]
    K = torch.zeros(cout, cin_g, Nh, Nw, dtype=torch.float64)
    K[:, :, :eff_h:dh, :eff_w:dw] = w
    Kf = torch.fft.fft2(K)  # (cout, cin/g, Nh, Nw)
    Kf = Kf.reshape(g, cout // g, cin_g, Nh, Nw).permute(0, 3, 4, 1, 2)  # (g, Nh, Nw, cout/g, cin/g)
    return float(gram_iteration(Kf.reshape(-1, cout // g, cin_g), n_iter=n_iter).max())


def operator_norm_bounds(
    module: nn.Module, input_shape: tuple, *, n_power: int = 50, random_state: int = 0, dense_limit: int = DENSE_LIMIT
) -> tuple[float, float, str]:
    """(sound upper bound, power-iteration estimate, method) of a Linear / Conv2d layer's operator norm.

    Parameters
    ----------
    module : nn.Linear or nn.Conv2d (bias ignored: a Lipschitz constant does not see it)
    input_shape : its input shape without the batch dimension, e.g. (C, H, W)
    n_power : power iterations on AᵀA (``conv2d`` and its adjoint ``conv_transpose2d`` via autograd)
    random_state : seed of the power iteration's start vector
    dense_limit : form the dense Gram operator (exact spectrum) only up to this input size

    Raises
    ------
    UnsupportedLayerError
        a convolution with a padding mode other than zeros.
    """
    gen = torch.Generator().manual_seed(int(random_state))
    if isinstance(module, nn.Linear):
        W = module.weight.detach().to(torch.float64)
        est = _power_iteration(lambda x: F.linear(x, W), input_shape, n_iter=n_power, generator=gen)
        upper = float(gram_iteration(W, n_iter=12))
        return upper, est, "Gram iteration on the weight matrix"
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise UnsupportedLayerError(f"a Conv2d with padding_mode={module.padding_mode!r} (only zeros is bounded)")
        W = module.weight.detach().to(torch.float64)

        def op(x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, W, None, module.stride, module.padding, module.dilation, module.groups)

        est = _power_iteration(op, input_shape, n_iter=n_power, generator=gen)
        fourier = _conv_fourier_bound(module, input_shape)
        if math.prod(input_shape) <= dense_limit and fourier > 1.001 * est:  # else already tight
            dense = _dense_gram_bound(op, input_shape)
            if dense <= fourier:
                return dense, est, "exact spectrum of the dense operator AᵀA (eigvalsh, float64, + rounding slack)"
        return fourier, est, "Gram iteration on the circular-convolution frequency matrices (Delattre et al. 2023)"
    raise UnsupportedLayerError(f"{type(module).__name__} is not a Linear or Conv2d layer")


# ---------------------------------------------------------------------------- the graph walk
_ACTIVATIONS: dict[type, float] = {
    nn.ReLU: 1.0,
    nn.ReLU6: 1.0,
    nn.Softplus: 1.0,
    nn.Tanh: 1.0,
    nn.Hardtanh: 1.0,
    nn.Sigmoid: 0.25,
    nn.GELU: 1.1289,  # sup of Φ(x) + xφ(x), attained at x = √2
    nn.SiLU: 1.0999,  # sup of σ(x)(1 + x(1 − σ(x)))
    nn.Mish: 1.0891,
    nn.Hardswish: 1.5,
    nn.Softsign: 1.0,
}
_IDENTITIES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Unflatten)
_SHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, F.dropout}
_SHAPE_METHODS = {"flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "clone", "to", "float", "double"}
_ACT_FUNCTIONS = {F.relu: 1.0, torch.relu: 1.0, torch.tanh: 1.0, F.softplus: 1.0, F.gelu: 1.1289, F.silu: 1.0999}
_ACT_METHODS = {"relu": 1.0, "tanh": 1.0}
_ADD = {operator.add, torch.add, operator.iadd}
_SUB = {operator.sub, torch.sub, operator.isub}


def _activation_constant(m: nn.Module) -> float | None:
    if isinstance(m, nn.LeakyReLU):
        return max(1.0, abs(float(m.negative_slope)))
    if isinstance(m, nn.ELU):
        return max(1.0, float(m.alpha))
    if isinstance(m, nn.Softplus):
        return 1.0
    for cls, c in _ACTIVATIONS.items():
        if type(m) is cls:
            return c
    return None


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _max_pool_constant(kernel: int | Sequence[int], stride: int | Sequence[int] | None) -> float:
    """√(max number of windows that share one input): |max_W x − max_W x'| ≤ max_W |x − x'|."""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride if stride is not None else kernel)
    return math.sqrt(math.ceil(kh / sh) * math.ceil(kw / sw))


def _avg_pool_constant(m: nn.AvgPool2d) -> tuple[float, str]:
    (kh, kw), (sh, sw) = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    if any(_pair(m.padding)) and not m.count_include_pad:
        raise UnsupportedLayerError("an AvgPool2d with padding and count_include_pad=False")
    if m.divisor_override or m.ceil_mode:
        raise UnsupportedLayerError("an AvgPool2d with divisor_override or ceil_mode (partial windows)")
    overlap = math.ceil(kh / sh) * math.ceil(kw / sw)
    exact = overlap == 1
    return math.sqrt(
        overlap / (kh * kw)
    ), "exact (windows tile)" if exact else "Cauchy–Schwarz over overlapping windows"


def _adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * n / out), math.ceil((i + 1) * n / out)) for i in range(out)]


def _adaptive_avg_constant(out_size: Any, shape: tuple) -> tuple[float, str]:
    H, W = shape[-2], shape[-1]
    oh, ow = _pair(out_size) if out_size is not None else (H, W)
    oh = H if oh is None else oh
    ow = W if ow is None else ow
    bh, bw = _adaptive_bins(H, oh), _adaptive_bins(W, ow)
    cover_h = max(sum(a <= i < b for a, b in bh) for i in range(H))
    cover_w = max(sum(a <= i < b for a, b in bw) for i in range(W))
    area = min(b - a for a, b in bh) * min(b - a for a, b in bw)
    exact = cover_h == 1 and cover_w == 1 and H % oh == 0 and W % ow == 0
    return math.sqrt(cover_h * cover_w / area), "exact (bins tile)" if exact else "Cauchy–Schwarz over the bins"


def _is_exported(m: nn.Module) -> bool:
    """An fx GraphModule of ATen operators (``torch.export``'s ``ExportedProgram.module()``)."""
    return isinstance(m, fx.GraphModule) and any(
        isinstance(n.target, torch._ops.OpOverload) for n in m.graph.nodes if n.op == "call_function"
    )


def _is_graph_leaf(m: nn.Module) -> bool:
    """A module whose graph is inlined into the traced one: an exported program or a TorchScript module."""
    return _is_exported(m) or isinstance(m, torch.jit.ScriptModule)


#: One trace at a time in the process: torch.fx patches ``nn.Module.__call__`` / ``__getattr__`` for the whole
#: process while it traces, and two overlapping patches would restore each other's originals out of order.
_TRACE_LOCK = threading.Lock()


class _Tracer(fx.Tracer):
    """torch.fx's tracer, confined to the thread that traces (issue 22, item 4).

    While :meth:`trace` runs, torch.fx has replaced ``nn.Module.__call__`` for every thread; a module called
    by another thread at that moment (a background job training a network) went into :meth:`call_module`
    and failed with ``NameError: module is not installed as a submodule``. Here a call from another thread
    is passed straight to the module's own ``__call__``: it neither sees nor disturbs the trace.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if threading.get_ident() != self._thread:  # another thread's module call during the trace
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if threading.get_ident() != self._thread:  # another thread reading a module's parameter: the value
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, Normalize) or _is_graph_leaf(m) or super().is_leaf_module(m, qualname)


def _inline_exported(gm: fx.GraphModule) -> fx.GraphModule:
    """Replace every call of an exported (ATen) GraphModule by the nodes of its graph.

    Its ``get_attr`` / ``call_module`` targets get the module's qualified name as prefix, its single
    placeholder becomes the call's argument and its (one-element) output the call's value.
    """
    modules = dict(gm.named_modules())
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        inner = modules.get(str(node.target)) if node.op == "call_module" else None
        if inner is None or not _is_graph_leaf(inner):
            env[node] = graph.node_copy(node, lambda a: env[a])
            continue
        if isinstance(inner, torch.jit.ScriptModule):  # its frozen graph, as ATen operators
            inner = script_to_fx(inner, UnsupportedLayerError)
            gm.set_submodule(str(node.target), inner)  # gm's own module tree: the user's network is untouched
        prefix = f"{node.target}."
        placeholders = [n for n in inner.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1 or len(node.args) != 1 or node.kwargs:
            raise UnsupportedLayerError(
                f"the exported program at {str(node.target)!r} takes {len(placeholders)} inputs: only "
                "programs of one image tensor are bounded"
            )
        inner_env: dict[fx.Node, fx.Node] = {placeholders[0]: env[node.args[0]]}
        for n in inner.graph.nodes:
            if n.op == "placeholder" or (n.op == "call_module" and not n.users):
                continue  # the input, or a guard on its shape (``_guards_fn``): no effect on the logits
            if n.op == "output":
                result = n.args[0]
                if isinstance(result, (tuple, list)):
                    if len(result) != 1:
                        raise UnsupportedLayerError(
                            f"the exported program at {str(node.target)!r} returns {len(result)} outputs: "
                            "only a single logits tensor is bounded"
                        )
                    result = result[0]
                env[node] = inner_env[result]
                continue
            copied = graph.node_copy(n, inner_env.__getitem__)
            if n.op in ("get_attr", "call_module"):
                copied.target = prefix + str(n.target)
            inner_env[n] = copied
    return fx.GraphModule(gm, graph)


def _trace(network: nn.Module, input_shape: tuple, dtype: torch.dtype) -> fx.GraphModule:
    try:
        with _TRACE_LOCK:
            gm = fx.GraphModule(network, _Tracer().trace(network))
        if any(_is_graph_leaf(m) for m in gm.modules()):
            gm = _inline_exported(gm)
        probe = torch.zeros((1, *input_shape), dtype=dtype)
        with torch.no_grad():
            gm(probe)  # a graph that cannot run fails here, before ShapeProp prints its own traceback to stderr
        ShapeProp(gm).propagate(probe)
    except UnsupportedLayerError:
        raise
    except Exception as exc:  # torch.fx raises many kinds on data-dependent control flow
        raise UnsupportedLayerError(
            f"cannot trace this network's graph to bound its layers ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    return gm


def _shape(node: Any) -> tuple:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else ()


def _constant(gm: fx.GraphModule, arg: Any) -> torch.Tensor | None:
    """The value of a graph constant (a number or a buffer / parameter), or None."""
    if isinstance(arg, (int, float)):
        return torch.tensor(float(arg), dtype=torch.float64)
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        obj = gm
        for part in str(arg.target).split("."):
            obj = getattr(obj, part)
        return torch.as_tensor(obj).detach().to(torch.float64)
    return None


# ---------------------------------------------------------------------------- ATen graphs (.pt2)
_ATEN_SHAPE = {
    "view",
    "reshape",
    "_unsafe_view",
    "flatten",
    "squeeze",
    "unsqueeze",
    "clone",
    "contiguous",
    "alias",
    "detach",
    "permute",
    "transpose",
    "t",
    "_to_copy",
    "to",
    "lift_fresh_copy",
    "slice",
    "select",
}  # isometries or restrictions: constant ≤ 1
_ATEN_ACT = {
    "relu": 1.0,
    "relu_": 1.0,
    "tanh": 1.0,
    "hardtanh": 1.0,
    "hardtanh_": 1.0,
    "relu6": 1.0,
    "softplus": 1.0,
    "softsign": 1.0,
    "sigmoid": 0.25,
    "gelu": 1.1289,
    "silu": 1.0999,
    "silu_": 1.0999,
    "mish": 1.0891,
    "hardswish": 1.5,
    "hardswish_": 1.5,
}
_ATEN_BN = {"batch_norm", "_native_batch_norm_legit_no_training"}
_ATEN_CONV = {"conv2d", "convolution", "_convolution"}  # _convolution: what torch.jit.trace records


def _aten_args(node: fx.Node) -> dict:
    """The node's arguments by their schema names, defaults filled in."""
    schema = node.target._schema  # type: ignore[union-attr]
    out = {}
    for i, a in enumerate(schema.arguments):
        if i < len(node.args):
            out[a.name] = node.args[i]
        elif a.name in node.kwargs:
            out[a.name] = node.kwargs[a.name]
        else:
            out[a.name] = a.default_value if a.has_default_value() else None
    return out


def _aten_weight(gm: fx.GraphModule, node: fx.Node, arg: Any, what: str) -> torch.Tensor:
    value = _constant(gm, arg) if isinstance(arg, fx.Node) else None
    if value is None:
        raise UnsupportedLayerError(
            f"cannot bound the operator {node.target} (graph node {node.name!r}): its {what} is not a "
            "parameter or buffer of the program"
        )
    return value


def _layer_name(arg: Any, node: fx.Node) -> str:
    """``conv1`` for a weight read from ``conv1.weight``; the node's name otherwise."""
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        return str(arg.target).rsplit(".", 1)[0]
    return node.name


def _aten_bound(
    gm: fx.GraphModule, node: fx.Node, of: Callable, scaled: Callable, *, n_power: int, random_state: int
) -> tuple[_Bounds, torch.Tensor | None]:
    """Bound of one ATen operator node: (bound, weight of a linear layer or None).

    The same rules as for modules (table of the module docstring), read from the operator's schema.
    """
    op = node.target.overloadpacket.__name__  # type: ignore[union-attr]
    d = _aten_args(node)
    first = node.args[0]
    src, shape = of(first), _shape(first)
    where = f"{node.target} (graph node {node.name!r})"
    if op in _ATEN_SHAPE:
        return src, None
    if op in ("size", "sym_size", "Int", "ScalarImplicit"):
        return None, None  # the input's shape, not its values (``x.view(x.size(0), -1)`` traced)
    if op == "dropout":
        if d.get("train"):
            raise UnsupportedLayerError(f"cannot bound {where}: dropout in training mode")
        return src, None
    if op in _ATEN_ACT or op in ("leaky_relu", "leaky_relu_", "elu", "elu_"):
        if op.startswith("leaky_relu"):
            c = max(1.0, abs(float(d["negative_slope"])))
        elif op.startswith("elu"):
            c = abs(float(d["scale"])) * max(1.0, abs(float(d["alpha"]) * float(d["input_scale"])))
        else:
            c = _ATEN_ACT[op]
        return scaled(src, c, c, node.name, op, shape, "sup |σ'|", c != 1.0), None
    if op in _ATEN_CONV or op == "linear":
        if of(d["weight"]) is not None:
            raise UnsupportedLayerError(f"cannot bound {where}: its weight depends on the input")
        w = _aten_weight(gm, node, d["weight"], "weight")
        if op == "linear":
            m: nn.Module = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.float64)
        else:
            if op in ("convolution", "_convolution") and d["transposed"]:
                raise UnsupportedLayerError(f"cannot bound {where}: transposed convolution")
            if w.dim() != 4:
                raise UnsupportedLayerError(f"cannot bound {where}: only 2-D convolutions are bounded")
            groups = int(d["groups"])
            padding = d["padding"] if isinstance(d["padding"], str) else _pair(d["padding"])
            m = nn.Conv2d(
                w.shape[1] * groups,
                w.shape[0],
                (int(w.shape[-2]), int(w.shape[-1])),
                stride=_pair(d["stride"]),
                padding=padding,
                dilation=_pair(d["dilation"]),
                groups=groups,
                bias=False,
                dtype=torch.float64,
            )
        with torch.no_grad():
            m.get_parameter("weight").copy_(w)
        up, est, method = operator_norm_bounds(m, shape, n_power=n_power, random_state=random_state)
        kind = "Linear" if op == "linear" else "Conv2d"
        return scaled(src, up, est, _layer_name(d["weight"], node), kind, shape, method), (
            w if op == "linear" else None
        )
    if op in _ATEN_BN:
        if op == "batch_norm" and d["training"]:
            raise UnsupportedLayerError(f"cannot bound {where}: batch statistics (training mode)")
        running_var = _aten_weight(gm, node, d["running_var"], "running variance")
        scale = 1.0 / torch.sqrt(running_var + float(d["eps"]))
        if d["weight"] is not None:
            scale = scale * _aten_weight(gm, node, d["weight"], "weight")
        c = float(scale.abs().max())
        name = _layer_name(d["running_var"], node)
        return scaled(src, c, c, name, "BatchNorm", shape, "exact: max |γ|/√(var+eps)"), None
    if op in ("max_pool2d", "max_pool2d_with_indices"):
        if _pair(d["dilation"]) != (1, 1):
            raise UnsupportedLayerError(f"cannot bound {where}: dilated max pooling")
        c = _max_pool_constant(d["kernel_size"], d["stride"] or None)
        return scaled(src, c, c, node.name, "max_pool2d", shape, "√(windows per input)", c != 1.0), None
    if op == "avg_pool2d":
        pool = nn.AvgPool2d(
            _pair(d["kernel_size"]),
            _pair(d["stride"]) if d["stride"] else None,
            _pair(d["padding"]),
            bool(d["ceil_mode"]),
            bool(d["count_include_pad"]),
            d["divisor_override"],
        )
        try:
            c, method = _avg_pool_constant(pool)
        except UnsupportedLayerError as exc:
            raise UnsupportedLayerError(f"cannot bound {where}: {exc}") from exc
        return scaled(src, c, c, node.name, "avg_pool2d", shape, method), None
    if op in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d"):
        c, method = _adaptive_avg_constant(d["output_size"], shape)
        return scaled(src, c, c, node.name, "adaptive_avg_pool2d", shape, method), None
    if op == "mean":
        n_in, n_out = math.prod(shape), math.prod(_shape(node))
        c = math.sqrt(n_out / n_in) if n_in else 1.0
        return scaled(src, c, c, node.name, "mean", shape, "exact: 1/√(entries averaged)"), None
    if op in ("add", "add_", "sub", "sub_"):
        alpha = abs(float(d.get("alpha", 1) or 1))
        terms = [b for b in (of(first), of(node.args[1]) if len(node.args) > 1 else None) if b is not None]
        if of(first) is not None and len(terms) == 2:
            terms[1] = (terms[1][0] * alpha, terms[1][1] * alpha)
        elif of(first) is None and terms:
            terms = [(terms[0][0] * alpha, terms[0][1] * alpha)]
        return ((sum(t[0] for t in terms), sum(t[1] for t in terms)) if terms else None), None
    if op == "neg":
        return src, None
    if op in ("mul", "mul_", "div", "div_"):
        a, b = node.args[0], node.args[1]
        if of(a) is not None and of(b) is not None:
            raise UnsupportedLayerError(f"cannot bound {where}: the product of two input-dependent tensors")
        var, const = (a, b) if of(a) is not None else (b, a)
        value = _constant(gm, const)
        if value is None or (op.startswith("div") and var is not a):
            raise UnsupportedLayerError(f"cannot bound {where}: the other operand is not a constant")
        c = float((1.0 / value if op.startswith("div") else value).abs().max())
        return scaled(of(var), c, c, node.name, "scaling", _shape(var), "exact: max |constant|", c != 1.0), None
    if op == "cat":
        terms = [b for b in (of(a) for a in first or ()) if b is not None]  # type: ignore[union-attr]
        if not terms:
            return None, None
        return (math.sqrt(sum(t[0] ** 2 for t in terms)), math.sqrt(sum(t[1] ** 2 for t in terms))), None
    raise UnsupportedLayerError(f"cannot bound the operator {where}: no Lipschitz rule for it")


def lipschitz_bound(clf: Classifier, *, n_power: int = 50, random_state: int = 0) -> LipschitzBound:
    """An upper bound of the ℓ2 Lipschitz constant of ``clf``'s pixels → logits map.

    Parameters
    ----------
    clf : Classifier — its ``network`` (normalisation included) is traced with torch.fx
    n_power : power iterations per Linear / Conv2d layer for the estimate
    random_state : seed of the power iterations

    Returns
    -------
    LipschitzBound — ``upper`` (sound), ``estimate`` (power iteration), per-layer bounds, and the
    last Linear layer's weight with the bound of the body before it (LMT's pairwise refinement).

    Raises
    ------
    UnsupportedLayerError
        a layer or graph operation it cannot bound (the message names it), or a network it cannot
        trace (data-dependent control flow; a TorchScript node without a rule).

    References: Tsuzuku et al., NeurIPS 2018, §4; Delattre et al., ICML 2023; DESIGN §8.

    Notes
    -----
    The bound is computed on the host in float64 from the weights: a classifier on a GPU is copied
    to the CPU once per call (:meth:`~geometry.classifier.Classifier.to`), the original stays put.
    """
    clf = clf.to("cpu")
    bare = _is_graph_leaf(clf.network)  # a program / script without normalisation: traced as Sequential(it)
    gm = _trace(nn.Sequential(clf.network) if bare else clf.network, tuple(clf.input_shape), clf.dtype)
    modules = dict(gm.named_modules())
    wrapped = isinstance(clf.network, nn.Sequential) and len(clf.network) == 2 and isinstance(clf.network[0], Normalize)

    def display(qualname: str) -> str:
        """The name inside the user's model (``Sequential(Normalize, model)`` is the classifier's wrapper)."""
        if bare and qualname.startswith("0."):
            return qualname[2:]
        if wrapped and qualname == "0":
            return "normalisation"
        return qualname[2:] if wrapped and qualname.startswith("1.") else qualname

    bounds: dict[fx.Node, tuple[float, float] | None] = {}
    layers: list[LayerBound] = []
    last_linear: dict[fx.Node, tuple] = {}  # node → (body bounds, weight) for Linear outputs
    output_value = None

    def of(arg: Any) -> _Bounds:
        return bounds.get(arg) if isinstance(arg, fx.Node) else None

    def scaled(
        src: _Bounds,
        up: float,
        est: float,
        name: object,
        kind: str,
        shape: tuple,
        method: str,
        record: bool = True,
    ) -> _Bounds:
        if src is None:
            return None
        if record:
            layers.append(LayerBound(display(str(name)), kind, shape, float(up), float(est), method))
        return (src[0] * up, src[1] * est)

    for node in gm.graph.nodes:
        args = node.args
        first = args[0] if args else None
        where = (
            f"{node.target}"
            if node.op != "call_module"
            else f"{type(modules[node.target]).__name__} at {display(str(node.target))!r}"
        )
        if node.op == "placeholder":
            bounds[node] = (1.0, 1.0)
            continue
        if node.op == "get_attr":
            bounds[node] = None
            continue
        if node.op == "output":
            output_value = of(first)
            output_node = first
            continue
        if not node.users or not any(of(a) is not None for a in node.all_input_nodes):
            bounds[node] = None  # dead code, or a value that does not depend on the input
            continue
        src = of(first)
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            bounds[node], weight = _aten_bound(gm, node, of, scaled, n_power=n_power, random_state=random_state)
            if weight is not None:
                last_linear[node] = (of(first), weight)
            continue
        if node.op == "call_module":
            m = modules[node.target]
            shape = _shape(first)
            if src is None:
                bounds[node] = None
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                try:
                    up, est, method = operator_norm_bounds(m, shape, n_power=n_power, random_state=random_state)
                except UnsupportedLayerError as exc:
                    raise UnsupportedLayerError(f"cannot bound {where}: {exc}") from exc
                bounds[node] = scaled(src, up, est, node.target, type(m).__name__, shape, method)
                if isinstance(m, nn.Linear):
                    last_linear[node] = (src, m.weight.detach().to(torch.float64))
            elif isinstance(m, Normalize):
                c = float((1.0 / m.std.to(torch.float64)).abs().max())
                bounds[node] = scaled(src, c, c, node.target, "normalisation", shape, "exact: max 1/std")
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.running_var is None or m.training:
                    raise UnsupportedLayerError(f"cannot bound {where}: batch statistics (not eval mode)")
                scale = 1.0 / torch.sqrt(m.running_var.to(torch.float64) + m.eps)
                if m.weight is not None:
                    scale = scale * m.weight.detach().to(torch.float64)
                c = float(scale.abs().max())
                bounds[node] = scaled(src, c, c, node.target, type(m).__name__, shape, "exact: max |γ|/√(var+eps)")
            elif isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1):
                    raise UnsupportedLayerError(f"cannot bound {where}: dilated max pooling")
                c = _max_pool_constant(m.kernel_size, m.stride)
                bounds[node] = scaled(src, c, c, node.target, "MaxPool2d", shape, "√(windows per input)", c != 1.0)
            elif isinstance(m, nn.AvgPool2d):
                try:
                    c, method = _avg_pool_constant(m)
                except UnsupportedLayerError as exc:
                    raise UnsupportedLayerError(f"cannot bound {where}: {exc}") from exc
                bounds[node] = scaled(src, c, c, node.target, "AvgPool2d", shape, method)
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                c, method = _adaptive_avg_constant(m.output_size, shape)
                bounds[node] = scaled(src, c, c, node.target, "AdaptiveAvgPool2d", shape, method)
            elif isinstance(m, _IDENTITIES):
                bounds[node] = src
            elif (act := _activation_constant(m)) is not None:
                c = act
                bounds[node] = scaled(src, c, c, node.target, type(m).__name__, shape, "sup |σ'|", c != 1.0)
            else:
                raise UnsupportedLayerError(f"cannot bound the layer {where}: no Lipschitz rule for it")
            continue
        # functional operations
        target = node.target
        if (node.op == "call_method" and target in _SHAPE_METHODS) or (
            node.op == "call_function" and target in _SHAPE_FUNCTIONS
        ):
            bounds[node] = src
        elif target in _ADD or target in _SUB or target in ("add", "sub", "add_", "sub_"):
            terms = [b for b in (of(a) for a in args[:2]) if b is not None]
            bounds[node] = (sum(t[0] for t in terms), sum(t[1] for t in terms)) if terms else None
        elif target in (operator.mul, torch.mul, operator.truediv, torch.div, "mul", "div"):
            a, b = args[0], args[1]
            if of(a) is not None and of(b) is not None:
                raise UnsupportedLayerError(
                    f"cannot bound the product of two input-dependent tensors at node {node.name!r}"
                )
            var, const = (a, b) if of(a) is not None else (b, a)
            if of(var) is None:
                bounds[node] = None
                continue
            value = _constant(gm, const)
            if value is None or (target in (operator.truediv, torch.div, "div") and var is not a):
                raise UnsupportedLayerError(
                    f"cannot bound {target} at node {node.name!r}: the other operand is not a constant"
                )
            c = float((1.0 / value if target in (operator.truediv, torch.div, "div") else value).abs().max())
            bounds[node] = scaled(of(var), c, c, node.name, "scaling", _shape(var), "exact: max |constant|", c != 1.0)
        elif target in _ACT_FUNCTIONS or target in _ACT_METHODS:
            c = _ACT_FUNCTIONS.get(target, _ACT_METHODS.get(target, 1.0))
            bounds[node] = scaled(
                src, c, c, node.name, str(getattr(target, "__name__", target)), _shape(first), "sup |σ'|", c != 1.0
            )
        elif target is F.max_pool2d:
            c = _max_pool_constant(
                args[1] if len(args) > 1 else node.kwargs["kernel_size"],
                args[2] if len(args) > 2 else node.kwargs.get("stride"),
            )
            bounds[node] = scaled(src, c, c, node.name, "max_pool2d", _shape(first), "√(windows per input)", c != 1.0)
        elif target is F.adaptive_avg_pool2d:
            out = args[1] if len(args) > 1 else node.kwargs["output_size"]
            c, method = _adaptive_avg_constant(out, _shape(first))
            bounds[node] = scaled(src, c, c, node.name, "adaptive_avg_pool2d", _shape(first), method)
        elif target in ("mean", torch.mean):
            n_in, n_out = math.prod(_shape(first)), math.prod(_shape(node))
            c = math.sqrt(n_out / n_in) if n_in else 1.0  # disjoint averages of n_in / n_out entries each
            bounds[node] = scaled(src, c, c, node.name, "mean", _shape(first), "exact: 1/√(entries averaged)")
        elif target is torch.cat:
            terms = [b for b in (of(a) for a in first or ()) if b is not None]
            bounds[node] = (
                (math.sqrt(sum(t[0] ** 2 for t in terms)), math.sqrt(sum(t[1] ** 2 for t in terms))) if terms else None
            )
        elif (node.op == "call_method" and target == "size") or target is getattr:
            bounds[node] = None  # shapes, not values
        elif target is operator.getitem and isinstance(first, fx.Node) and node.meta.get("tensor_meta") is not None:
            bounds[node] = src  # a slice of a tensor is a restriction (norm ≤ 1)
        elif target is operator.getitem:
            bounds[node] = None
        else:
            name = getattr(target, "__name__", str(target))
            raise UnsupportedLayerError(
                f"cannot bound the operation {name!r} (graph node {node.name!r}): no Lipschitz rule for it"
            )
    if output_value is None:
        raise UnsupportedLayerError("the network's output does not depend on its input")
    body = None
    node = output_node

    def reshapes(n: Any) -> bool:  # a pure reshape / identity: the logits are still the Linear layer's output
        if not isinstance(n, fx.Node) or not n.args:
            return False
        if n.op == "call_module":
            return isinstance(modules[str(n.target)], _IDENTITIES)
        return (n.op == "call_method" and n.target in _SHAPE_METHODS) or (
            n.op == "call_function" and n.target in _SHAPE_FUNCTIONS
        )

    while node not in last_linear and reshapes(node):
        node = node.args[0]  # type: ignore[union-attr]
    if node in last_linear:
        body = last_linear[node]
    method = (
        "upper: sound per-layer bounds (dense-operator spectrum or Gram iteration; exact constants elsewhere) "
        "composed over the graph; estimate: power iteration on every Linear / Conv2d operator (a lower bound)"
    )
    return LipschitzBound(
        upper=float(output_value[0]),
        estimate=float(output_value[1]),
        layers=tuple(layers),
        body_upper=None if body is None else float(body[0][0]),
        body_estimate=None if body is None else float(body[0][1]),
        last_weight=None if body is None else body[1],
        method=method,
    )
