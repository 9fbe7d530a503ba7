"""The classic xlwings add-in's UDF module (``UDF Modules`` = ``sheetdl.addin.classic``):
the add-in's functions as =SHEETDL_ADAM_STEP(...) and the rest, decorated with xlwings'
own decorators when Excel's xlwings imports this module on Windows."""
from xlwings import arg, func, ret

from . import udfs

globals().update(udfs.decorate(func, arg, ret, "classic"))
