"""TorchScript files (``torch.jit.save``): screened (:mod:`geometry.loading.screen`), then loaded on the CPU."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from .detect import _corrupt
from .screen import screen_torchscript_archive, screen_torchscript_graph


class _TorchScriptModel(nn.Module):
    """A loaded ScriptModule as a plain ``nn.Module`` child (``ScriptModule.requires_grad_`` raises,
    which :func:`~geometry.classifier.make_classifier` calls); ``forward`` just calls it."""

    def __init__(self, script: nn.Module):
        super().__init__()
        self.script = script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def _load_torchscript(data: bytes, name: str, detected: tuple[str, str] | None, info: dict) -> nn.Module:
    """Screen the archive and its code (:mod:`geometry.loading.screen`), load it, screen the inlined graph."""
    screen_torchscript_archive(data, name)
    try:
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": not the uploader's concern
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            script = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise _corrupt(name, "torchscript", exc, detected) from exc
    info["graph_nodes"] = screen_torchscript_graph(script, name)
    return _TorchScriptModel(script)
