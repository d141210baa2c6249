"""scripts/make_benchmarks.py: the per-half tables of the tuning protocol."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.conftest import REPO


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_benchmarks", REPO / "scripts" / "make_benchmarks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_halves_table_means_each_half_and_the_whole() -> None:
    script = _script()
    items = [
        {"name": f"GT{i:02d}", "whole": {"mse": float(i), "sad": 2.0 * i}, "unknown": None} for i in range(1, 21)
    ]
    lines = script.halves_table([("m", {"items": items})], "whole")
    assert lines[0].startswith("| method | MSE A (GT01–GT10) | MSE B (GT11–GT20) | MSE all |")
    # A: mean of 1..10 = 5.5, B: mean of 11..20 = 15.5, all: 10.5; SAD twice that.
    assert lines[2] == "| m | 5.50 | 15.50 | 10.50 | 11.00 | 31.00 | 21.00 |"
    # Eval reports name their items by file; a result without unknown-region scores gives no row.
    named = [{**item, "name": f"{item['name']}.png"} for item in items]
    assert script.halves_table([("e", {"items": named})], "whole")[2].startswith("| e | 5.50 |")
    assert len(script.halves_table([("m", {"items": items})], "unknown")) == 2
