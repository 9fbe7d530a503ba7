"""sheetdl defines no xlwings Server scripts, only custom functions."""
