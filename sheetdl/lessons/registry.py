"""The lessons that declare themselves with a ``LessonSpec``, one line each. (graddesc and
lrfind, its variant, are still wired into ``options``, ``cli`` and
``verification.replay`` by hand.)"""
from __future__ import annotations

from .collab.options import LESSON as COLLAB
from .conv.options import LESSON as CONV
from .mlp.options import LESSON as MLP
from .softmax.options import LESSON as SOFTMAX

REGISTRY = (SOFTMAX, COLLAB, MLP, CONV)
