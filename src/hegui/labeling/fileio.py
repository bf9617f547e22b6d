"""Writing output files so that a failure never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hegui.errors import UserError


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path in ``dst``'s folder; rename it to ``dst`` only if the block succeeds.

    The temp file keeps ``dst``'s suffix so libraries that pick a format by name still work.
    """
    dst = Path(dst)
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{dst}: output folder {folder} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part" + dst.suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file 0600; outputs are ordinary files for others to read.
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(dst: Path, data: bytes) -> None:
    with atomic_output(dst) as tmp:
        tmp.write_bytes(data)


def read_input(path: Path) -> bytes:
    """The bytes of an input file, or a one-line UserError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
