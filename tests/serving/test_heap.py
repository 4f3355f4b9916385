"""Long-lived objects are kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc
import sys
import types
import weakref

from modelport.serving.heap import freeze_imports


def test_objects_are_frozen_after_imports_and_only_then() -> None:
    # Frozen objects can still be freed by their reference counts (other threads' too),
    # so the count is compared just around each call.
    freeze_imports()
    kept = [[index] for index in range(1000)]  # new objects, no new module
    frozen = gc.get_freeze_count()
    freeze_imports()
    assert gc.get_freeze_count() < frozen + len(kept)  # a load importing nothing: no freeze
    garbage = _Cycle()
    garbage.me = garbage  # unreachable once dropped: only the collector frees it
    dropped = weakref.ref(garbage)
    del garbage
    # A module imported, as a framework is by the first load of its format.
    sys.modules["modelport_test_heap_module"] = types.ModuleType("modelport_test_heap_module")
    frozen = gc.get_freeze_count()
    freeze_imports()
    assert gc.get_freeze_count() >= frozen + len(kept)
    assert dropped() is None  # collected first: garbage made by the load is not kept
    del sys.modules["modelport_test_heap_module"]


class _Cycle:
    me: object = None
