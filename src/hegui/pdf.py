"""HTML → PDF with WeasyPrint, imported so that it does not change how hegui decodes images.

Importing ``weasyprint`` sets Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES``. In the
gateway (where the console renders incident reports) that would make the image checks accept a
truncated or garbled image from the upstream as a good one; so the flag is put back at once.
"""

from __future__ import annotations

import logging
from typing import Any


def weasyprint_html() -> Any:
    """``weasyprint.HTML``, with Pillow's truncated-image setting left as it was and WeasyPrint's
    per-CSS-property warnings quieted (they are not a report's business)."""
    from PIL import ImageFile

    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        from weasyprint import HTML
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return HTML
