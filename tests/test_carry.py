"""Keyframe guides carried through a shot (vfxmatte.carry) with real DIS optical flow, real EXRs and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from tests.conftest import run_cli
from vfxmatte import carry
from vfxmatte.errors import InputError, UsageError
from vfxmatte.io.frames import Plate, Window
from vfxmatte.sampling import resize


def _textures(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.random((height, width * 2, 3)).astype(np.float32), (0, 0), 2)
    subject = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5) * 0.5 + 0.5
    return background, subject


def moving_shot(frames: int, height: int = 135, width: int = 240) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured ellipse moving right and down over a panning background, a dark disc crossing
    behind it from the right: (sRGB images, true masks)."""
    background, texture = _textures(height, width)
    ys, xs = np.mgrid[0:height, 0:width]
    images, masks = [], []
    for t in range(frames):
        plate = background[:, t : t + width].copy()
        cx, cy = width * 0.25 + 3 * t, height * 0.5 + t
        subject = (((xs - cx) / (width / 8)) ** 2 + ((ys - cy) / (height / 3.4)) ** 2 <= 1).astype(np.float32)
        distractor = (((xs - (width * 0.85 - 5 * t)) / 15) ** 2 + ((ys - height * 0.55) / 25) ** 2 <= 1)
        plate[distractor] = 0.15
        moved = np.roll(texture, (t, 3 * t), axis=(0, 1))
        plate = moved * subject[..., None] + plate * (1 - subject[..., None])
        images.append(plate.astype(np.float32))
        masks.append(subject)
    return images, masks


def _plates(images: list[np.ndarray], first: int = 1001) -> list[Plate]:
    h, w = images[0].shape[:2]
    window = Window(0, 0, w, h)
    return [
        Plate(image, window, window, f"plate.{first + i}", first + i, "sRGB - Texture")
        for i, image in enumerate(images)
    ]


def _write_png(path: Path, values: np.ndarray) -> Path:
    assert oiio.ImageBuf(np.ascontiguousarray((values * 255).astype(np.uint8))).write(str(path))
    return path


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _carry(plates: list[Plate], plan: carry.GuidePlan, frames: list[int]) -> carry.CarryResult:
    by_frame = {p.frame: p for p in plates}

    def read(wanted: list[int]) -> Iterator[Plate | int]:
        return iter([by_frame[f] for f in wanted])

    return carry.carry_shot(plan, "mask", None, frames, sorted(by_frame), read)


def test_plan_guides_modes_and_refusals(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), np.float32)
    mask[2:6, 2:6] = 1
    for frame in (1001, 1005):
        _write_png(tmp_path / f"roto.{frame}.png", mask)
    shot = list(range(1001, 1011))
    plan = carry.plan_guides(str(tmp_path / "roto.####.png"), None, shot, shot)
    assert plan.mode == "keyframes" and plan.keyframes == [1001, 1005]
    # A sequence covering every frame of the shot keeps its meaning: a guide per frame.
    assert carry.plan_guides(str(tmp_path / "roto.####.png"), None, [1005], [1001, 1005]).mode == "per-frame"
    # Decided on the shot, not the frames matted: a chunk whose frames all have files is still keyed.
    assert carry.plan_guides(str(tmp_path / "roto.####.png"), None, [1001], shot).mode == "keyframes"
    # Keyframes outside the matted frames still count (the frames between are read, not written).
    assert carry.plan_guides(str(tmp_path / "roto.####.png"), None, [1008, 1009], shot).keyframes == [1001, 1005]
    single = _write_png(tmp_path / "one.png", mask)
    assert carry.plan_guides(str(single), None, shot, shot).mode == "static"
    keyed = carry.plan_guides(str(single), 1004, shot, shot)
    assert keyed.mode == "keyframes" and keyed.keyframes == [1004] and keyed.path_for(1004) == str(single)
    with pytest.raises(InputError, match=r"one\.png: --guide-frame 990 is outside the shot \(frames 1001-1010\)"):
        carry.plan_guides(str(single), 990, shot, shot)
    with pytest.raises(UsageError, match="--guide-frame takes one guide image"):
        carry.plan_guides(str(tmp_path / "roto.####.png"), 1001, shot, shot)
    with pytest.raises(InputError, match="no keyframe within reach of frames 2001-2003"):
        carry.plan_guides(str(tmp_path / "roto.####.png"), None, [2001, 2002, 2003], [2001, 2002, 2003])
    with pytest.raises(InputError, match="no guide files match"):
        carry.plan_guides(str(tmp_path / "none.####.png"), None, shot, shot)


def test_one_keyframe_is_carried_with_the_subject_and_its_doubt_grows() -> None:
    images, masks = moving_shot(16)
    plates = _plates(images)
    frames = [p.frame for p in plates]
    plan = carry.GuidePlan("keyframes", "roto.####.png", {1001: "roto.1001.png"})
    by_frame = {p.frame: p for p in plates}

    def load(path: str, kind: str, plate: Plate, channel: str | None) -> carry.CarriedSubject:
        h, w = carry.working_shape(*masks[0].shape)
        subject = np.clip(resize(masks[plate.frame - 1001], h, w), 0, 1)
        return carry.CarriedSubject(subject, np.zeros_like(subject), np.zeros_like(subject), keyframe=True)

    original = carry.load_keyframe
    carry.load_keyframe = load  # the keyframe file itself is tested below; here only the carry
    try:
        result = carry.carry_shot(plan, "mask", None, frames, frames, lambda f: iter([by_frame[x] for x in f]))
    finally:
        carry.load_keyframe = original
    h, w = masks[0].shape
    static_iou = _iou(masks[0] > 0.5, masks[-1] > 0.5)
    for frame in (1004, 1008, 1016):
        carried = resize(result.subjects[frame].mask, h, w) > 0.5
        assert _iou(carried, masks[frame - 1001] > 0.5) > 0.93, frame
    assert static_iou < 0.7  # the subject really moved: a stale roto would be wrong
    # The carried trimap's band holds the true edge: its known pixels agree with the truth.
    guide = result.subjects[1016].to_guide(h, w)
    known = ~guide.unknown
    assert ((guide.values[known] > 0.5) == (masks[-1][known] > 0.5)).mean() > 0.995
    scores = [result.subjects[f].score() for f in frames]
    assert scores[0] == 0.0 and scores[-1] > scores[3] > 0.0  # doubt grows with distance from the keyframe


def test_two_keyframes_blend_and_are_surer_between() -> None:
    images, masks = moving_shot(13)
    plates = _plates(images)
    h, w = masks[0].shape

    def load(path: str, kind: str, plate: Plate, channel: str | None) -> carry.CarriedSubject:
        hh, ww = carry.working_shape(h, w)
        subject = np.clip(resize(masks[plate.frame - 1001], hh, ww), 0, 1)
        return carry.CarriedSubject(subject, np.zeros_like(subject), np.zeros_like(subject), keyframe=True)

    original = carry.load_keyframe
    carry.load_keyframe = load
    try:
        one = _carry(plates, carry.GuidePlan("keyframes", "r", {1001: "a"}), [1012])
        two = _carry(plates, carry.GuidePlan("keyframes", "r", {1001: "a", 1013: "b"}), [1012])
        # A chunk that mattes only 1012 carries what a run over the whole shot carries.
        whole = _carry(plates, carry.GuidePlan("keyframes", "r", {1001: "a", 1013: "b"}), list(range(1001, 1014)))
    finally:
        carry.load_keyframe = original
    assert two.subjects[1012].score() < one.subjects[1012].score()
    assert _iou(resize(two.subjects[1012].mask, h, w) > 0.5, masks[11] > 0.5) > 0.95
    np.testing.assert_array_equal(two.subjects[1012].mask, whole.subjects[1012].mask)
    np.testing.assert_array_equal(two.subjects[1012].doubt, whole.subjects[1012].doubt)


def test_keyframe_files_are_checked(tmp_path: Path) -> None:
    window = Window(0, 0, 64, 36)
    plate = Plate(np.zeros((36, 64, 3), np.float32), window, window, "plate.1001.exr", 1001, "sRGB - Texture")
    empty = _write_png(tmp_path / "empty.png", np.zeros((36, 64), np.float32))
    with pytest.raises(InputError, match=r"empty\.png: the keyframe mask is empty"):
        carry.load_keyframe(str(empty), "mask", plate, None)
    square = _write_png(tmp_path / "square.png", np.pad(np.ones((20, 20), np.float32), 22))
    with pytest.raises(InputError, match=r"square\.png: the keyframe \(64x64\) does not map onto the plate"):
        carry.load_keyframe(str(square), "mask", plate, None)
    scribbles = np.zeros((36, 64, 4), np.float32)
    scribbles[10:20, 10:20] = 1.0
    assert oiio.ImageBuf(np.ascontiguousarray((scribbles * 255).astype(np.uint8))).write(str(tmp_path / "s.png"))
    with pytest.raises(UsageError, match="scribbles cannot be carried"):
        carry.load_keyframe(str(tmp_path / "s.png"), "scribble", plate, None)
    half = np.zeros((36, 64), np.float32)
    half[8:28, 16:40] = 1.0
    subject = carry.load_keyframe(str(_write_png(tmp_path / "ok.png", half)), "mask", plate, None)
    assert subject.keyframe and subject.score() == 0.0
    trimap = subject.to_guide(36, 64)
    assert trimap.kind == "trimap" and trimap.unknown.any() and (trimap.values == 1.0).any()


def test_next_keyframes_picks_the_most_doubtful_frame_of_each_stretch() -> None:
    # Between keyframes 1001 and 1005: the most doubtful frame; after 1005 (open-ended): where the carry
    # starts to fail (doubt ≥ 0.5), not the last frame.
    scores = {1001: 0.0, 1002: 0.3, 1003: 0.45, 1004: 0.4, 1005: 0.0, 1006: 0.2, 1007: 0.55, 1008: 0.9}
    assert carry.next_keyframes(scores, [1001, 1005]) == [1007, 1003]
    # Before the first keyframe the carry runs backward: the failing frame nearest the keyframe.
    assert carry.next_keyframes({1001: 0.9, 1002: 0.6, 1003: 0.3, 1004: 0.0}, [1004]) == [1002]
    assert carry.next_keyframes({1002: 0.1}, [1001]) == []


def _write_shot(folder: Path, images: list[np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        linear = np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)
        buf = oiio.ImageBuf(oiio.ImageSpec(image.shape[1], image.shape[0], 3, oiio.HALF))
        buf.set_pixels(oiio.ROI(), linear)
        assert buf.write(str(folder / f"plate.{1001 + i}.exr"))
    return str(folder / "plate.####.exr")


def _alpha(path: Path) -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    names = list(buf.spec().channelnames)
    return np.asarray(buf.get_pixels(oiio.FLOAT))[..., names.index("A")]


@pytest.mark.slow
def test_cli_roto_on_one_frame_guides_the_shot_and_chunks_match(tiny_model_dir: Path, tmp_path: Path) -> None:
    images, masks = moving_shot(6, 54, 96)
    plate = _write_shot(tmp_path / "plate", images)
    (tmp_path / "roto").mkdir()
    _write_png(tmp_path / "roto" / "roto.1001.png", masks[0])
    common = ["--model", str(tiny_model_dir), "--lr-size", "64", "--steps", "2", "--seeds", "2", "--seed", "3"]
    guide = ["--guide", str(tmp_path / "roto" / "roto.####.png"), "--guide-kind", "mask"]
    code, out, err = run_cli("matte", plate, "-o", str(tmp_path / "one" / "m.####.exr"), *common, *guide, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["keyframes"] == [1001] and report["frames"]["written"] == list(range(1001, 1007))
    assert report["keyframe_doubt"]["1001"] == 0.0 and report["keyframe_doubt"]["1006"] > 0.0
    assert report["timings"]["carry_s"] > 0.0
    header = oiio.ImageBuf(str(tmp_path / "one" / "m.1006.exr")).spec()
    assert json.loads(header.getattribute("vfxmatte:params"))["keyframes"] == [1001]
    assert header.getattribute("vfxmatte:keyframe_doubt") > 0.0
    # The carried guide holds the subject where it moved to: the matte is the subject's, not the roto's.
    alpha = _alpha(tmp_path / "one" / "m.1006.exr")
    assert _iou(alpha > 0.5, masks[5] > 0.5) > 0.85
    # Two chunks (the second starting after the keyframe) write the same frames as the single run.
    for frames in ("1001-1003", "1004-1006"):
        code, _, err = run_cli(
            "matte", plate, "-o", str(tmp_path / "chunks" / "m.####.exr"), *common, *guide, "--frames", frames
        )
        assert code == 0, err
    for frame in range(1001, 1007):
        np.testing.assert_array_equal(
            _alpha(tmp_path / "one" / f"m.{frame}.exr"), _alpha(tmp_path / "chunks" / f"m.{frame}.exr")
        )


@pytest.mark.slow
def test_cli_bad_keyframes_exit_2_and_write_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    images, masks = moving_shot(3, 36, 64)
    plate = _write_shot(tmp_path / "plate", images)
    common = ["--model", str(tiny_model_dir), "--lr-size", "64", "--steps", "1", "--seeds", "1"]
    (tmp_path / "empty").mkdir()
    _write_png(tmp_path / "empty" / "roto.1002.png", np.zeros_like(masks[0]))
    single = _write_png(tmp_path / "roto.png", masks[0])
    cases = [
        (["--guide", str(tmp_path / "empty" / "roto.####.png"), "--guide-kind", "mask"], "the keyframe mask is empty"),
        (["--guide", str(single), "--guide-frame", "1009"], "--guide-frame 1009 is outside the shot"),
        (["--guide", str(single), "--guide-frame", "1001", "--frames", "1002-1003", "--guide-kind", "scribble"],
         "scribbles cannot be carried"),
    ]
    for extra, message in cases:
        out = tmp_path / "out"
        code, stdout, stderr = run_cli("matte", plate, "-o", str(out / "m.####.exr"), *common, *extra)
        assert code == 2, (extra, stderr)
        assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_flow_run_carries_keyframes_over_chunks_like_one_cli_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`vfxmatte flow run` with a roto on one frame, in chunks of two on Prefect's embedded server,
    writes the frames one `vfxmatte matte` run writes, and reports the keyframes."""
    import os
    import subprocess
    import sys

    images, masks = moving_shot(5, 54, 96)
    plate = _write_shot(tmp_path / "plate", images)
    (tmp_path / "roto").mkdir()
    _write_png(tmp_path / "roto" / "roto.1003.png", masks[2])  # a keyframe in the middle: carried both ways
    guide = ["--guide", str(tmp_path / "roto" / "roto.####.png"), "--guide-kind", "mask"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(VFXMATTE_MODEL=str(tiny_model_dir), PREFECT_HOME=str(tmp_path / "ph"),
               VFXMATTE_MODEL_ROOTS=str(tiny_model_dir.parent), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90")
    command = [sys.executable, "-m", "vfxmatte.cli", "flow", "run", plate, "-o", str(tmp_path / "flow" / "m.####.exr"),
               "--preset", "draft", "--chunk-size", "2", "--no-review", "--json", *guide]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["frames"]["written"] == list(range(1001, 1006)) and result["keyframes"] == [1003]
    code, _, err = run_cli("matte", plate, "-o", str(tmp_path / "cli" / "m.####.exr"), "--model", str(tiny_model_dir),
                           "--preset", "draft", *guide)
    assert code == 0, err
    for frame in range(1001, 1006):
        np.testing.assert_array_equal(_alpha(tmp_path / "flow" / f"m.{frame}.exr"),
                                      _alpha(tmp_path / "cli" / f"m.{frame}.exr"))
    # A keyframe that is empty fails the run before any chunk: one line, exit 2, nothing written.
    _write_png(tmp_path / "roto" / "roto.1005.png", np.zeros_like(masks[0]))
    proc = subprocess.run([*command[:7], str(tmp_path / "bad" / "m.####.exr"), *command[8:]], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "|" not in line]
    assert len(errors) == 1 and "roto.1005.png: the keyframe mask is empty" in errors[0], errors
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
