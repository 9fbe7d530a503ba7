"""A text file written atomically: a crash or kill mid-write leaves the old file whole."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through a temporary file in
    the same folder, renamed over ``path`` once complete; ``mode`` (0o600 for a key) or
    the umask's."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if mode is None:  # mkstemp's file is private (0600); a text file gets the umask's
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
