"""The screen an uploaded model passes before any of its content is loaded: allow-lists only.

Issue 9 ("Untrusted uploads can never act on the server"). A TorchScript archive or a
``torch.export`` program is code: TorchScript's loader runs ``__setstate__`` methods compiled from
the archive's ``code/`` while loading, and a forward pass may call any registered operator —
``aten::save`` writes a file, ``aten::from_file`` reads one, ``c10d`` ops reach the network.
``torch.export.load`` evaluates (``sympify``) the symbolic shape expressions it reads. A deny-list
of the dangerous names proved unsound (a decoy zip entry hid the code from it), so everything here
is an **allow-list**: what is not listed is refused.

What is screened, and where
---------------------------
1. **The archive** (:func:`archive_entries`): every entry of the zip lies under the one record
   folder the loader uses (the folder of the first entry: PyTorch's ``PyTorchStreamReader`` takes
   the archive name from it), entry names are unique, each name matches the format's allowed
   patterns (:data:`TORCHSCRIPT_ENTRIES`, :data:`EXPORT_ENTRIES`), the zip has no comment and no
   bytes before its first entry, Python's ``zipfile`` and PyTorch's own reader list the same
   records, and every entry's CRC is checked. So what we screen is exactly what the loader reads.
2. **TorchScript code before loading** (:func:`screen_torchscript_code`): every ``code/*.py``
   file is parsed with :mod:`ast` (never executed). Every operator reference — ``torch.<op>``,
   ``ops.<namespace>.<op>``, ``math.<f>``, a method call ``obj.<op>(…)`` — must name an operator
   of :data:`ALLOWED_OPERATORS`, a method defined by the archive's own classes, or (for bare
   calls) a TorchScript builtin of :data:`ALLOWED_BUILTINS`; ``torch`` / ``ops`` may not be used
   as values (no ``getattr(torch, …)``); ``getattr`` takes a literal name; imports, lambdas,
   ``with`` and ``global`` are refused.
3. **The loaded graph before the first forward pass** (:func:`screen_torchscript_graph`): the
   forward method's graph with every call inlined; every node's kind, in every nested block,
   must be in :data:`ALLOWED_OPERATORS` or :data:`ALLOWED_GRAPH_NODES`; a call left un-inlined
   (interface / ``prim::CallMethod``) is refused.
4. **torch.export programs** (:func:`screen_export_archive`): only plain ``torch.export.save``
   archives (weights and constants as raw tensor bytes, sample inputs that load with
   ``weights_only=True``); every graph node's target is an allowed ``aten`` operator (same list),
   an allowed higher-order control-flow operator or a Python ``operator`` / ``math`` / ``sym_*``
   shape helper; every shape expression is parsed by :func:`check_shape_expression` — a bounded
   :mod:`ast` walk that evaluates nothing and refuses huge literals and huge powers (the
   ``… + 0*10**10**9`` expression that hung sympy).

The operator list
-----------------
:data:`ALLOWED_OPERATORS` is pure tensor maths and TorchScript's scalar / list plumbing, grouped
below. Absent by construction: file and serialisation operators (``save``, ``load``,
``from_file``), random-state operators (``manual_seed``, ``seed``, ``get/set_rng_state``) and random
sampling other than dropout's, printing, threading (``fork``, ``wait``, ``set_num_threads``),
distributed and RPC operators, and every namespace other than ``aten`` / ``prim`` (custom and
``torchvision`` extension operators, ``c10d``, ``quantized``, torchbind classes). The list was
made from what ``torch.jit.script`` / ``trace`` / ``torch.export`` produce for the zoo networks,
the CIFAR ResNet-20 and 13 torchvision classifiers (ResNet, VGG, DenseNet, MobileNet v2/v3,
EfficientNet, ShuffleNet, SqueezeNet, RegNet, ConvNeXt, AlexNet, MNASNet), plus their
element-wise and reduction relatives. A model that needs another operator is refused with the
operator's name; add it here if it is pure tensor maths.

This screen is one of two guards: loading and the validation probe of an upload then run in a
resource-limited child process (:mod:`geometry.loading.sandbox`).
"""

from __future__ import annotations

import ast
import io
import json
import re
import struct
import zipfile
from collections.abc import Iterable
from typing import Any

from ..errors import ModelLoadError

__all__ = [
    "ALLOWED_OPERATORS",
    "ALLOWED_GRAPH_NODES",
    "ALLOWED_BUILTINS",
    "TORCHSCRIPT_ENTRIES",
    "EXPORT_ENTRIES",
    "archive_entries",
    "check_shape_expression",
    "screen_export_archive",
    "screen_torchscript_archive",
    "screen_torchscript_code",
    "screen_torchscript_graph",
]


def _ops(ns: str, names: str, *, inplace: bool = False) -> set[str]:
    out = set()
    for n in names.split():
        out.add(f"{ns}::{n}")
        if inplace:
            out.add(f"{ns}::{n}_")
    return out


#: Every operator an uploaded model may call, as ``namespace::name`` (overloads included).
ALLOWED_OPERATORS: frozenset[str] = frozenset(
    # layers
    _ops(
        "aten",
        "conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d _convolution "
        "convolution linear addmm mm bmm matmul baddbmm addbmm einsum t",
    )
    # normalisation (inference forms)
    | _ops(
        "aten",
        "batch_norm _native_batch_norm_legit_no_training native_batch_norm layer_norm "
        "native_layer_norm group_norm native_group_norm instance_norm local_response_norm",
    )
    # activations (with in-place variants)
    | _ops(
        "aten",
        "relu relu6 leaky_relu elu selu celu gelu silu mish softplus softsign sigmoid tanh "
        "hardtanh hardsigmoid hardswish hardshrink softshrink tanhshrink threshold logsigmoid "
        "clamp clamp_min clamp_max clip",
        inplace=True,
    )
    | _ops("aten", "prelu _prelu_kernel glu softmax log_softmax _softmax _log_softmax")
    # pooling and resampling
    | _ops(
        "aten",
        "max_pool1d max_pool2d max_pool3d max_pool2d_with_indices avg_pool1d avg_pool2d "
        "avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d "
        "_adaptive_avg_pool2d adaptive_max_pool1d adaptive_max_pool2d upsample_nearest2d "
        "upsample_bilinear2d __interpolate pixel_shuffle pixel_unshuffle channel_shuffle",
    )
    # element-wise arithmetic and functions (with in-place variants)
    | _ops(
        "aten",
        "add sub rsub mul div true_divide floor_divide remainder fmod pow neg abs exp exp2 log "
        "log2 log10 log1p expm1 sqrt rsqrt reciprocal sin cos tan asin acos atan atan2 sinh cosh "
        "erf erfc sign floor ceil round trunc frac square minimum maximum fmin fmax lerp "
        "addcmul addcdiv masked_fill copy fill zero",
        inplace=True,
    )
    | _ops("aten", "where isnan isinf isfinite nan_to_num")
    # comparisons and logic (tensors and scalars)
    | _ops(
        "aten",
        "eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and "
        "bitwise_or bitwise_not bitwise_xor __and__ __or__ __xor__ __not__ __is__ __isnot__ "
        "__contains__ __getitem__ __range_length __derive_index",
    )
    # reductions
    | _ops(
        "aten",
        "sum mean max min amax amin argmax argmin prod std var norm linalg_vector_norm "
        "frobenius_norm logsumexp all any cumsum topk sort",
    )
    # shapes, views, copies and constructors of plain tensors
    | _ops(
        "aten",
        "view reshape flatten unflatten squeeze unsqueeze permute transpose contiguous expand "
        "expand_as repeat tile cat concat concatenate stack hstack vstack split split_with_sizes "
        "chunk unbind narrow slice select index_select gather index size sym_size sym_numel "
        "sym_stride dim numel view_as reshape_as flip roll pad constant_pad_nd reflection_pad1d "
        "reflection_pad2d replication_pad1d replication_pad2d _unsafe_view alias clone detach to "
        "type_as zeros ones full empty zeros_like ones_like full_like empty_like arange new_zeros "
        "new_ones new_full new_empty scalar_tensor tensor lift_fresh_copy _to_copy",
    )
    # dropout (identity in eval mode; the validation probe refuses a non-deterministic model)
    | _ops("aten", "dropout feature_dropout alpha_dropout feature_alpha_dropout bernoulli", inplace=True)
    # TorchScript's scalar / list / string plumbing
    | _ops(
        "aten",
        "Int Float Bool ScalarImplicit IntImplicit FloatImplicit len append list format warn "
        "floordiv str _set_item _assert is_floating_point",
    )
    | _ops(
        "prim",
        "NumToTensor RaiseException Uninitialized unchecked_cast unchecked_unwrap_optional device "
        "dtype requires_grad is_cuda layout shape min max abs TupleIndex TupleUnpack",
    )
)

#: Graph node kinds that are not operators but TorchScript structure (constants, attributes,
#: containers, control flow).
ALLOWED_GRAPH_NODES: frozenset[str] = frozenset(
    _ops(
        "prim",
        "Constant GetAttr If Loop ListConstruct ListUnpack TupleConstruct TupleUnpack DictConstruct "
        "ListIndex TupleIndex Return",
    )
)

#: Names a TorchScript program may call bare (its builtins; ``print``, ``fork``, ``wait`` are absent).
ALLOWED_BUILTINS: frozenset[str] = frozenset(
    [
        "annotate",
        "unchecked_cast",
        "uninitialized",
        "isinstance",
        "getattr",
        "hasattr",
        "int",
        "float",
        "bool",
        "str",
        "len",
        "range",
        "min",
        "max",
        "abs",
        "round",
        "divmod",
        "list",
        "tuple",
        "enumerate",
        "zip",
        "all",
        "any",
        "sum",
    ]
)

#: ``math.<name>`` functions TorchScript maps onto aten scalar operators.
_MATH_NAMES = frozenset(
    [
        "sqrt",
        "floor",
        "ceil",
        "log",
        "exp",
        "pow",
        "fabs",
        "isnan",
        "isinf",
        "isfinite",
        "pi",
        "inf",
        "e",
        "nan",
        "trunc",
    ]
)

#: Entries of a TorchScript archive, relative to its record folder (``torch.jit.save``'s layout).
TORCHSCRIPT_ENTRIES = re.compile(
    r"data\.pkl|constants\.pkl|traced_inputs\.pkl|traced_inputs/\d+|version|byteorder|\.data/version"
    r"|\.data/serialization_id"
    r"|code/[\w/.]+\.py|code/[\w/.]+\.py\.debug_pkl|data/\d+|constants/\d+|extra/[\w.\-]+"
)
#: Entries of a ``torch.export.save`` archive, relative to its record folder.
EXPORT_ENTRIES = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/model\.pt|extra/[\w.\-]+"
)


def _refuse(name: str, why: str) -> ModelLoadError:
    return ModelLoadError(f"refusing {name!r}: {why}")


# ------------------------------------------------------------------------------ the archive
def archive_entries(data: bytes, name: str, *, pattern: re.Pattern, kind: str) -> dict[str, bytes]:
    """Every entry of a PyTorch zip archive, relative to its record folder, after the archive screen.

    Parameters
    ----------
    data : the file's bytes (a zip archive written by ``torch.jit.save`` / ``torch.export.save``)
    name : display name for messages
    pattern : the allowed entry names (:data:`TORCHSCRIPT_ENTRIES` or :data:`EXPORT_ENTRIES`)
    kind : "TorchScript" or "torch.export", for messages

    Returns
    -------
    dict
        entry name relative to the record folder → its bytes (CRC-checked).

    Raises
    ------
    ModelLoadError
        the zip cannot be read or fails a CRC; it has a comment or bytes before its first entry; an
        entry lies outside the one record folder; a name repeats; a name is not allowed for this
        format; PyTorch's reader lists other records than Python's ``zipfile``.
    """
    if data[:4] != b"PK\x03\x04":
        raise _refuse(name, f"a {kind} archive must start with a zip entry (first bytes {data[:4]!r})")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise ModelLoadError(
            f"could not load {name!r}: its zip directory cannot be read, so the file is truncated "
            f"or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if zf.comment:
        raise _refuse(
            name,
            f"the {kind} archive carries a zip comment ({len(zf.comment)} bytes); PyTorch never "
            "writes one, and it can hide a second directory",
        )
    if not infos:
        raise _refuse(name, f"the {kind} archive is empty")
    if min(i.header_offset for i in infos) != 0:
        raise _refuse(name, f"the {kind} archive has bytes before its first entry")
    names = [i.filename for i in infos]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _refuse(
            name,
            f"the {kind} archive holds entry {dup[0]!r} more than once (the loader and the screen "
            "could read different copies)",
        )
    root = names[0].split("/", 1)[0] if "/" in names[0] else ""
    if not root:
        raise _refuse(name, f"the {kind} archive's first entry {names[0]!r} is not inside a record folder")
    entries: dict[str, bytes] = {}
    for info in infos:
        n = info.filename
        if not n.startswith(root + "/"):
            raise _refuse(
                name,
                f"the {kind} archive holds {n!r} outside its record folder {root + '/'!r}; only "
                "one record folder is allowed",
            )
        rel = n[len(root) + 1 :]
        if info.is_dir() or not pattern.fullmatch(rel) or ".." in rel.split("/"):
            raise _refuse(
                name,
                f"the {kind} archive holds {n!r}, which is not an entry a plain {kind} save "
                "writes (pickled objects, AOTInductor libraries, mobile bytecode and other "
                "payloads are not accepted)",
            )
        try:
            entries[rel] = zf.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error) as exc:
            raise ModelLoadError(
                f"could not load {name!r}: entry {n!r} is damaged ({type(exc).__name__}: {exc}); "
                "the file is truncated or corrupt"
            ) from exc
    try:
        import torch

        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = set(reader.get_all_records())
    except Exception as exc:
        raise _refuse(name, f"PyTorch's archive reader refuses it ({str(exc).splitlines()[0][:200]})") from exc
    if records != set(entries):
        diff = sorted(records ^ set(entries))[:3]
        raise _refuse(name, f"PyTorch's archive reader and Python's zipfile see different entries ({diff})")
    return entries


# ------------------------------------------------------------------------------ TorchScript code
def _known_operators() -> frozenset[str]:
    import torch

    return frozenset(s.name for s in torch._C._jit_get_all_schemas())


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` → ["a", "b", "c"]; None when the chain is not rooted at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


_FORBIDDEN_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.Global,
    ast.Nonlocal,
    ast.Lambda,
    ast.With,
    ast.AsyncWith,
    ast.AsyncFunctionDef,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.Try,
    ast.Delete,
)


def screen_torchscript_code(sources: dict[str, str], name: str) -> None:
    """Refuse TorchScript sources that reference anything outside the allow-lists (module docstring, 2).

    Parameters
    ----------
    sources : file name → TorchScript source text (the archive's ``code/*.py``)
    name : display name for messages

    Raises
    ------
    ModelLoadError
        naming the file, the line and the refused name.
    """
    trees: dict[str, ast.Module] = {}
    for fname, text in sources.items():
        if len(text) > 50_000_000:
            raise _refuse(name, f"its TorchScript code {fname} is over 50 MB")
        try:
            trees[fname] = ast.parse(text, filename=fname)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise _refuse(name, f"its TorchScript code {fname} does not parse ({type(exc).__name__})") from exc
    defined = {n.name for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.FunctionDef)}
    assigned = {
        tgt.id
        for t in trees.values()
        for n in ast.walk(t)
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for tgt in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(tgt, ast.Name)
    }
    assigned |= {
        a.arg
        for t in trees.values()
        for n in ast.walk(t)
        if isinstance(n, ast.FunctionDef)
        for a in n.args.args + n.args.kwonlyargs
    }
    known = _known_operators()
    for fname, tree in trees.items():
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node

        def refuse(node: ast.AST, what: str, fname: str = fname) -> ModelLoadError:
            return _refuse(
                name,
                f"its TorchScript code ({fname}, line {getattr(node, 'lineno', '?')}) {what}; an "
                "uploaded model may call only the pure tensor operators listed in "
                "geometry/loading/screen.py",
            )

        for node in ast.walk(tree):
            if isinstance(node, _FORBIDDEN_NODES):
                raise refuse(node, f"uses a {type(node).__name__} statement")
            if isinstance(node, ast.Name) and node.id in ("torch", "ops", "math"):
                parent = parents.get(node)
                if not isinstance(parent, ast.Attribute):
                    raise refuse(node, f"uses {node.id!r} as a value")
            if isinstance(node, ast.Attribute) and not isinstance(parents.get(node), ast.Attribute):
                chain = _chain(node)
                if chain and chain[0] == "torch":
                    if len(chain) != 2 or f"aten::{chain[1]}" not in ALLOWED_OPERATORS:
                        raise refuse(node, f"uses {'.'.join(chain)!r}")
                elif chain and chain[0] == "ops":
                    if len(chain) != 3 or f"{chain[1]}::{chain[2]}" not in ALLOWED_OPERATORS:
                        raise refuse(node, f"calls operator {'.'.join(chain)!r}")
                elif chain and chain[0] == "math" and (len(chain) != 2 or chain[1] not in _MATH_NAMES):
                    raise refuse(node, f"uses {'.'.join(chain)!r}")
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    if func.id not in ALLOWED_BUILTINS and func.id not in assigned:
                        raise refuse(node, f"calls {func.id!r}, which is not an allowed TorchScript builtin")
                    if func.id in ("getattr", "hasattr") and not (
                        len(node.args) >= 2
                        and isinstance(node.args[1], ast.Constant)
                        and isinstance(node.args[1].value, str)
                    ):
                        raise refuse(node, f"calls {func.id} with a computed attribute name")
                elif isinstance(func, ast.Attribute):
                    chain = _chain(func)
                    if chain and chain[0] in ("torch", "ops", "math", "__torch__", "CONSTANTS"):
                        continue  # screened as an attribute chain above, or code of the archive itself
                    method = func.attr
                    op = f"aten::{method}"
                    if op in ALLOWED_OPERATORS:
                        continue
                    if method in defined and op not in known and f"prim::{method}" not in known:
                        continue  # a method of the archive's own classes
                    raise refuse(
                        node,
                        f"calls method {method!r}, which is neither an allowed operator nor a method "
                        "the archive defines",
                    )


def screen_torchscript_archive(data: bytes, name: str) -> dict[str, bytes]:
    """The archive screen and the code screen of a TorchScript file; returns its entries.

    Raises
    ------
    ModelLoadError
        see :func:`archive_entries` and :func:`screen_torchscript_code`; also an archive without
        ``data.pkl`` or ``code/``.
    """
    entries = archive_entries(data, name, pattern=TORCHSCRIPT_ENTRIES, kind="TorchScript")
    if "data.pkl" not in entries or not any(e.startswith("code/") for e in entries):
        raise _refuse(name, "a TorchScript archive needs data.pkl and code/ (torch.jit.save writes both)")
    sources = {e: b.decode("utf-8", "replace") for e, b in entries.items() if e.endswith(".py")}
    screen_torchscript_code(sources, name)
    return entries


def _graph_kinds(block: Any) -> Iterable[Any]:
    for node in block.nodes():
        yield node
        for b in node.blocks():
            yield from _graph_kinds(b)


def screen_torchscript_graph(script_module: Any, name: str) -> int:
    """Refuse a loaded ScriptModule whose inlined forward graph has a node outside the allow-lists.

    Run after ``torch.jit.load`` and before the first forward pass (module docstring, 3).

    Parameters
    ----------
    script_module : torch.jit.ScriptModule
    name : display name for messages

    Returns
    -------
    int
        the number of nodes checked.

    Raises
    ------
    ModelLoadError
        naming the first refused node kind.
    """
    try:
        graph = script_module.inlined_graph
    except Exception as exc:
        raise _refuse(name, f"its forward graph cannot be inlined ({type(exc).__name__})") from exc
    count = 0
    for node in _graph_kinds(graph):
        kind = node.kind()
        count += 1
        if kind not in ALLOWED_OPERATORS and kind not in ALLOWED_GRAPH_NODES:
            raise _refuse(
                name,
                f"its forward graph calls {kind!r}, which is not an operator an uploaded model may "
                "use (pure tensor maths only; see geometry/loading/screen.py)",
            )
    return count


# ------------------------------------------------------------------------------ torch.export
_PT2_HIGHER_ORDER = {"cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
_PT2_OPERATOR_FUNCS = {
    "getitem",
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "neg",
    "pos",
    "abs",
    "trunc",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and_",
    "or_",
    "xor",
    "not_",
    "invert",
    "lshift",
    "rshift",
}
_SYMBOL_NAME = re.compile(r"[a-z]+\d+")
#: Functions a shape expression may call (sympy and torch.utils._sympy.functions).
_EXPR_FUNCTIONS = frozenset(
    {
        "Symbol",
        "Integer",
        "Float",
        "Rational",
        "Add",
        "Mul",
        "Pow",
        "Max",
        "Min",
        "Abs",
        "Mod",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "And",
        "Or",
        "Not",
        "floor",
        "ceiling",
        "sqrt",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    }
)
_EXPR_CONSTANTS = frozenset({"oo", "zoo", "nan", "true", "false", "True", "False"})
_EXPR_ASSUMPTIONS = frozenset(
    {
        "integer",
        "positive",
        "nonnegative",
        "negative",
        "nonpositive",
        "real",
        "finite",
        "nonzero",
        "zero",
        "even",
        "odd",
        "rational",
        "extended_real",
        "commutative",
    }
)
_POWER_FUNCTIONS = frozenset({"Pow", "PowByNatural", "FloatPow", "LShift", "RShift"})
#: Limits of a shape expression: characters, nesting depth, literal size, exponent size.
MAX_EXPR_CHARS, MAX_EXPR_DEPTH, MAX_LITERAL, MAX_EXPONENT = 2000, 40, 2**63, 64


def check_shape_expression(expr: str, *, name: str = "model") -> None:
    """Check a ``torch.export`` symbolic shape expression without evaluating it.

    The expression is parsed with :func:`ast.parse` (no evaluation) and walked: only symbol names
    (``s0``, ``s77``), numeric literals with magnitude ≤ 2**63, arithmetic and comparison
    operators, the sympy / torch shape functions of ``_EXPR_FUNCTIONS`` with keyword arguments
    among sympy's assumptions (``positive=True``) are allowed; exponents (``**``, ``Pow``,
    ``PowByNatural``, shifts) must be literals of magnitude ≤ 64, so an expression like
    ``s0 + 0*10**10**9`` (which makes sympy compute a billion-digit number) is refused. Length and
    nesting are bounded (2000 characters, depth 40).

    Raises
    ------
    ModelLoadError
        naming the offending part.
    """
    shown = expr if len(expr) <= 120 else expr[:119] + "…"

    def refuse(why: str) -> ModelLoadError:
        return _refuse(name, f"the shape expression {shown!r} {why}; torch.export.load would evaluate it")

    if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS:
        raise refuse(f"is longer than {MAX_EXPR_CHARS} characters")
    if expr.count("(") > MAX_EXPR_DEPTH * 10:
        raise refuse("nests too deeply")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise refuse(f"does not parse ({type(exc).__name__})") from exc

    def small_exponent(node: ast.AST) -> bool:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            node = node.operand
        return (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and type(node.value) in (int, float)
            and abs(node.value) <= MAX_EXPONENT
        )

    def walk(node: ast.AST, depth: int) -> None:
        if depth > MAX_EXPR_DEPTH:
            raise refuse(f"nests deeper than {MAX_EXPR_DEPTH}")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                return None
            if isinstance(v, (int, float)):
                if not abs(v) <= MAX_LITERAL:
                    raise refuse(f"holds the literal {v!r:.40}, larger than 2**63")
                return None
            if isinstance(v, str) and _SYMBOL_NAME.fullmatch(v):
                return None
            raise refuse(f"holds the constant {v!r:.40}")
        if isinstance(node, ast.Name):
            if _SYMBOL_NAME.fullmatch(node.id) or node.id in _EXPR_CONSTANTS:
                return None
            raise refuse(f"uses the name {node.id!r}")
        if isinstance(node, ast.BinOp):
            if not isinstance(
                node.op,
                (
                    ast.Add,
                    ast.Sub,
                    ast.Mult,
                    ast.Div,
                    ast.FloorDiv,
                    ast.Mod,
                    ast.Pow,
                    ast.BitAnd,
                    ast.BitOr,
                    ast.BitXor,
                ),
            ):
                raise refuse(f"uses the operator {type(node.op).__name__}")
            if isinstance(node.op, ast.Pow) and not small_exponent(node.right):
                raise refuse(f"raises to a power that is not a literal of magnitude ≤ {MAX_EXPONENT}")
            walk(node.left, depth + 1)
            return walk(node.right, depth + 1)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not, ast.Invert)):
                raise refuse(f"uses the operator {type(node.op).__name__}")
            return walk(node.operand, depth + 1)
        if isinstance(node, ast.Compare):
            walk(node.left, depth + 1)
            for c in node.comparators:
                walk(c, depth + 1)
            return None
        if isinstance(node, ast.BoolOp):
            for operand in node.values:
                walk(operand, depth + 1)
            return None
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _EXPR_FUNCTIONS:
                raise refuse(f"calls {ast.unparse(node.func)[:40]!r}")
            if node.func.id in _POWER_FUNCTIONS and (len(node.args) != 2 or not small_exponent(node.args[1])):
                raise refuse(
                    f"calls {node.func.id} with an exponent that is not a literal of magnitude ≤ {MAX_EXPONENT}"
                )
            for kw in node.keywords:
                if kw.arg not in _EXPR_ASSUMPTIONS or not (
                    isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool)
                ):
                    raise refuse(f"passes the keyword {kw.arg!r}")
            for a in node.args:
                walk(a, depth + 1)
            return None
        raise refuse(f"contains a {type(node).__name__}")

    walk(tree, 0)


def _check_target(target: str, name: str) -> None:
    m = re.fullmatch(r"torch\.ops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", target)
    if m:
        ns, op = m.group(1), m.group(2)
        if ns == "higher_order" and op in _PT2_HIGHER_ORDER:
            return
        if f"{ns}::{op}" in ALLOWED_OPERATORS:
            return
        raise _refuse(
            name,
            f"the exported graph calls operator {target!r}, which is not an operator an uploaded "
            "model may use (pure tensor maths only; see geometry/loading/screen.py)",
        )
    m = re.fullmatch(r"_operator\.(\w+)", target)
    if m and m.group(1) in _PT2_OPERATOR_FUNCS:
        return
    m = re.fullmatch(r"math\.(\w+)", target)
    if m and m.group(1) in _MATH_NAMES:
        return
    if re.fullmatch(r"torch\.sym_(?:int|float|max|min|not|ite|sum|sqrt)", target):
        return
    raise _refuse(name, f"the exported graph calls {target!r}, which is not a torch operator")


def _walk_program(obj: Any, name: str) -> None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            target = o.get("target")
            if isinstance(target, str) and "inputs" in o and "outputs" in o:
                _check_target(target, name)
            for k, v in o.items():
                if k == "as_operator" and isinstance(v, str):
                    _check_target(v, name)
                elif k == "expr_str" and isinstance(v, str):
                    check_shape_expression(v, name=name)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(x for x in o if isinstance(x, (dict, list)))


def _check_payload_config(raw: bytes, prefix: str, what: str, name: str) -> None:
    try:
        config = json.loads(raw)["config"]
        items = list(config.items())
    except Exception as exc:
        raise _refuse(name, f"its {what} configuration is not valid JSON") from exc
    for fqn, meta in items:
        if not isinstance(meta, dict):
            raise _refuse(name, f"its {what} configuration is malformed at {fqn!r}")
        if meta.get("use_pickle"):
            raise _refuse(name, f"{what} {fqn!r} is stored as a pickle (a tensor subclass?)")
        if not re.fullmatch(prefix + r"\d+", str(meta.get("path_name", ""))):
            raise _refuse(name, f"{what} {fqn!r} is stored as {meta.get('path_name')!r}, not raw tensor bytes")


def screen_export_archive(data: bytes, name: str) -> None:
    """The archive screen and the program screen of a ``torch.export`` ``.pt2`` (module docstring, 4).

    Raises
    ------
    ModelLoadError
        the archive fails :func:`archive_entries`; it is not ``archive_format`` "pt2" or lacks
        ``models/model.json``; a weight / constant is pickled; the sample inputs need full
        unpickling; a graph node calls an operator outside the allow-list; a shape expression or
        range constraint fails :func:`check_shape_expression`.
    """
    import torch

    entries = archive_entries(data, name, pattern=EXPORT_ENTRIES, kind="torch.export")
    if "models/model.json" not in entries:
        raise _refuse(name, "the archive has no models/model.json")
    if entries.get("archive_format", b"").decode("utf-8", "replace").strip() != "pt2":
        raise _refuse(name, "the archive's archive_format is missing or not 'pt2'")
    if "data/weights/model_weights_config.json" in entries:
        _check_payload_config(entries["data/weights/model_weights_config.json"], "weight_", "weight", name)
    if "data/constants/model_constants_config.json" in entries:
        _check_payload_config(entries["data/constants/model_constants_config.json"], "tensor_", "constant", name)
    if "data/sample_inputs/model.pt" in entries:
        try:
            torch.load(io.BytesIO(entries["data/sample_inputs/model.pt"]), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _refuse(
                name,
                "its sample inputs are not a plain tensor pickle, and torch.export.load would retry "
                "them with weights_only=False",
            ) from exc
    try:
        program = json.loads(entries["models/model.json"])
    except Exception as exc:
        raise _refuse(name, "models/model.json is not valid JSON") from exc
    _walk_program(program, name)
    constraints = program.get("range_constraints") if isinstance(program, dict) else None
    for key in constraints or {}:
        if not _SYMBOL_NAME.fullmatch(str(key)):
            check_shape_expression(str(key), name=name)
