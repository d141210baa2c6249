"""Tests of the procedural composite generator used to train the matting model."""

from __future__ import annotations

import numpy as np
import pytest

from vfxmatte.errors import UsageError
from vfxmatte.train.synthetic import (
    Composite,
    CompositeDataset,
    _splat,
    contact_sheet,
    make_composite,
)

SIZE = 96


@pytest.fixture(scope="module")
def singles() -> list[Composite]:
    ds = CompositeDataset(10, SIZE, seed=11)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def multis() -> list[Composite]:
    ds = CompositeDataset(10, SIZE, seed=5, multi_object_fraction=1.0)
    return [ds[i] for i in range(len(ds))]


def _arrays(c: Composite) -> list[np.ndarray]:
    return [c.image, c.alpha, c.foreground, c.background] + [o.alpha for o in c.objects]


def _centroid(alpha: np.ndarray) -> tuple[float, float]:
    yy, xx = np.indices(alpha.shape)
    total = float(alpha.sum())
    return float((alpha * xx).sum()) / total, float((alpha * yy).sum()) / total


def test_same_seed_and_index_give_identical_composites() -> None:
    a = CompositeDataset(6, SIZE, seed=3, multi_object_fraction=0.5)
    b = CompositeDataset(6, SIZE, seed=3, multi_object_fraction=0.5)
    for i in (4, 1, 4):  # order of access must not matter
        ca, cb = a[i], b[i]
        for x, y in zip(_arrays(ca), _arrays(cb), strict=True):
            np.testing.assert_array_equal(x, y)
        assert ca.caption == cb.caption
        assert [o.caption for o in ca.objects] == [o.caption for o in cb.objects]
        assert ca.noise_bound == cb.noise_bound


def test_different_index_or_seed_gives_a_different_composite() -> None:
    ds = CompositeDataset(3, SIZE, seed=3)
    other = CompositeDataset(3, SIZE, seed=4)
    assert not np.array_equal(ds[0].image, ds[1].image)
    assert not np.array_equal(ds[0].alpha, ds[1].alpha)
    assert not np.array_equal(ds[0].image, other[0].image)


def test_make_composite_is_reproducible_from_the_generator() -> None:
    a = make_composite(np.random.default_rng(7), 64)
    b = make_composite(np.random.default_rng(7), 64)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.alpha, b.alpha)


@pytest.mark.parametrize("size, shape", [(64, (64, 64)), ((48, 80), (48, 80))])
def test_dtypes_shapes_and_ranges(size: int | tuple[int, int], shape: tuple[int, int]) -> None:
    for seed in range(4):
        c = make_composite(np.random.default_rng(seed), size, multi_object=seed % 2 == 1)
        assert c.image.shape == c.foreground.shape == c.background.shape == shape + (3,)
        assert c.alpha.shape == shape
        for arr in _arrays(c):
            assert arr.dtype == np.float32
            assert np.isfinite(arr).all()
            assert arr.min() >= 0.0 and arr.max() <= 1.0
        assert c.alpha.max() > 0.5  # the subject is there
        assert c.alpha.mean() < 0.95  # and so is some background
        assert c.caption


def test_composite_equation_holds_up_to_bounded_noise(singles: list[Composite], multis: list[Composite]) -> None:
    saw_noise = False
    for c in singles + multis:
        a = c.alpha[:, :, None]
        clean = c.foreground * a + c.background * (1.0 - a)
        err = np.abs(c.image - clean)
        assert 0.0 <= c.noise_bound <= 0.08  # mild sensor noise only
        assert err.max() <= c.noise_bound + 1e-5
        saw_noise |= bool(err.max() > 1e-3)
    assert saw_noise


def test_alpha_has_fractional_values(singles: list[Composite]) -> None:
    alphas = np.stack([c.alpha for c in singles])
    partial = (alphas > 0.05) & (alphas < 0.95)
    assert partial.mean() > 0.01  # edges, strands, veils: well over an anti-aliased outline
    # most samples carry real soft structure, not just a one-pixel anti-aliased edge
    per_sample = partial.reshape(len(singles), -1).sum(axis=1) / (alphas > 0.05).reshape(len(singles), -1).sum(axis=1)
    assert np.mean(per_sample > 0.05) >= 0.5


def test_single_subject_scene_has_one_object_that_is_the_subject(singles: list[Composite]) -> None:
    for c in singles:
        assert len(c.objects) == 1
        obj = c.objects[0]
        np.testing.assert_array_equal(obj.alpha, c.alpha)
        assert obj.caption == c.caption
        assert c.caption in obj.captions
        x0, y0, x1, y1 = obj.bbox
        inside = np.zeros_like(c.alpha, bool)
        inside[y0:y1, x0:x1] = True
        assert not (c.alpha[~inside] > 0.01).any()
        assert x1 > x0 and y1 > y0


def test_subject_is_large_and_fairly_central(singles: list[Composite]) -> None:
    for c in singles:
        cx, cy = _centroid(c.alpha)
        assert 0.15 * SIZE < cx < 0.85 * SIZE
        assert 0.15 * SIZE < cy < 0.9 * SIZE
    coverage = [float((c.alpha > 0.5).mean()) for c in singles]
    assert 0.1 < float(np.median(coverage)) < 0.75


def test_multi_object_scenes(multis: list[Composite]) -> None:
    for c in multis:
        assert 2 <= len(c.objects) <= 4
        captions = [o.caption for o in c.objects]
        assert len(set(captions)) == len(captions)
        names = [o.name for o in c.objects]
        assert len(set(names)) == len(names)
        # every referring expression picks out one object only
        all_caps = [cap for o in c.objects for cap in o.captions]
        assert len(set(all_caps)) == len(all_caps)
        for o in c.objects:
            assert o.alpha.max() > 0.9 and (o.alpha > 0.5).sum() > 20
            assert o.caption in o.captions
        subjects = [o for o in c.objects if o.caption == c.caption]
        assert len(subjects) == 1
        np.testing.assert_array_equal(subjects[0].alpha, c.alpha)
        # the other objects are not in the subject's matte
        for o in c.objects:
            if o is not subjects[0]:
                assert float((o.alpha * c.alpha).sum()) < 1.0


def test_positional_captions_match_centroids(multis: list[Composite]) -> None:
    checked = 0
    for c in multis:
        cents = {o.name: _centroid(o.alpha) for o in c.objects}
        xs = [p[0] for p in cents.values()]
        ys = [p[1] for p in cents.values()]
        for o in c.objects:
            x, y = cents[o.name]
            for cap in o.captions:
                if cap in ("the object on the left", "the leftmost object"):
                    assert x == min(xs)
                    checked += 1
                elif cap in ("the object on the right", "the rightmost object"):
                    assert x == max(xs)
                    checked += 1
                elif cap in ("the object at the top", "the topmost object"):
                    assert y == min(ys)
                    checked += 1
                elif cap in ("the object at the bottom", "the bottom object"):
                    assert y == max(ys)
                    checked += 1
                elif cap.startswith("the object at the ") and " " in cap[len("the object at the "):]:
                    vert, horiz = cap[len("the object at the "):].split()
                    above = sum(1 for yy in ys if yy < y)
                    left_of = sum(1 for xx in xs if xx < x)
                    assert (above < 2) == (vert == "top")
                    assert (left_of < 2) == (horiz == "left")
                    checked += 1
    assert checked >= len(multis)


def test_colour_captions_name_the_object_colour(multis: list[Composite]) -> None:
    reference = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0)}
    checked = 0
    for c in multis:
        subject = next(o for o in c.objects if o.caption == c.caption)
        colour = subject.name.split()[0]
        if colour not in reference:
            continue
        mask = c.alpha > 0.99
        mean = c.foreground[mask].mean(axis=0)
        assert int(np.argmax(mean)) == int(np.argmax(reference[colour])) or colour == "yellow"
        if colour == "yellow":
            assert mean[2] < min(mean[0], mean[1])
        checked += 1
    assert checked >= 1


def test_multi_object_fraction_controls_scene_kind() -> None:
    assert all(len(CompositeDataset(6, 48, 1, 0.0)[i].objects) == 1 for i in range(6))
    assert all(len(CompositeDataset(6, 48, 1, 1.0)[i].objects) >= 2 for i in range(6))


def test_dataset_indexing() -> None:
    ds = CompositeDataset(3, 48, seed=2)
    assert len(ds) == 3
    np.testing.assert_array_equal(ds[-1].image, ds[2].image)
    with pytest.raises(IndexError):
        ds[3]
    assert len(list(ds)) == 3
    with pytest.raises(UsageError):
        CompositeDataset(3, 48, multi_object_fraction=1.5)


def test_bad_size_is_refused() -> None:
    with pytest.raises(UsageError):
        make_composite(np.random.default_rng(0), 4)


def test_splat_gives_exact_partial_coverage_of_a_thin_line() -> None:
    # a horizontal strand 0.5 px wide, 40 px long, a third of the way between pixel rows
    xs = np.arange(10.0, 50.0, 0.5, dtype=np.float32)
    ys = np.full_like(xs, 20.3)
    wts = np.full_like(xs, 0.5 * 0.5)
    col = np.tile(np.array([0.9, 0.5, 0.1], np.float32), (len(xs), 1))
    dens, mean = _splat(64, 64, xs, ys, wts, col)
    assert dens.sum() == pytest.approx(0.5 * 40, rel=1e-4)
    np.testing.assert_allclose(dens[20, 20:40], 0.35, atol=1e-5)
    np.testing.assert_allclose(dens[21, 20:40], 0.15, atol=1e-5)
    assert dens.max() < 1.0
    np.testing.assert_allclose(mean[dens > 0], np.broadcast_to(col[0], (int((dens > 0).sum()), 3)), atol=1e-5)
    # samples off the frame deposit nothing inside it
    d2, _ = _splat(16, 16, np.array([-3.0, 30.0], np.float32), np.array([5.0, 5.0], np.float32),
                   np.ones(2, np.float32), np.ones((2, 3), np.float32))
    assert d2.sum() == 0.0


def test_contact_sheet_layout() -> None:
    comps = [make_composite(np.random.default_rng(i), 40) for i in range(2)]
    sheet = contact_sheet(comps)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (2 * (40 + 4) + 4, 3 * (40 + 4) + 4, 3)
    # middle tile of the second row is that composite's alpha
    tile = sheet[4 + 44: 4 + 44 + 40, 4 + 44: 4 + 44 + 40, 0]
    np.testing.assert_array_equal(tile, np.round(comps[1].alpha * 255).astype(np.uint8))
    first = sheet[4:44, 4:44]
    np.testing.assert_array_equal(first, np.round(comps[0].image * 255).astype(np.uint8))
