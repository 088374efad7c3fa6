"""``torch.export`` programs (``.pt2``, ``torch.export.save``): screened, loaded, moved to the CPU."""

from __future__ import annotations

import io
import types

import torch
from torch import nn

from ..errors import ModelLoadError
from ..errors import first_line as _first_line
from .detect import _corrupt
from .screen import screen_export_archive


def _fixed_mode(module: nn.Module) -> nn.Module:
    """Make an exported GraphModule accept ``train()`` / ``eval()`` as no-ops.

    ``ExportedProgram.module()`` makes both raise; the graph's mode (dropout, batch norm) was fixed
    when it was exported, and :func:`~geometry.loading.validate.validate_classifier` catches a program
    exported in training mode (non-deterministic dropout, batch statistics).
    """

    def _fixed(self: nn.Module, mode: bool = True) -> nn.Module:
        return self

    module.train = types.MethodType(_fixed, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(lambda self: self, module)  # type: ignore[method-assign]
    return module


def _load_export(data: bytes, name: str, detected: tuple[str, str] | None, info: dict) -> nn.Module:
    """Screen the ``.pt2`` (:func:`geometry.loading.screen.screen_export_archive`), then load it on the CPU."""
    screen_export_archive(data, name)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise _corrupt(name, "export", exc, detected) from exc
    try:
        devices = {
            t.device.type
            for t in list(program.state_dict.values()) + list(program.constants.values())
            if isinstance(t, torch.Tensor)
        }
        if devices - {"cpu"}:
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, "cpu")
        module = program.module(check_guards=False)
    except Exception as exc:
        raise ModelLoadError(
            f"could not turn the exported program {name!r} into a module on the CPU: {_first_line(exc)}"
        ) from exc
    return _fixed_mode(module)
