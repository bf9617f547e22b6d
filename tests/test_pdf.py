"""Making a PDF must not change how the process decodes images (WeasyPrint's import sets Pillow's
process-wide LOAD_TRUNCATED_IMAGES, which would let the gateway accept a garbled upstream image)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from PIL import ImageFile
from hegui.pdf import weasyprint_html
weasyprint_html()(string="<p>报告</p>").write_pdf()
print(ImageFile.LOAD_TRUNCATED_IMAGES)
"""


def test_making_a_pdf_leaves_pillow_refusing_truncated_images() -> None:
    # a fresh interpreter: weasyprint is imported (and its side effect happens) exactly here
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
