"""Keep Python's garbage collector off the objects that start-up imports create.

Importing torch, Lightning and Hydra creates a few million objects that live as long as the
process. With the collector on, each full collection walks all of them: during the imports
themselves and during the run (eight full collections, 1.5 s, in the default 10-seed sweep), and
once more at exit (about 1 s). ``train.py`` therefore imports with the collector paused, then
freezes what the imports made (``gc.freeze``: later collections skip those objects, which, being
modules' own, would never be freed anyway) and skips the walk at exit, when the operating system
reclaims everything at once. What a run allocates is collected as usual while it runs.
"""

from __future__ import annotations

import atexit
import gc


def pause_collection() -> None:
    """Before the start-up imports."""
    gc.disable()


def imports_done() -> None:
    """After the start-up imports: freeze what they made, collect the rest as usual, skip the walk at exit."""
    gc.freeze()
    gc.enable()
    atexit.register(gc.freeze)  # atexit runs before the interpreter's final collections
