"""Crash safety, full disks and concurrent runs on one output (issue: reliability).

Real processes throughout: runs killed with SIGKILL, a real full filesystem (a small tmpfs
where this machine lets root mount one, else a file-size limit that fails writes the same
way), two real ``vfxmatte matte`` processes on the same output.  The tiny untrained model,
small frames, a 64 px LR pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from conftest import REPO
from test_cli import write_plate

from vfxmatte.config import MatteParams, RunOptions
from vfxmatte.io.locks import FrameLock, lock_path
from vfxmatte.pipeline import matte_shot

FAST = ["--steps", "2", "--seeds", "2", "--lr-size", "64", "--hr", "off", "--prior", "none", "--quiet"]
PARAMS = MatteParams(steps=2, seeds=2, lr_size=64, hr="off", prior="none")


def make_shot(folder: Path, frames: range, size: tuple[int, int] = (96, 64)) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        write_plate(folder / f"plate.{frame}.exr", seed=frame, size=size)
    return str(folder / "plate.####.exr")


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vfxmatte.cli", "matte", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def assert_complete_exr(path: Path) -> None:
    """Every pixel of every channel reads back, finite, alpha in [0, 1]."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, f"{path}: {oiio.geterror()}"
    pixels = inp.read_image("float")
    names = list(inp.spec().channelnames)
    inp.close()
    assert pixels is not None and np.isfinite(pixels).all(), path
    alpha = pixels[..., names.index("A")]
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0


def hold_lock(path: str, seconds: float, after: str = "") -> subprocess.Popen[str]:
    """Another process that holds ``path``'s frame lock (it prints 'held') until the file ``after``
    exists (when given), then ``seconds`` more."""
    code = (
        "import os, sys, time\n"
        "from vfxmatte.io.locks import FrameLock\n"
        "lock = FrameLock(sys.argv[1]); assert lock.acquire(5)\n"
        "print('held', flush=True)\n"
        "while sys.argv[3] and not os.path.exists(sys.argv[3]): time.sleep(0.02)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, path, str(seconds), after], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


# -- frame locks ----------------------------------------------------------------------------


def test_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    target = str(tmp_path / "matte.1001.exr")
    holder = hold_lock(target, 60)
    try:
        lock = FrameLock(target)
        assert not lock.acquire(0.0)
        assert lock.holder().startswith(f"pid {holder.pid} on ")
        holder.send_signal(signal.SIGKILL)  # the kernel drops a flock with its process
        holder.wait(10)
        assert lock.acquire(2.0)
        assert os.path.exists(lock_path(target))
        lock.release()
        assert not os.path.exists(lock_path(target)), "a released lock leaves no file behind"
    finally:
        holder.kill()


def test_a_frame_locked_by_another_run_is_waited_for(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = make_shot(tmp_path / "plate", range(1001, 1004))
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(str(out / "matte.1002.exr"), 1.0, after=str(out / "matte.1001.exr"))
    try:
        summary = matte_shot(
            pattern, str(out / "matte.####.exr"), PARAMS, RunOptions(lock_timeout=60), model=str(tiny_model_dir)
        )
    finally:
        holder.kill()
    assert summary.frames("written") == [1001, 1002, 1003]
    assert any(f"waited for pid {holder.pid}" in note for note in summary.notes)


def test_a_frame_locked_too_long_fails_alone(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = make_shot(tmp_path / "plate", range(1001, 1004))
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(str(out / "matte.1002.exr"), 60)
    try:
        summary = matte_shot(
            pattern, str(out / "matte.####.exr"), PARAMS, RunOptions(lock_timeout=0.5), model=str(tiny_model_dir)
        )
    finally:
        holder.kill()
        holder.wait(10)
    assert summary.frames("written") == [1001, 1003]
    (failure,) = [r for r in summary.results if r.status == "failed"]
    assert failure.frame == 1002 and f"still being written by pid {holder.pid}" in (failure.error or "")
    assert not (out / "matte.1002.exr").exists()
    # The holder is gone: a rerun does the frame and skips the other two.
    again = matte_shot(pattern, str(out / "matte.####.exr"), PARAMS, model=str(tiny_model_dir))
    assert again.frames("written") == [1002] and again.frames("skipped") == [1001, 1003]
    assert hidden_files(out) == []


@pytest.mark.slow
def test_two_runs_on_one_output_write_each_frame_once(tmp_path: Path, tiny_model_dir: Path) -> None:
    frames = range(1001, 1013)
    pattern = make_shot(tmp_path / "plate", frames)
    out = tmp_path / "out"
    args = [pattern, "-o", str(out / "matte.####.exr"), "--model", str(tiny_model_dir), *FAST, "--json"]
    runs = [cli(*args), cli(*args)]
    results = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        results.append(json.loads(stdout))
    written = [set(r["frames"]["written"]) for r in results]
    assert not written[0] & written[1], "a frame was matted by both runs"
    assert written[0] | written[1] == set(frames)
    for frame in frames:
        assert_complete_exr(out / f"matte.{frame}.exr")
    assert hidden_files(out) == [], "no lock or temp file outlives the runs"


def test_a_movie_output_is_written_by_one_run_at_a_time(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = make_shot(tmp_path / "plate", range(1001, 1003))
    target = str(tmp_path / "matte.mov")
    holder = hold_lock(target, 60)
    try:
        from vfxmatte.errors import OutputError

        with pytest.raises(OutputError, match=f"being written by pid {holder.pid}"):
            matte_shot(pattern, target, PARAMS, model=str(tiny_model_dir))
    finally:
        holder.kill()
        holder.wait(10)
    assert not os.path.exists(target)


# -- SIGKILL mid-run --------------------------------------------------------------------------


def test_sigkill_mid_run_leaves_only_complete_frames_and_a_rerun_resumes(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    frames = range(1001, 1009)
    pattern = make_shot(tmp_path / "plate", frames, size=(160, 96))
    out = tmp_path / "out"
    args = [pattern, "-o", str(out / "matte.####.exr"), "--model", str(tiny_model_dir), *FAST]
    for delay in (0.0, 0.05, 0.2):  # kill at different moments after the first frame lands
        run = cli(*args)
        deadline = time.monotonic() + 300
        while not list(out.glob("matte.*.exr")):
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        for done in out.glob("matte.*.exr"):
            assert_complete_exr(done)  # under a final name only complete frames, ever
    before = sorted(p.name for p in out.glob("matte.*.exr"))
    assert before and len(before) < len(frames), "the kills landed mid-run"
    rerun = cli(*args, "--json")
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout)
    assert len(summary["frames"]["skipped"]) == len(before), "frames already done are not matted again"
    assert sorted(summary["frames"]["written"] + summary["frames"]["skipped"]) == list(frames)
    assert hidden_files(out) == [], "stale temp and lock files are cleared by the rerun"
    for frame in frames:
        assert_complete_exr(out / f"matte.{frame}.exr")


def test_sigterm_stops_a_run_that_inherited_sigint_ignored(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A run started the way a background job of a non-interactive shell is (SIGINT ignored, as
    a Nuke launched from a script passes it on) still stops cleanly on SIGTERM, the bridge's cancel."""
    frames = range(1001, 1031)
    pattern = make_shot(tmp_path / "plate", frames, size=(160, 96))
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "vfxmatte.cli", "matte", pattern, "-o", str(out / "matte.####.exr"),
         "--model", str(tiny_model_dir), *FAST],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.glob("matte.*.exr")):
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "interrupted" in stderr
    written = sorted(out.glob("matte.*.exr"))
    assert 0 < len(written) < len(frames)
    assert hidden_files(out) == []
    for done in written:
        assert_complete_exr(done)


def test_sigkill_during_exr_writes_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """Kill a process that rewrites a 2K frame in a loop, at many moments; the file is always whole."""
    target = tmp_path / "frame.exr"
    code = (
        "import sys, numpy as np\n"
        "from vfxmatte.io.exr import write_exr\n"
        "from vfxmatte.io.frames import Plate, Window\n"
        "w, h = 2048, 1080\n"
        "win = Window(0, 0, w, h)\n"
        "plate = Plate(np.zeros((h, w, 3), np.float32), win, win, 'p.exr', 1, 'lin')\n"
        "rng = np.random.default_rng(0)\n"
        "channels = {c: rng.random((h, w), dtype=np.float32) for c in 'RGBA'}\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    write_exr(sys.argv[1], plate, channels, {})\n"
    )
    rng = np.random.default_rng(7)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 1.5)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if target.exists():
            assert_complete_exr(target)
    assert target.exists(), "at least one write finished between the kills"


# -- full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a real, tiny filesystem (a 600 KiB tmpfs) that fills up part way through a run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill up needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_gives_one_line_and_leaves_no_temporaries(
    small_disk: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    pattern = make_shot(tmp_path / "plate", range(1001, 1013), size=(256, 160))
    out = small_disk / "out"
    run = cli(pattern, "-o", str(out / "matte.####.exr"), "--model", str(tiny_model_dir), *FAST)
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 2, stderr
    message = stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "no space left on the device" in message and str(out) in message
    assert hidden_files(out) == [], "the failed write's temp file and lock are gone"
    written = sorted(out.glob("matte.*.exr"))
    assert 0 < len(written) < 12, "frames before the disk filled up were written, then it stopped"
    for done in written:
        assert_complete_exr(done)
