"""The lessons that declare themselves with a ``LessonSpec``, one line each. (The first
five lessons are still wired into ``options``, ``cli`` and ``verification.replay`` by
hand.)"""
from __future__ import annotations

from .conv.options import LESSON as CONV

REGISTRY = (CONV,)
