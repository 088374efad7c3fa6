"""The probe every loaded model passes: :func:`validate_classifier` (shapes, determinism, batch
independence, finite logits and gradients)."""

from __future__ import annotations

import torch

from ..classifier import Classifier
from ..errors import ModelLoadError
from ..errors import first_line as _first_line
from ..validation import RandomState, as_generator, check_int

__all__ = ["validate_classifier"]


def _run(clf: Classifier, x: torch.Tensor, *, what: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = clf.network(x)
    except Exception as exc:
        hint = ""
        if clf.info.get("format") == "export":
            hint = (
                " An exported program must accept any batch size: export with "
                "dynamic_shapes=({0: torch.export.Dim('batch')},)."
            )
        raise ModelLoadError(
            f"model {clf.name!r} does not accept {what} of shape {tuple(x.shape)} (input_shape "
            f"{tuple(clf.input_shape)} = (C, H, W), pixels in bounds {tuple(clf.bounds)}): {_first_line(exc)}. "
            f"Check input_shape.{hint}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ModelLoadError(
            f"model {clf.name!r} must return a tensor of logits of shape (N, L); for {what} of shape "
            f"{tuple(x.shape)} it returned a {type(out).__name__}"
        )
    return out


def _probe_outputs(clf: Classifier, x: torch.Tensor) -> torch.Tensor:
    out = _run(clf, x, what="a probe batch")
    n = x.shape[0]
    if out.dim() != 2 or out.shape[0] != n:
        raise ModelLoadError(
            f"model {clf.name!r} must return logits of shape (N, L) = ({n}, L); for a probe batch of shape "
            f"{tuple(x.shape)} it returned shape {tuple(out.shape)}"
        )
    if not out.is_floating_point():
        raise ModelLoadError(f"model {clf.name!r} must return floating-point logits, got dtype {out.dtype}")
    return out


def validate_classifier(clf: Classifier, *, n_probe: int = 4, random_state: RandomState | None = 0) -> None:
    """Check that ``clf`` behaves like a classifier the atlas can measure; raise otherwise.

    A probe batch ``x`` of shape ``(n_probe, *clf.input_shape)``, pixels uniform in
    ``clf.bounds`` (drawn from ``random_state``), goes through ``clf.network``. Checks, in order:

    1. the model accepts inputs of that shape;
    2. it returns one floating-point tensor of shape ``(N, L)`` (not ``(N, L, 1)``, ``(N,)``, a tuple…);
    3. ``L == len(clf.class_names)``;
    4. every logit is finite (no NaN / inf);
    5. eval mode is deterministic: a second forward pass on the same batch gives identical logits
       (fails for dropout applied unconditionally, random noise in ``forward``…);
    6. each image's logits do not depend on the rest of the batch: ``x[:1]`` alone gives the
       first row again (up to float rounding; fails for batch statistics used at inference, or a
       program exported for a fixed batch size);
    7. the logits are differentiable with respect to the pixels, with a finite gradient
       (DeepFool and the curvature need ``∇f``).

    Parameters
    ----------
    clf : Classifier
    n_probe : int, ≥ 2
    random_state : int or torch.Generator

    Raises
    ------
    ModelLoadError
        one message per failed check, giving what was expected and what the model did.
    InvalidInputError
        ``n_probe`` < 2 or a bad ``random_state``.
    """
    n_probe = check_int("n_probe", n_probe, 2)
    gen = as_generator(0 if random_state is None else random_state)
    low, high = clf.bounds
    x = (low + (high - low) * torch.rand((n_probe, *clf.input_shape), generator=gen)).to(clf.dtype)
    out = _probe_outputs(clf, x)
    L = out.shape[1]
    if len(clf.class_names) != L:
        shown = ", ".join(repr(c) for c in clf.class_names[:5]) + (", …" if len(clf.class_names) > 5 else "")
        raise ModelLoadError(
            f"model {clf.name!r} returns {L} logits per image but {len(clf.class_names)} class names were given "
            f"({shown}); give exactly one name per output"
        )
    bad = ~torch.isfinite(out)
    if bad.any():
        raise ModelLoadError(
            f"model {clf.name!r} returned NaN or inf logits ({int(bad.sum())} of {out.numel()} values) for a probe "
            f"batch of images uniform in bounds {tuple(clf.bounds)}; expected finite logits"
        )
    again = _run(clf, x, what="a probe batch")
    if again.shape != out.shape or not torch.equal(again, out):
        diff = float((again - out).abs().max()) if again.shape == out.shape else float("nan")
        raise ModelLoadError(
            f"model {clf.name!r} is not deterministic in eval mode: two forward passes on the same probe batch gave "
            f"different logits (max |difference| {diff:.3g}). Common causes: dropout applied regardless of mode "
            "(F.dropout(..., training=True)), random noise in forward, or a program exported in training mode "
            "(call model.eval() before exporting)"
        )
    single = _run(clf, x[:1], what="a batch of one image")
    if single.dim() != 2 or single.shape != (1, L):
        raise ModelLoadError(
            f"model {clf.name!r} must return logits of shape (1, {L}) for a batch of one image, got {tuple(single.shape)}"
        )
    scale = float(out[0].abs().max()) + 1.0
    if not torch.allclose(single[0], out[0], rtol=1e-4, atol=1e-4 * scale):
        raise ModelLoadError(
            f"model {clf.name!r} gives an image different logits alone than inside a batch (max |difference| "
            f"{float((single[0] - out[0]).abs().max()):.3g}); the prediction of an image must not depend on the other "
            "images (batch statistics at inference, e.g. BatchNorm left in training mode?)"
        )
    xg = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = clf.network(xg)
            (grad,) = torch.autograd.grad(logits[:, 0].sum(), xg)
    except Exception as exc:
        raise ModelLoadError(
            f"model {clf.name!r} is not differentiable with respect to its input ({_first_line(exc)}); the atlas needs "
            "gradients of the logits with respect to the pixels (DeepFool, curvature)"
        ) from exc
    if grad is None or grad.shape != xg.shape or not torch.isfinite(grad).all():
        raise ModelLoadError(
            f"model {clf.name!r} gives a missing or non-finite gradient of its logits with respect to the pixels"
        )
