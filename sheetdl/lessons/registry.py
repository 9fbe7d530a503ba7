"""Every lesson, declared with a ``LessonSpec`` in its folder and listed here on one line:
the CLI, the Python API, ``sheetdl list``, verify's replay and the README's tables read
this tuple, in its order."""
from __future__ import annotations

from .collab.options import LESSON as COLLAB
from .conv.options import LESSON as CONV
from .graddesc.options import LESSON as GRADDESC, LRFIND
from .mlp.options import LESSON as MLP
from .softmax.options import LESSON as SOFTMAX

REGISTRY = (GRADDESC, LRFIND, SOFTMAX, COLLAB, MLP, CONV)
