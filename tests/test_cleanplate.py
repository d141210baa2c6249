"""The clean plate of a locked-off shot (vfxmatte.cleanplate): gathered, refused, matched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from vfxmatte import cleanplate, hr
from vfxmatte.cleanplate import CleanPlate, CleanPlateSettings, background_match, gather, sample_frames
from vfxmatte.sampling import resize

H, W = 96, 160


def textured_background(rng: np.random.Generator) -> np.ndarray:
    """Rows of dark and light 'lawn' with a grey band: a background with the subject's dark colour."""
    rows = np.where((np.arange(H) // 2) % 2 == 0, 0.12, 0.45)[:, None, None]
    base = np.broadcast_to(rows, (H, W, 3)).copy()
    base[:20] = 0.7
    return np.clip(base + rng.normal(0.0, 0.01, base.shape), 0.0, 1.0).astype(np.float32)


def frame_with_subject(background: np.ndarray, left: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark subject 24 px wide over the background (fresh grain), and a prior mask of it."""
    image = np.clip(background + rng.normal(0.0, 0.01, background.shape), 0.0, 1.0).astype(np.float32)
    image[30:90, left : left + 24] = 0.1
    prior = np.zeros((H, W), np.float32)
    prior[30:90, left : left + 24] = 1.0
    return image, prior


def test_sample_frames_spread_over_the_whole_input() -> None:
    assert sample_frames(list(range(1001, 1006)), 12) == list(range(1001, 1006))
    picked = sample_frames(list(range(1001, 1241)), 12)
    assert len(picked) == 12 and picked[0] == 1001 and picked[-1] == 1240
    assert picked == sorted(picked)


def test_a_locked_off_shot_gives_its_background_back() -> None:
    rng = np.random.default_rng(0)
    background = textured_background(rng)
    samples = [(1001 + i, *frame_with_subject(background, 10 + 12 * i, rng)) for i in range(10)]
    plate = gather(samples)
    assert isinstance(plate, CleanPlate), plate
    assert plate.frames == list(range(1001, 1011))
    # Seen without the subject nearly everywhere; within grain of the true background there.
    assert plate.seen.mean() > 0.9
    error = np.abs(plate.image - background).mean(axis=2)[plate.seen]
    assert np.median(error) < 0.01
    assert 0.0 < plate.residual < 0.02
    assert "residual" in plate.describe()


def world(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A picture with detail everywhere (what a camera pans over)."""
    texture = ndimage.gaussian_filter(rng.random((height, width, 3)), (1.2, 1.2, 0))
    return ((texture - texture.min()) / (texture.max() - texture.min())).astype(np.float32)


def test_a_panning_camera_gives_a_tracked_plate() -> None:
    """The camera pans 8 px a frame while a subject crosses the other way: the samples are placed
    on one another, the plate is a mosaic wider than the frame, and a frame that is not a sample
    is placed on it by its own features and gets its background back."""
    rng = np.random.default_rng(1)
    height, width = 120, 200
    scene = world(rng, height, width + 8 * 12)

    def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
        image = scene[:, 8 * i : 8 * i + width] + rng.normal(0.0, 0.005, (height, width, 3)).astype(np.float32)
        prior = np.zeros((height, width), np.float32)
        image[40:110, 20 + 11 * i : 46 + 11 * i] = (0.9, 0.3, 0.1)
        prior[40:110, 20 + 11 * i : 46 + 11 * i] = 1.0
        return image, prior

    samples = [(1001 + i, *frame(i)) for i in range(10)]
    quick = cleanplate.camera_moves([image for _, image, _ in samples])  # seen from the frames alone
    assert quick is not None and "frame-to-frame" in quick and "camera moves" in quick
    plate = gather(samples, moving=True)
    assert isinstance(plate, CleanPlate) and plate.tracking is not None, plate
    assert plate.image.shape[1] > width + 50 and plate.residual < 0.01
    assert plate.describe().startswith("clean plate tracked over a moving camera from frames 1001,")
    # Without the frame-to-frame hint the samples' features see the camera travel, and it tracks;
    # with tracking off the camera's move is the reason there is none.
    assert gather(samples).describe() == plate.describe()
    off = gather(samples, CleanPlateSettings(track=False))
    assert isinstance(off, str) and "camera moves" in off
    # Frame 1005 as a frame between samples: placed on its nearest sample by its own features.
    tracking = plate.tracking
    between = CleanPlate(
        image=plate.image, seen=plate.seen, residual=plate.residual, frames=plate.frames,
        tracking=cleanplate.Tracking(
            shape=tracking.shape,
            to_mosaic={f: h for f, h in tracking.to_mosaic.items() if f != 1005},
            features={f: x for f, x in tracking.features.items() if f != 1005},
            settings=tracking.settings,
        ),
    )  # fmt: skip
    image, prior = frame(4)
    view = between.view(1005, image, ~(prior > 0))
    assert view is not None
    back, seen, _ = view
    assert seen.mean() > 0.8
    assert np.median(np.abs(back - scene[:, 32 : 32 + width]).mean(axis=2)[seen]) < 0.02
    match = background_match(image, between, prior, frame=1005)
    known, own = match.known, match.own
    assert known is not None and own < 0.02 and match.refused is None
    assert known.mean() > 0.5 and not known[40:110, 64:90].any()  # the background, never the subject
    # A frame the plate's features cannot find (another picture altogether) is not placed.
    elsewhere = world(rng, height, width)
    assert between.view(1005, elsewhere, np.ones((height, width), bool)) is None
    match = background_match(elsewhere, between, np.zeros((height, width), np.float32), frame=1005)
    assert match.known is None and match.refused is not None and "could not be placed" in match.refused


def test_parallax_or_too_few_frames_give_no_plate() -> None:
    rng = np.random.default_rng(1)
    height, width = 120, 200
    layers = [world(rng, height, width + speed * 10) for speed in (3, 12, 24)]

    def frame(i: int) -> np.ndarray:
        """Three depths that pass the camera at three speeds: no one homography places them."""
        image = np.empty((height, width, 3), np.float32)
        for band, (layer, speed) in enumerate(zip(layers, (3, 12, 24), strict=True)):
            rows = slice(band * height // 3, (band + 1) * height // 3)
            image[rows] = layer[rows, speed * i : speed * i + width]
        return image

    parallax = [(1001 + i, frame(i), np.zeros((height, width), np.float32)) for i in range(8)]
    reason = gather(parallax, moving=True)
    assert isinstance(reason, str) and "camera moves" in reason, reason
    assert "parallax" in reason, reason
    background = textured_background(rng)
    still = [frame_with_subject(background, 10 + 12 * i, rng)[0] for i in range(8)]
    assert cleanplate.camera_moves(still) is None and cleanplate.camera_moves(still[:1]) is None
    reason = gather(parallax[:2])
    assert isinstance(reason, str) and "at least 3" in reason
    mixed = [parallax[0], (1002, parallax[1][1][:50], parallax[1][2]), parallax[2]]
    reason = gather(mixed)
    assert isinstance(reason, str) and "2 frame(s) of the shot's size" in reason


def test_the_match_finds_background_and_never_the_subject_or_its_edge() -> None:
    rng = np.random.default_rng(2)
    background = textured_background(rng)
    plate = gather([(1001 + i, *frame_with_subject(background, 10 + 12 * i, rng)) for i in range(10)])
    assert isinstance(plate, CleanPlate)
    image, prior = frame_with_subject(background, 70, rng)
    match = background_match(image, plate, prior)
    known, own = match.known, match.own
    assert known is not None and own < 2 * plate.residual
    subject = prior > 0.5
    radius = max(1, round(CleanPlateSettings().radius * W))
    # Dark on dark lawn rows: a window of subject is never lawn, nor is a pixel on its sides, whose
    # window is mostly subject.  (Where the subject's own last rows equal the lawn's dark rows, a
    # window across that edge can match: a sliver within ``radius`` px, cleared only outside the
    # prior's contour.)
    assert not known[ndimage.binary_erosion(subject, iterations=radius + 1)].any()
    sides = np.zeros_like(subject)
    sides[32:88, 70] = sides[32:88, 93] = True
    assert not known[sides].any()
    away = np.zeros_like(subject)
    away[25:95, 40:60] = True  # lawn beside the subject, seen on other frames
    assert known[away].mean() > 0.95
    # A frame whose subjects cover all the plate saw: nothing is known, and no warning is due.
    match = background_match(image, plate, np.ones_like(prior))
    known, own = match.known, match.own
    assert known is not None and not known.any() and np.isnan(own) and match.refused is None
    # A frame whose background changed as a whole (a flash) is matted without the plate.
    flashed = np.clip(image * 1.5, 0, 1)
    match = background_match(flashed, plate, prior)
    known, own = match.known, match.own
    assert known is None and own > 2 * plate.residual
    assert match.refused is not None and "differs from the shot's clean plate as a whole" in match.refused
    # A frame of another size is refused, saying so.
    match = background_match(image[:, :100], plate, prior[:, :100])
    assert match.known is None and match.refused == f"the frame is 100x{H}, the shot's clean plate {W}x{H}"


def test_the_plate_clears_spill_outside_the_prior_contour_only() -> None:
    """What the frame shows unchanged from the plate is known background for the refine, outside
    the prior's contour: what the prior calls the subject is never cleared (unless asked)."""
    rng = np.random.default_rng(3)
    background = textured_background(rng)
    plate = gather([(1001 + i, *frame_with_subject(background, 10 + 12 * i, rng)) for i in range(10)])
    assert isinstance(plate, CleanPlate)
    image, prior = frame_with_subject(background, 70, rng)
    # A prior with a soft edge (a band to solve) that also calls a piece of lawn the subject.
    soft = ndimage.gaussian_filter(prior, 3.0)
    soft[40:60, 30:50] = 1.0
    known = background_match(image, plate, soft).known
    assert known is not None
    inside = resize(soft, H, W) >= 0.5
    assert not known[inside].any() and known[~inside].mean() > 0.8
    everything = background_match(image, plate, soft, CleanPlateSettings(inside=True)).known
    assert everything is not None and everything[40:60, 30:50].all()
    lr = np.zeros((24, 40), np.float32)
    common = dict(steps=1, seed=0, lr_size=64, prior=soft)
    without = hr.refine("pymatting", None, image, image, lr, lr, **common)  # type: ignore[arg-type]
    cleared = hr.refine("pymatting", None, image, image, lr, lr, known_background=known, **common)  # type: ignore[arg-type]
    assert not cleared.alpha[known].any() and cleared.known_share == pytest.approx(known.mean())
    assert without.known_share is None and without.alpha[known].max() > 0.0
    assert cleared.alpha[soft > 0.9].min() > 0.99  # the subject and the lawn the prior called subject stay
    # A guided run has no prior's subject to clear around: the plate is not applied.
    trimap = np.where(prior > 0.5, 1.0, 0.0).astype(np.float32)
    guided = hr.refine(
        "pymatting", None, image, image, lr, lr, steps=1, seed=0, lr_size=64,  # type: ignore[arg-type]
        guide_trimap=trimap, known_background=known,
    )  # fmt: skip
    assert guided.known_share is None


def test_a_head_the_prior_misses_on_a_person_who_stands_still_is_not_taken_for_background() -> None:
    """A person standing still on every sample, the prior finding the body and not the head: without
    the head room above each subject the head would be gathered into the plate and then match it."""
    rng = np.random.default_rng(5)
    background = textured_background(rng)
    samples = []
    for i in range(8):
        image, prior = frame_with_subject(background, 100, rng)  # the same place on every frame
        image[16:26, 104:120] = 0.3  # the head, above the body; the prior (body only) misses it
        samples.append((1001 + i, image, prior))
    plate = gather(samples)
    assert isinstance(plate, CleanPlate)
    head = (slice(16, 26), slice(104, 120))
    assert not plate.seen[head].any()
    image, prior = samples[-1][1], samples[-1][2]
    known = background_match(image, plate, prior).known
    assert known is not None and not known[head].any()
    bare = gather(samples, CleanPlateSettings(headroom=0.0))
    assert isinstance(bare, CleanPlate) and bare.seen[head].all()
    known = background_match(image, bare, prior, CleanPlateSettings(headroom=0.0)).known
    assert known is not None and known[head].mean() > 0.5  # the failure the head room prevents


def test_what_differs_from_the_plate_where_the_prior_sees_faintly_is_the_subject() -> None:
    """A person walks across a locked-off shot; on the frame matted, the prior sees his head only
    faintly (0.3), against lawn rows whose dark ones have his colour.  The plate says the head's
    windows are no lawn: asked to fill, they are subject, and the refine keeps the head.  Not
    where the background moves by itself (leaves: a patch whose samples differ widely) by no more
    than it does, nor where the lawn's rows still show through what differs (his shadow, a
    translucent veil), though the prior sees all three as faintly as the head."""
    rng = np.random.default_rng(8)
    background = textured_background(rng)
    leaves = (slice(60, 90), slice(130, 156))

    def frame(left: int) -> tuple[np.ndarray, np.ndarray]:
        image, prior = frame_with_subject(background, left, rng)
        image[18:30, left + 4 : left + 20] = 0.3  # the head
        prior[18:30, left + 4 : left + 20] = 0.3
        image[leaves] = np.clip(0.3 + rng.normal(0.0, 0.12, image[leaves].shape), 0.0, 1.0)
        return image, prior

    samples = [(1001 + i, *frame(10 + 12 * i)) for i in range(10)]
    plate = gather(samples)
    assert isinstance(plate, CleanPlate) and plate.spread is not None
    assert plate.spread[leaves].mean() > 5 * plate.spread[40:60, 10:40].mean()
    image, prior = frame(40)
    shadow, veil = (slice(84, 96), slice(64, 110)), (slice(36, 56), slice(96, 124))
    image[shadow] *= 0.5  # his shadow beside his feet
    image[veil] = 0.5 * image[veil] + 0.5 * 0.9  # something translucent and bright
    for faint in (leaves, shadow, veil):
        prior[faint] = 0.3
    settings = CleanPlateSettings()
    assert background_match(image, plate, prior, replace(settings, differ=0.0)).subject is None
    match = background_match(image, plate, prior, settings)
    assert match.known is not None and match.subject is not None
    head = (slice(20, 28), slice(47, 57))
    assert match.subject[head].all()
    for faint in (leaves, shadow, veil):
        assert not match.subject[faint].any()
    # Without the spread, the leaves; without looking for the lawn's texture, the shadow and the veil.
    loose = background_match(image, plate, prior, replace(settings, differ_spread=0.0)).subject
    assert loose is not None and loose[leaves].mean() > 0.5
    blind = background_match(image, plate, prior, replace(settings, through=0.0)).subject
    assert blind is not None and blind[shadow].mean() > 0.3 and blind[veil].mean() > 0.3
    radius = max(1, round(settings.radius * W))
    outline = (resize(prior, H, W) > 0.1) & ~ndimage.binary_erosion(resize(prior, H, W) > 0.1, iterations=radius)
    assert not match.subject[outline].any()  # shrunk by the window: the edge is left to the solve
    assert not match.subject[resize(prior, H, W) >= 0.5].any()  # inside the contour the band solves it
    lr = np.zeros((24, 40), np.float32)
    common = dict(steps=1, seed=0, lr_size=64, prior=prior, known_background=match.known)
    kept = hr.refine("pymatting", None, image, image, lr, lr, known_subject=match.subject, **common)  # type: ignore[arg-type]
    lost = hr.refine("pymatting", None, image, image, lr, lr, **common)  # type: ignore[arg-type]
    assert kept.alpha[head].mean() > 0.95 and lost.alpha[head].mean() < 0.5


def panned_over_a_still_person(
    rng: np.random.Generator, height: int, width: int, step: int, person: slice
) -> Callable[[int], np.ndarray]:
    """Frame ``i`` (fresh grain) of a camera panning ``step`` px a frame over a picture in which a
    person stands still (rows 30-100, columns ``person`` of the world)."""
    scene = world(rng, height, width + step * 12)
    scene[30:100, person] = (0.9, 0.3, 0.1)

    def shown(i: int) -> np.ndarray:
        grain = rng.normal(0.0, 0.005, (height, width, 3)).astype(np.float32)
        return scene[:, step * i : step * i + width] + grain

    return shown


def test_a_person_who_stands_still_and_whom_the_prior_misses_on_a_few_samples_is_not_the_plate() -> None:
    """The camera pans past a person who stands still; the prior finds him on 6 of 10 samples and
    misses him on 4 (cut by the frame's edge, half in shadow).  With ``min_seen`` alone those 4
    make him the tracked plate, and the plate would clear him; most samples that show him call
    him a subject, so with ``track_share`` he is not gathered."""
    height, width = 120, 200
    shown = panned_over_a_still_person(np.random.default_rng(6), height, width, step=8, person=slice(150, 180))

    def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
        image = shown(i)
        prior = np.zeros((height, width), np.float32)
        if i % 3:  # missed on 1001, 1004, 1007, 1010
            prior[30:100, 150 - 8 * i : 180 - 8 * i] = 1.0
        return image, prior

    samples = [(1001 + i, *frame(i)) for i in range(10)]
    loose = gather(samples, CleanPlateSettings(track_share=0.0), moving=True)
    plate = gather(samples, moving=True)
    assert isinstance(loose, CleanPlate) and isinstance(plate, CleanPlate) and plate.tracking is not None
    image, prior = frame(5)
    body = (slice(35, 95), slice(115, 135))  # the person in frame 1006's view
    for gathered, cleared in ((loose, True), (plate, False)):
        known = background_match(image, gathered, prior * 0.0, frame=1006).known
        assert known is not None and bool(known[body].mean() > 0.5) is cleared  # the failure track_share prevents
    view = plate.view(1006, image, np.ones((height, width), bool))
    assert view is not None and view[1].mean() > 0.5  # the background around him is still gathered


def test_a_person_the_frame_cuts_and_the_prior_barely_sees_is_not_the_plate() -> None:
    """The camera pans slowly away from a person who stands still at the frame's left edge; on
    the samples that cut him the prior barely sees him (0.05, under the 0.1 that makes a subject).
    Without ``track_edge`` those samples outnumber the ones that see him whole and the plate would
    clear him; near the edges the world moves across, that faint prior is a subject too."""
    height, width = 120, 200
    shown = panned_over_a_still_person(np.random.default_rng(7), height, width, step=4, person=slice(10, 40))

    def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
        image = shown(i)
        prior = np.zeros((height, width), np.float32)
        left, right = max(0, 10 - 4 * i), max(0, 40 - 4 * i)
        prior[30:100, left:right] = 1.0 if 10 - 4 * i >= 0 else 0.05  # whole on 1001-1003, then cut
        return image, prior

    samples = [(1001 + i, *frame(i)) for i in range(10)]
    plain = gather(samples, CleanPlateSettings(track_edge=0.0), moving=True)
    plate = gather(samples, CleanPlateSettings(track_edge=0.1), moving=True)
    assert isinstance(plain, CleanPlate) and isinstance(plate, CleanPlate) and plate.tracking is not None
    image, prior = frame(0)
    body = (slice(35, 95), slice(12, 38))  # the person in frame 1001's view
    for gathered, cleared in ((plain, True), (plate, False)):
        known = background_match(image, gathered, prior * 0.0, frame=1001).known
        assert known is not None and bool(known[body].mean() > 0.5) is cleared  # the failure track_edge prevents
    # The background past him, top and bottom included (a pan's top and bottom edges do not
    # move across the world), is still gathered.
    view = plate.view(1001, image, np.ones((height, width), bool))
    assert view is not None and view[1][:, 60:].mean() > 0.9


def test_settings_are_read_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    background = textured_background(rng)
    samples = [(1001 + i, *frame_with_subject(background, 10 + 12 * i, rng)) for i in range(4)]
    monkeypatch.setattr(cleanplate, "SETTINGS", CleanPlateSettings(min_seen=5))
    reason = gather(samples)
    assert isinstance(reason, str) and "at least 5" in reason
