"""Presentation: the Plotly figure builders of the app and the command line's report.

One package for every figure (``figures`` — the paper's figures; ``toy2d``, ``robust``, ``certify``,
``constrained``, ``sections_grid`` — one module per page family; ``layout`` — wrapping and legibility).
Builders take result objects of :mod:`geometry.study` / the core modules and return ``go.Figure``;
they never compute geometry.
"""
