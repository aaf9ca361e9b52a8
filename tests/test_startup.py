"""train.py's start-up: the imports' objects are frozen out of the garbage collector, which stays on."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_train_py_freezes_its_imports_and_leaves_collection_on() -> None:
    probe = ("import gc, sys; sys.path.insert(0, sys.argv[1]); import train; "
             "print(gc.isenabled(), gc.get_freeze_count(), len(gc.get_objects()))")
    done = subprocess.run([sys.executable, "-c", probe, str(ROOT)], capture_output=True, text=True, check=True)
    enabled, frozen, tracked = done.stdout.split()
    assert enabled == "True"  # what a run allocates is still collected
    assert int(frozen) > 10 * int(tracked)  # torch's, Lightning's and Hydra's objects are out of every collection
