"""The lessons that declare themselves with a ``LessonSpec``, one line each. (graddesc,
lrfind, softmax and collab are still wired into ``options``, ``cli`` and
``verification.replay`` by hand.)"""
from __future__ import annotations

from .conv.options import LESSON as CONV
from .mlp.options import LESSON as MLP

REGISTRY = (MLP, CONV)
