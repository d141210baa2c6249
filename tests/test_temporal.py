"""Temporal modes (off / shared / prev-latent), chunk warm-up and the optical flow, on 64 px frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from scipy import ndimage

from vfxmatte.config import MatteParams, RunOptions
from vfxmatte.errors import UsageError
from vfxmatte.io.frames import Plate, Window
from vfxmatte.model.core import MattingModel, load_model
from vfxmatte.pipeline import matte_plate, matte_shot
from vfxmatte.sampling import make_scheduler, noised_start
from vfxmatte.temporal import TemporalState, estimate_flow, frame_seed, warp_latents

FAST = {"steps": 2, "seeds": 2, "lr_size": 64, "hr": "off"}
#: Mean and largest per-pixel alpha difference allowed between a chunked and a single
#: prev-latent run with the tiny *untrained* model, whose latents are far from any matte;
#: the bundled model's bound is measured by scripts/bench_temporal.py (docs/BENCHMARKS.md).
CHUNK_BOUND_MEAN, CHUNK_BOUND_MAX = 0.03, 0.35


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> MattingModel:
    return load_model(tiny_model_dir)


def _frame(index: int, size: int = 64) -> np.ndarray:
    """A soft disc moving right over a textured background, linear RGB."""
    rng = np.random.default_rng(3)
    bg = ndimage.gaussian_filter(rng.random((size, size, 3)), (2, 2, 0)).astype(np.float32) * 0.4
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    disc = np.clip(12 - np.hypot(xs - 20 - 3 * index, ys - 32), 0, 1)[..., None]
    return (bg * (1 - disc) + np.array([0.9, 0.6, 0.2], np.float32) * disc).astype(np.float32)


def _plate(index: int, frame: int | None = None) -> Plate:
    window = Window(0, 0, 64, 64)
    return Plate(_frame(index), window, window, "mem", 1001 + index if frame is None else frame, "ACES - ACEScg")


def _sequence(folder: Path, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = str(folder / f"shot.{1001 + i:04d}.exr")
        out = oiio.ImageOutput.create(path)
        assert out is not None and out.open(path, oiio.ImageSpec(64, 64, 3, "half"))
        assert out.write_image(_frame(i)) and out.close()
    return str(folder / "shot.####.exr")


def _alpha(path: Path) -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    return np.asarray(buf.get_pixels(oiio.FLOAT))[..., 3]


@pytest.mark.parametrize("mode", ["off", "shared", "prev-latent"])
def test_same_seed_same_frame_same_matte(model: MattingModel, mode: str) -> None:
    params = MatteParams(**FAST, seed=7, temporal=mode)  # type: ignore[arg-type]
    runs = []
    for _ in range(2):
        state = TemporalState(mode=params.temporal, seed=7)  # type: ignore[arg-type]
        runs.append([matte_plate(model, _plate(i), params, temporal=state).alpha for i in range(2)])
    for first, second in zip(*runs, strict=True):
        assert np.array_equal(first, second)


def test_shared_noise_is_identical_across_frames_and_off_is_not(model: MattingModel) -> None:
    shape = (2, 4, 16, 16)
    image = _frame(0)
    shared = TemporalState(mode="shared", seed=3)
    off = TemporalState(mode="off", seed=3)
    assert torch.equal(shared.inputs(1001, shape, image)[0], shared.inputs(1050, shape, image)[0])
    assert not torch.equal(off.inputs(1001, shape, image)[0], off.inputs(1002, shape, image)[0])
    again = TemporalState(mode="off", seed=3).inputs(1001, shape, image)[0]
    assert torch.equal(off.inputs(1001, shape, image)[0], again)
    assert frame_seed(3, 1001) != frame_seed(4, 1001)
    # the same picture at two frame numbers: shared gives one matte, off gives two
    params = {"shared": MatteParams(**FAST, temporal="shared"), "off": MatteParams(**FAST, temporal="off")}
    a, b = (matte_plate(model, _plate(0, frame), params["shared"]).alpha for frame in (1001, 1002))
    assert np.array_equal(a, b)
    a, b = (matte_plate(model, _plate(0, frame), params["off"]).alpha for frame in (1001, 1002))
    assert not np.array_equal(a, b)


def test_prev_latent_starts_only_from_the_predecessor(model: MattingModel) -> None:
    params = MatteParams(**FAST, temporal="prev-latent", temporal_strength=0.5)
    state = TemporalState(mode="prev-latent", strength=0.5)
    side = 64 // model.latent_factor
    shape = (2, 4, side, side)
    assert state.inputs(1001, shape, _frame(0))[1] is None  # nothing carried yet
    matte_plate(model, _plate(0), params, temporal=state)
    assert state.frame == 1001 and state.latents is not None and tuple(state.latents.shape) == shape
    start = state.inputs(1002, shape, _frame(1))[1]
    assert start is not None and torch.equal(start, state.latents)
    assert state.inputs(1003, shape, _frame(2))[1] is None  # 1002 is not done: no start from 1001
    assert state.inputs(1002, (2, 4, side // 2, side // 2), _frame(1))[1] is None  # other size: start afresh
    assert state.needs_warmup(1005, {1005, 1006}) == 1004 and state.needs_warmup(1006, {1005, 1006}) is None
    # the start changes the result, so the previous frame is really used
    fresh = matte_plate(model, _plate(1), params).alpha
    chained = matte_plate(model, _plate(1), params, temporal=state).alpha
    assert not np.array_equal(fresh, chained)


def test_noised_start_runs_the_strength_fraction_of_the_schedule() -> None:
    scheduler = make_scheduler()
    scheduler.set_timesteps(10)
    clean, noise = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)
    for strength, count in ((1.0, 10), (0.5, 5), (0.3, 3), (0.01, 1)):
        latents, timesteps = noised_start(scheduler, clean, noise, strength)
        assert len(timesteps) == count and int(timesteps[0]) == int(scheduler.timesteps[10 - count])
        alpha_bar = float(scheduler.alphas_cumprod[int(timesteps[0])])
        assert torch.allclose(latents, torch.full_like(latents, (1 - alpha_bar) ** 0.5))


def test_flow_recovers_a_shift_and_warps_latents() -> None:
    rng = np.random.default_rng(0)
    previous = ndimage.gaussian_filter(rng.random((64, 64, 3)), (2, 2, 0)).astype(np.float32)
    current = np.roll(previous, (2, 4), axis=(0, 1))  # moved 4 right, 2 down
    flow = estimate_flow(previous, current)
    assert np.allclose(flow[12:-12, 12:-12].mean(axis=(0, 1)), (-4, -2), atol=0.3)
    latents = torch.from_numpy(previous.transpose(2, 0, 1)[None].copy())
    warped = warp_latents(latents, flow)[0].numpy().transpose(1, 2, 0)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(warped - current)[inner].mean() < 0.25 * np.abs(previous - current)[inner].mean()


@pytest.mark.parametrize("mode", ["off", "prev-latent"])
def test_chunked_run_matches_single_run(model: MattingModel, tmp_path: Path, mode: str) -> None:
    shot = _sequence(tmp_path / "in", 4)
    params = MatteParams(**FAST, temporal=mode, temporal_flow=mode == "prev-latent")
    single = matte_shot(shot, str(tmp_path / "single" / "m.####.exr"), params, model=model)
    assert single.exit_code == 0 and not single.notes
    summaries = [
        matte_shot(shot, str(tmp_path / "chunks" / "m.####.exr"), params, frames=chunk, model=model)
        for chunk in ([1001, 1002], [1003, 1004])
    ]
    assert [s.frames("written") for s in summaries] == [[1001, 1002], [1003, 1004]]
    if mode == "prev-latent":
        assert summaries[1].notes == ["frame 1002 matted for temporal state only (warm-up), not written"]
    else:
        assert not summaries[1].notes
    for frame in range(1001, 1005):
        a, b = (_alpha(tmp_path / run / f"m.{frame}.exr") for run in ("single", "chunks"))
        if mode != "prev-latent" or frame <= 1002:
            assert np.array_equal(a, b), frame
        else:
            difference = np.abs(a - b)
            assert 0 < float(difference.mean()) <= CHUNK_BOUND_MEAN, frame
            assert float(difference.max()) <= CHUNK_BOUND_MAX, frame


def test_resume_warms_up_from_a_skipped_frame(model: MattingModel, tmp_path: Path) -> None:
    shot = _sequence(tmp_path / "in", 3)
    out = str(tmp_path / "out" / "m.####.exr")
    params = MatteParams(**FAST, temporal="prev-latent")
    matte_shot(shot, out, params, frames=[1001, 1002], model=model)
    again = matte_shot(shot, out, params, model=model)
    assert again.frames("skipped") == [1001, 1002] and again.frames("written") == [1003]
    assert again.notes == ["frame 1002 matted for temporal state only (warm-up), not written"]
    record = json.loads(oiio.ImageBuf(out.replace("####", "1003")).spec().get_string_attribute("vfxmatte:params"))
    assert (record["temporal"], record["temporal_strength"], record["temporal_flow"]) == ("prev-latent", 0.5, False)


def test_bad_temporal_parameters_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--temporal sideways"):
        MatteParams(temporal="sideways")
    with pytest.raises(UsageError, match="--temporal-strength 0"):
        MatteParams(temporal_strength=0.0)


def test_movie_chunk_warms_up_from_the_frame_before(model: MattingModel, tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mov"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(3):
            picture = (np.clip(_frame(i), 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    params = MatteParams(**FAST, temporal="prev-latent")
    options = RunOptions(start_frame=1)
    first = matte_shot(str(path), str(tmp_path / "a" / "m.####.exr"), params, options, frames=[1], model=model)
    assert first.frames("written") == [1] and not first.notes
    later = matte_shot(str(path), str(tmp_path / "b" / "m.####.exr"), params, options, frames=[3], model=model)
    assert later.frames("written") == [3] and later.exit_code == 0
    assert later.notes == ["frame 2 matted for temporal state only (warm-up), not written"]
    assert not (tmp_path / "b" / "m.0002.exr").exists()
