"""The ``boundary-atlas`` command: parsing only — options → settings → study → output.

``python -m geometry.cli …`` and the ``boundary-atlas`` script both run :func:`main`.
Modules: :mod:`~geometry.cli.options` (every option, once, with the settings classes' defaults),
:mod:`~geometry.cli.commands` (the parser, ``train``, ``models``, ``report``),
:mod:`~geometry.cli.study` (``study``, sharded under torchrun), :mod:`~geometry.cli.progress` (the
terminal's progress bar).
"""

from .commands import main

__all__ = ["main"]
