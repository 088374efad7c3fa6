"""The ``boundary-atlas`` command: parsing only — options → settings → study → output.

``python -m geometry.cli …`` and the ``boundary-atlas`` script both run :func:`main`.
"""

from .commands import main

__all__ = ["main"]
