"""How to install an optional extra, said from where this sheetdl runs."""
from __future__ import annotations

import os
from pathlib import Path


def pip_install(extra: str) -> str:
    """The command that adds ``extra``: from a checkout (``pyproject.toml`` beside the
    package) an editable install of it, so the checkout stays editable; from an installed
    wheel, the extra of the published package."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        where = "." if Path.cwd().resolve() == root else os.fspath(root)
        return f'pip install -e "{where}[{extra}]"'
    return f'pip install "sheetdl[{extra}]"'
