"""Reader fuzzing: the mutators are deterministic, the sandbox catches what it must, a bounded run is clean."""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from vfxmatte import fuzz
from vfxmatte.errors import FrameError, InputError

STRIPES = "exr/TestImages/stripes.exr"
# A handful of small real files: scanline, offset data window, tiled mip-map, a damaged EXR, a palette
# PNG, H.264 in MP4 with a display matrix, H.264 in QuickTime, VP9 in WebM; the test adds a DWAA EXR
# and a DPX made from a crop of lemur.png.
BOUNDED = [STRIPES, "exr/DisplayWindow/t08.exr", "exr/MultiResolution/ColorCodedLevels.exr",
           "exr/Damaged/openexr_2.5.1_null_deref_error.exr", "matting/lemur/lemur_trimap.png",
           "video/video_rotation_90.mp4", "video/greyscale-gamma22.mov", "video/transparent.webm"]


# Worker targets for the classifier tests (the worker imports this module by name).
def abort_target(path: str, beat: fuzz.Beat) -> None:
    os.abort()


def sleep_target(path: str, beat: fuzz.Beat) -> None:
    time.sleep(float(Path(path).name))


def slow_frames_target(path: str, beat: fuzz.Beat) -> None:
    for _ in range(8):  # 2.4 s in all, 0.3 s a frame
        time.sleep(0.3)
        beat()


def raise_target(path: str, beat: fuzz.Beat) -> None:
    import resource

    kind = Path(path).name
    capped = resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    if kind == "value":
        raise ValueError("boom")
    if kind == "memory":
        bytearray(2 << 30)  # beyond the cap the test gives
    if kind == "eagain" and not capped:
        return  # as a reader that starts too many threads for the cap, and reads fine without it
    if kind == "hog" and not capped:
        hog = b"\x01" * (600 << 20)  # uncapped, it really takes the memory (touched, so resident)
        time.sleep(0.5)
        del hog
    message = {"clean": f"{path}: damaged", "multiline": f"{path}: damaged\nsecond line",
               "nameless": "damaged", "escape": f"{path}: damaged \x1b[2J",
               "eagain": f"{path}: decoding stopped: Resource temporarily unavailable",
               "enomem": f"{path}: cannot open as a movie: Cannot allocate memory",
               "hog": f"{path}: cannot open as a movie: Cannot allocate memory"}[kind]
    raise FrameError(message)


def _worker(target: str, **kwargs: Any) -> fuzz.Worker:
    return fuzz.Worker(f"{__name__}:{target}", **kwargs)


def test_mutations_are_deterministic_and_vary_with_the_seed(shared_data: Path) -> None:
    for name in (STRIPES, "video/video_rotation_90.mp4", "matting/lemur/lemur_trimap.png"):
        path = shared_data / name
        data = path.read_bytes()
        outputs = set()
        for seed in range(30):
            once = fuzz.mutate(data, seed, fuzz.kind_of(path))
            assert once == fuzz.mutate(data, seed, fuzz.kind_of(path)), (name, seed)
            assert once[1], "every case records what was done"
            outputs.add(once[0])
        assert data not in outputs or len(outputs) > 25, name
        assert len(outputs) >= 28, f"{name}: seeds give too few distinct files"


def test_format_aware_mutators_find_their_structures(shared_data: Path) -> None:
    exr = (shared_data / STRIPES).read_bytes()
    attrs, end = fuzz._exr_header(exr)
    assert {"dataWindow", "displayWindow", "channels", "compression"} <= {a.name for a in attrs}
    assert exr[end - 1] == 0 and fuzz._exr_offsets(exr, end), "header end and offset table found"
    described = [fuzz.mutate(exr, seed, "exr")[1] for seed in range(60)]
    assert any(m.startswith("exr dataWindow") for ms in described for m in ms)

    mp4 = (shared_data / "video/video_rotation_90.mp4").read_bytes()
    paths = {a.path for a in fuzz._mp4_atoms(mp4, 0, len(mp4))}
    assert "/moov/trak/mdia/minf/stbl/stts" in paths and "/moov/trak/mdia/minf/stbl/stsd/avc1/avcC" in paths

    png = bytearray((shared_data / "matting/lemur/lemur_trimap.png").read_bytes())
    import random

    for seed in range(20):
        buf = bytearray(png)
        if fuzz.png_chunk(random.Random(seed), buf).startswith("png IHDR"):
            break
    else:
        pytest.fail("no IHDR mutation in 20 seeds")
    assert buf[16:29] != png[16:29] or buf == png
    assert zlib.crc32(bytes(buf[12:29])) == int.from_bytes(buf[29:33], "big"), "IHDR CRC fixed up"


def test_classifier_catches_crashes_hangs_memory_and_unclean_errors(tmp_path: Path) -> None:
    with _worker("raise_target", timeout=20, memory_mb=400) as worker:
        got = {kind: worker.run(str(tmp_path / kind)) for kind in
               ("clean", "value", "multiline", "nameless", "escape", "memory", "eagain", "enomem", "hog")}
    assert got["clean"].outcome == "error" and got["clean"].message.endswith(": damaged")
    assert got["value"].outcome == "crash" and "uncaught ValueError: boom" in got["value"].message
    assert got["multiline"].outcome == "crash" and "multi-line" in got["multiline"].message
    assert got["nameless"].outcome == "crash" and "does not name the file" in got["nameless"].message
    assert got["escape"].outcome == "crash" and "unprintable" in got["escape"].message
    assert got["memory"].outcome == "memory"
    assert got["eagain"].outcome == "memory", "a thread that could not start under the cap is exhaustion"
    assert got["eagain"].note.startswith("without the address-space cap: ok")
    assert got["enomem"].outcome == "error", "the same ENOMEM without the cap is the library's error code"
    assert "not exhaustion" in got["enomem"].note
    assert got["hog"].outcome == "memory" and "resident memory over 400 MB" in got["hog"].note

    with _worker("abort_target", timeout=20) as worker:
        aborted = worker.run(str(tmp_path / "x"))
        assert aborted.outcome == "crash" and "SIGABRT" in aborted.message
        assert "abort_target" in aborted.stderr, "faulthandler's traceback is kept"
        assert worker.run(str(tmp_path / "y")).outcome == "crash", "the worker is restarted after a crash"
        assert worker.restarts == 2


def test_timeouts_are_per_frame_and_per_case(tmp_path: Path) -> None:
    with _worker("sleep_target", timeout=1.0) as worker:
        started = time.monotonic()
        hung = worker.run(str(tmp_path / "30"))
        assert hung.outcome == "hang" and time.monotonic() - started < 10
        assert worker.run(str(tmp_path / "0.1")).outcome == "ok", "a fresh worker takes the next case"
        assert worker.restarts == 1
    with _worker("slow_frames_target", timeout=1.5) as worker:
        assert worker.run("a").outcome == "ok", "frames that each finish in time are no hang"
    with _worker("slow_frames_target", timeout=1.5, case_timeout=1.0) as worker:
        assert worker.run("a").outcome == "hang", "the whole case has its own limit"


def test_bounded_fuzz_run_of_the_readers_finds_nothing(shared_data: Path, tmp_path: Path) -> None:
    picture = shared_data / "matting/lemur/lemur.png"
    sources = [shared_data / name for name in BOUNDED]
    missing = [str(s) for s in [*sources, picture] if not s.is_file()]
    if missing:
        pytest.skip(f"fixtures absent: {missing}")
    sources += fuzz.derive_seeds(picture, tmp_path / "seeds",
                                  ["dwaa.exr", "10bit.dpx"])
    started = time.monotonic()
    cases = fuzz.fuzz(sources, 60, tmp_path, seed=12, originals=True)
    seconds = time.monotonic() - started
    findings = [(c.source, c.seed, c.result.outcome, c.result.message, c.mutations)
                for c in cases if c.result.outcome in fuzz.FINDINGS]
    assert not findings, findings
    outcomes = {c.result.outcome for c in cases}
    assert outcomes == {"ok", "error"}, "the run exercised both good reads and damaged ones"
    assert {c.kind for c in cases} == {"exr", "still", "movie"}
    assert not list((tmp_path / "scratch").iterdir()), "mutated files of clean cases are removed"
    assert seconds < 60, f"bounded run took {seconds:.0f} s"


def test_non_clean_case_is_kept_with_its_seed(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / STRIPES
    if not source.is_file():
        pytest.skip(f"{source} absent")
    with _worker("abort_target", timeout=20) as worker:
        [case] = fuzz.fuzz([source], 1, tmp_path, seed=3, worker=worker)
    assert case.result.outcome == "crash" and case.seed == fuzz.case_seed(3, 0) == 3_000_000
    kept = Path(str(case.kept))
    assert kept.name == f"crash-3000000-{source.name}"
    assert kept.read_bytes() == fuzz.mutate(source.read_bytes(), case.seed, "exr")[0], "reproducible from the seed"
    assert '"seed": 3000000' in kept.with_name(kept.name + ".json").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/status")
def test_reading_a_movie_does_not_pile_up_frames_and_threads(shared_data: Path) -> None:
    """Found by the fuzzer's address-space cap: every frame, with its swscale threads, waited for the GC."""
    from vfxmatte.io.movie import read_movie

    source = shared_data / "video/sar_2x1.mp4"
    if not source.is_file():
        pytest.skip(f"{source} absent")

    def threads() -> int:
        return int(Path("/proc/self/status").read_text().split("Threads:")[1].split()[0])

    baseline, most, count = threads(), 0, 0
    for _ in read_movie(source):
        count += 1
        most = max(most, threads())
    assert count == 150
    assert most - baseline < 32, f"{most} threads while reading ({baseline} before)"


def test_declared_frame_count_beyond_the_file_size_is_ignored(shared_data: Path, tmp_path: Path) -> None:
    """An MP4 whose stts says 2**31 - 1 frames: callers would list every frame number."""
    from vfxmatte.io.movie import probe_movie

    source = shared_data / "video/video_rotation_90.mp4"
    if not source.is_file():
        pytest.skip(f"{source} absent")
    data = bytearray(source.read_bytes())
    [stts] = [a for a in fuzz._mp4_atoms(bytes(data), 0, len(data)) if a.path.endswith("/stts")]
    data[stts.at + 16 : stts.at + 20] = (0x7FFFFFFF).to_bytes(4, "big")  # first entry's sample count
    damaged = tmp_path / "stts.mp4"
    damaged.write_bytes(data)
    assert probe_movie(source).declared_frames == 1
    assert probe_movie(damaged).declared_frames is None


def test_error_text_from_a_damaged_header_is_printable(shared_data: Path, tmp_path: Path) -> None:
    """Found by the fuzzer (t11.exr, seed 1000214): a channel named 'R\\x01' reached the message as is."""
    from vfxmatte.io.exr import read_plate

    source = shared_data / "exr/DisplayWindow/t11.exr"
    if not source.is_file():
        pytest.skip(f"{source} absent")
    damaged = tmp_path / "t11.exr"
    damaged.write_bytes(fuzz.mutate(source.read_bytes(), 1000214, "exr")[0])
    with pytest.raises(FrameError) as caught:
        read_plate(str(damaged), 1)
    message = str(caught.value)
    assert message.startswith(f"{damaged}: cannot open: ") and "adding channel 'R?'" in message
    assert message.isprintable()


def _png_movie(path: Path, width: int, height: int) -> None:
    """A two-picture PNG-in-QuickTime movie (64x48) whose PNG headers then claim ``width`` x ``height``."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for value in (0, 200):
            picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), value, np.uint8), format="rgb24")
            out.mux(stream.encode(picture))
        out.mux(stream.encode())
    data = bytearray(path.read_bytes())
    at = data.find(b"IHDR")
    while at >= 0:
        data[at + 4 : at + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
        data[at + 17 : at + 21] = zlib.crc32(bytes(data[at : at + 17])).to_bytes(4, "big")
        at = data.find(b"IHDR", at + 4)
    path.write_bytes(data)


def test_movie_pictures_over_the_pixel_budget_are_refused_before_allocation(tmp_path: Path) -> None:
    """A 1 kB movie claiming 16000x16000 pictures: FFmpeg's decoder reached 786 MB resident on it."""
    from vfxmatte.io.movie import probe_movie, read_movie

    huge, fine = tmp_path / "huge.mov", tmp_path / "fine.mov"
    _png_movie(huge, 16000, 16000)
    _png_movie(fine, 64, 48)
    assert probe_movie(fine).width == 64 and len(list(read_movie(fine))) == 2
    assert probe_movie(fine, max_pixels=64 * 48).width == 64
    with pytest.raises(InputError, match=r"huge.mov: 0 of 2 declared frames decoded: Invalid argument"):
        list(read_movie(huge))
    with pytest.raises(InputError, match=r"fine.mov: 0 of 2 declared frames decoded: Invalid argument"):
        list(read_movie(fine, max_pixels=64 * 48 - 1))
    with fuzz.Worker(timeout=60, memory_mb=1024) as worker:
        result = worker.run(str(huge))
    assert result.outcome == "error" and result.peak_rss_mb < 400, result
