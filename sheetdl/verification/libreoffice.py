"""LibreOffice Calc as a second, independent recalculation engine.

LibreOffice ignores a file's cached values only when its profile sets
OOXMLRecalcMode to 0 (always recalculate); each run gets a fresh profile so
concurrent runs do not collide. Its .xlsx output rounds to 15 significant
digits, so compare against it at 1e-9 relative.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_RECALC_ALWAYS = ('<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="{}" '
                  'oor:op="fuse"><value>0</value></prop></item>')
_PROFILE = f"""<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
{_RECALC_ALWAYS.format("OOXMLRecalcMode")}
{_RECALC_ALWAYS.format("ODFRecalcMode")}
</oor:items>
"""


class LibreOfficeError(RuntimeError):
    pass


def soffice() -> str | None:
    """The LibreOffice binary, or None when it is not installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def recalculate(files: list[str | Path], outdir: str | Path, timeout: float = 600) -> list[Path]:
    """Open each file in headless LibreOffice, recalculate every formula and
    save it as .xlsx in ``outdir`` (one process for all files)."""
    exe = soffice()
    if exe is None:
        raise LibreOfficeError("LibreOffice (soffice) is not installed: apt-get install "
                               "libreoffice-calc")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sheetdl-lo-") as profile:
        user = Path(profile) / "user"
        user.mkdir()
        (user / "registrymodifications.xcu").write_text(_PROFILE)
        cmd = [exe, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
               "--nologo", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir",
               str(outdir), *map(str, files)]
        env = dict(os.environ, HOME=profile)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    outputs = [outdir / (Path(f).stem + ".xlsx") for f in files]
    missing = [str(o) for o in outputs if not o.exists()]
    if proc.returncode != 0 or missing:
        raise LibreOfficeError(f"LibreOffice failed (exit {proc.returncode}); missing "
                               f"{missing}: {proc.stderr.strip()[-500:]}")
    return outputs
