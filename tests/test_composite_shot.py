"""The composite-shot builder (vfxmatte/composite_shot.py) on tiny shots of real content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from vfxmatte.composite_shot import (
    REPORT_HALF,
    SUBJECTS,
    TUNING_HALF,
    CompositeShot,
    build_composite_shot,
    frame_path,
    half_of,
    read_channels,
)
from vfxmatte.errors import InputError, UsageError

# Half float: 10-bit mantissa, so about 1e-3 relative on values up to ~1 (sRGB white is 1.0 linear).
HALF_TOLERANCE = 4e-3


def _build(folder: Path, data: Path, seed: int = 3, background: Path | None = None) -> CompositeShot:
    """A tiny shot: 6 frames of 96x64 px."""
    return build_composite_shot(folder, frames=6, width=96, height=64, data_root=data, seed=seed, background=background)


@pytest.fixture(scope="module")
def shot(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CompositeShot:
    return _build(tmp_path_factory.mktemp("shot"), shared_data)


def _rgb(pattern: str, frame: int) -> np.ndarray:
    return read_channels(frame_path(pattern, frame), ["R", "G", "B"])


def test_files_are_half_float_exrs_with_the_shot_size(shot: CompositeShot) -> None:
    import OpenImageIO as oiio

    assert shot.frames == list(range(1001, 1007))
    for pattern in (shot.plate, shot.truth, shot.background, shot.distractor_layer):
        for frame in shot.frames:
            image = oiio.ImageInput.open(frame_path(pattern, frame))
            assert image is not None
            spec = image.spec()
            image.close()
            assert (spec.width, spec.height) == (96, 64)
            assert spec.format == oiio.TypeDesc("half")
    manifest = json.loads((shot.folder / "shot.json").read_text())
    assert manifest["target"] == shot.target and manifest["frames"] == shot.frames


def test_plate_is_the_composite_of_truth_over_background(shot: CompositeShot) -> None:
    moved = []
    for frame in shot.frames:
        truth = read_channels(frame_path(shot.truth, frame), ["R", "G", "B", "A"])
        fg_prem, alpha = truth[..., :3], truth[..., 3:]
        plate, background = _rgb(shot.plate, frame), _rgb(shot.background, frame)
        assert np.abs(plate - (fg_prem + background * (1.0 - alpha))).max() < HALF_TOLERANCE
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
        soft = (alpha > 0.05) & (alpha < 0.95)
        assert soft.any(), "the target's true alpha has soft edges"
        moved.append(alpha[..., 0])
    # the subject moves: its alpha differs between the first and last frame
    assert np.abs(moved[0] - moved[-1]).mean() > 0.01
    # the camera moves: the background's frames differ although the footage is a locked-off shot at times
    assert np.abs(_rgb(shot.background, shot.frames[0]) - _rgb(shot.background, shot.frames[-1])).mean() > 0.01


def test_roto_is_the_true_alpha_above_half_smoothed_near_the_edge(shot: CompositeShot) -> None:
    for frame in shot.frames:
        alpha = shot.true_alpha(frame)
        roto = shot.roto_mask(frame)
        hard = alpha > 0.5
        assert roto.any()
        assert float((roto == hard).mean()) > 0.95
        # the two differ only near the true edge (within the roto's smoothing radius + 1 px)
        edge = hard ^ ndimage.binary_erosion(hard)
        near = ndimage.binary_dilation(edge, iterations=shot.roto_radius + 1)
        assert not (roto != hard)[~near].any()


def test_distractor_is_behind_the_target(shot: CompositeShot) -> None:
    overlap_seen = False
    for frame in shot.frames:
        truth = read_channels(frame_path(shot.truth, frame), ["R", "G", "B", "A"])
        distractor = read_channels(frame_path(shot.distractor_layer, frame), ["R", "G", "B", "A"])
        solid = (truth[..., 3] > 0.999) & (distractor[..., 3] > 0.5)
        overlap_seen |= bool(solid.any())
        plate = _rgb(shot.plate, frame)
        # where the target is solid the plate is the target's colour, whatever the distractor is
        assert np.abs(plate[solid] - truth[..., :3][solid]).max(initial=0.0) < HALF_TOLERANCE
        # where the target is absent the distractor shows
        alone = (truth[..., 3] == 0) & (distractor[..., 3] > 0.999)
        assert np.abs(plate[alone] - distractor[..., :3][alone]).max(initial=0.0) < HALF_TOLERANCE
    assert overlap_seen, "the distractor crosses behind the target at some frame"


def test_same_seed_same_files_other_seed_other_moves(shared_data: Path, tmp_path: Path) -> None:
    first = _build(tmp_path / "a", shared_data, 3)
    again = _build(tmp_path / "b", shared_data, 3)
    other = _build(tmp_path / "c", shared_data, 4)
    for frame in first.frames:
        for attr, channels in (("plate", ["R", "G", "B"]), ("truth", ["R", "G", "B", "A"]), ("roto", ["Y"])):
            a = read_channels(frame_path(getattr(first, attr), frame), channels)
            b = read_channels(frame_path(getattr(again, attr), frame), channels)
            assert np.array_equal(a, b), f"{attr} {frame} differs between two builds with one seed"
    assert any(not np.array_equal(_rgb(first.plate, f), _rgb(other.plate, f)) for f in first.frames)


def test_missing_data_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        _build(tmp_path / "shot", tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message and "GT16.png" in message and "not found" in message


def test_missing_footage_is_one_line(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothing\.mp4: not found"):
        _build(tmp_path / "shot", shared_data, background=tmp_path / "nothing.mp4")


def test_halves_split_the_twenty_subjects() -> None:
    assert set(TUNING_HALF) | set(REPORT_HALF) == set(SUBJECTS) and not set(TUNING_HALF) & set(REPORT_HALF)
    assert half_of("GT03") == "tuning" and half_of("GT13") == "report"
    with pytest.raises(UsageError):
        half_of("GT21")
