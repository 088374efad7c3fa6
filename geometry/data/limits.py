"""The limits on user-supplied data (image folders, zip uploads, ``.npz`` files).

Each is checked from headers (image headers, ``.npy`` headers, zip records) before anything is
decoded or allocated, and the error names the limit and what was found. The readers look them up
here at call time, so a caller (or a test) may change them: ``geometry.data.MAX_IMAGES = 5`` (the
package forwards its ``MAX_*`` names to this module) or ``geometry.data.limits.MAX_IMAGES = 5``.
They do not apply to MNIST / CIFAR-10.
"""

from __future__ import annotations

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGES",
    "MAX_DECODED_BYTES",
    "MAX_CLASSES",
    "MAX_ZIP_ENTRIES",
    "MAX_ZIP_UNPACKED_BYTES",
]

#: Most pixels (width × height) one image may have: 4096 × 4096 = 16,777,216. Larger images are
#: refused from their header (PIL reads only the header); PIL's own DecompressionBombError (raised
#: above ~179 Mpx at open) is reported with this limit too.
MAX_IMAGE_PIXELS: int = 4096 * 4096
#: Most images (N) one dataset split may hold.
MAX_IMAGES: int = 100_000
#: Most bytes the decoded images may take as float32, N·C·H·W·4 (C = 3 as soon as one image is
#: in colour): 1 GiB. For an ``.npz`` also the bytes of each stored array.
MAX_DECODED_BYTES: int = 1 << 30
#: Most classes: labels must be < MAX_CLASSES (the class count is ``max(label) + 1``), and an
#: ``.npz``'s ``class_names`` may hold at most this many names.
MAX_CLASSES: int = 10_000
#: Most entries (files and folders) in an uploaded zip or ``.npz``; read from the zip's end record
#: before the listing is parsed.
MAX_ZIP_ENTRIES: int = 250_000
#: Most bytes the image files of an uploaded zip may declare uncompressed (all together): 1 GiB.
MAX_ZIP_UNPACKED_BYTES: int = 1 << 30
