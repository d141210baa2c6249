"""The prior steadied over neighbouring frames (vfxmatte.steady): blips dropped, misses filled, in order."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vfxmatte.steady import Seen, frames_to_read, steady_masks, window

SIZE = 96


def _picture(index: int) -> np.ndarray:
    """A textured square moving right 3 px a frame over a textured, still background (uint8 RGB)."""
    rng = np.random.default_rng(5)
    bg = ndimage.gaussian_filter(rng.random((SIZE, SIZE)), 1.5) * 120
    fg = ndimage.gaussian_filter(np.random.default_rng(6).random((SIZE, SIZE)), 1.5) * 120 + 120
    x0 = 20 + 3 * index
    picture = bg.copy()
    picture[30:66, x0 : x0 + 30] = fg[30:66, 20:50]
    return np.repeat(np.clip(picture, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _truth(index: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[30:66, 20 + 3 * index : 50 + 3 * index] = 1.0
    return mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / max(1, ((a > 0.5) | (b > 0.5)).sum()))


def test_windows_follow_the_inputs_frame_order() -> None:
    ordered = [1001, 1002, 1004, 1005, 1009]  # a sequence with holes: neighbours are the frames on disk
    assert window(1004, ordered, 1) == [1002, 1004, 1005]
    # At the ends the window reaches further in: always 2·radius + 1 masks, an odd median.
    assert window(1001, ordered, 1) == [1001, 1002, 1004]
    assert window(1009, ordered, 1) == [1004, 1005, 1009]
    assert window(1001, ordered, 2) == ordered
    assert window(1001, ordered, 3) == ordered  # a shot shorter than the window: all of it
    assert window(1003, ordered, 2) == [1003]  # not in the input: only itself
    assert frames_to_read([1001, 1009], ordered, 1) == [1001, 1002, 1004, 1005, 1009]


def test_a_blip_is_dropped_and_a_miss_is_filled_moved_with_the_picture() -> None:
    count = 9
    masks = [_truth(i) for i in range(count)]
    masks[4] = np.zeros_like(masks[4])  # the prior loses the subject on one frame
    masks[6] = masks[6].copy()
    masks[6][5:25, 70:90] = 1.0  # and finds something else on another
    frames = list(range(1001, 1001 + count))
    seen = (Seen(f, m, _picture(i)) for i, (f, m) in enumerate(zip(frames, masks, strict=True)))
    out = dict(steady_masks(seen, frames, frames, radius=2))
    assert list(out) == frames
    assert _iou(out[1005], _truth(4)) > 0.9  # the miss filled where the subject is on that frame
    assert out[1007][5:25, 70:90].max() < 0.5  # the blip gone
    for i in (0, 2, 8):
        assert _iou(out[1001 + i], _truth(i)) > 0.9  # a steady subject stays where it is, ends included
    # radius 0 is each frame's own mask.
    seen = (Seen(f, m, _picture(i)) for i, (f, m) in enumerate(zip(frames, masks, strict=True)))
    assert all(np.array_equal(m, masks[f - 1001]) for f, m in steady_masks(seen, frames, frames, radius=0))


def test_unreadable_frames_are_left_out_and_a_chunk_gets_the_single_runs_masks() -> None:
    count = 8
    frames = list(range(1001, 1001 + count))

    def seen(read: list[int], broken: int | None = None):  # type: ignore[no-untyped-def]
        for f in read:
            yield f if f == broken else Seen(f, _truth(f - 1001), _picture(f - 1001))

    whole = dict(steady_masks(seen(frames), frames, frames, radius=2))
    chunk = [1004, 1005]
    read = frames_to_read(chunk, frames, 2)
    assert read == [1002, 1003, 1004, 1005, 1006, 1007]
    assert frames_to_read([1001], frames, 2) == [1001, 1002, 1003, 1004, 1005]
    part = dict(steady_masks(seen(read), chunk, frames, radius=2))
    assert list(part) == chunk and all(np.array_equal(part[f], whole[f]) for f in chunk)
    # An unreadable neighbour is left out; an unreadable wanted frame yields nothing.
    broken = dict(steady_masks(seen(frames, broken=1005), frames, frames, radius=2))
    assert 1005 not in broken and list(broken) == [f for f in frames if f != 1005]
    assert _iou(broken[1004], _truth(3)) > 0.9
    # A frame of another size (the matting refuses it) has no vote either.
    odd = [Seen(f, _truth(f - 1001), _picture(f - 1001)) for f in frames]
    odd[4] = Seen(1005, np.zeros((48, 48), np.float32), np.zeros((48, 48, 3), np.uint8))
    mixed = dict(steady_masks(iter(odd), frames, frames, radius=2))
    assert list(mixed) == frames and np.array_equal(mixed[1005], odd[4].mask)
    assert all(_iou(mixed[f], _truth(f - 1001)) > 0.9 for f in frames if f != 1005)
