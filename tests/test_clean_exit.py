"""Every command leaves nothing of OpenImageIO alive at interpreter exit.

nanobind (OpenImageIO's Python binding) prints ``nanobind: leaked …`` lines when its objects
outlive the interpreter, e.g. a module-level ``ImageSpec``.  The real console entry in a
subprocess, on a tiny sequence with the tiny model; ``vfxmatte flow run`` is checked in
tests/test_flows.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from test_flows import write_sequence


@pytest.mark.slow
def test_matte_info_review_eval_exit_without_nanobind_leaks(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = write_sequence(tmp_path / "plate", [1001, 1002])
    out = tmp_path / "out" / "m.####.exr"
    commands = [
        ["matte", pattern, "-o", str(out), "--model", str(tiny_model_dir), "--steps", "2", "--seeds", "1",
         "--lr-size", "64", "--quiet"],
        ["info", pattern, "--json"],
        ["review", str(out), "-o", str(tmp_path / "review")],
        ["eval", str(out).replace("####", "1001"), str(out).replace("####", "1002")],
        ["info", str(tmp_path / "nothere.####.exr")],  # an error path too: one line, exit 2
    ]
    for command in commands:
        code, _, err = run_cli(*command)
        assert code == (2 if "nothere" in command[1] else 0), (command[0], err[-2000:])
        assert "nanobind" not in err, (command[0], err[-2000:])
    assert (tmp_path / "review" / "index.html").exists()
