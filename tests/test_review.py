"""The uncertainty review: scores, page structure, thumbnails, cache, CLI, and the page in Chromium.

Matte EXRs come from the real writer (``write_matte``) with designed mattes, so the flagged
frame and the uncertain region are known, and from a real ``vfxmatte matte`` run with the
tiny model for the CLI test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
from chromium import Page, find_chromium

from vfxmatte.cli import main
from vfxmatte.config import MatteParams
from vfxmatte.errors import InputError
from vfxmatte.io import color
from vfxmatte.io.frames import Plate, Window
from vfxmatte.model.core import load_model
from vfxmatte.pipeline import Matte, edge_band_uncertainty, write_matte
from vfxmatte.review import (
    ReviewSettings,
    build_review,
    default_review_dir,
    heat_display,
    uncertain_regions,
)

FRAMES = (1001, 1002, 1003, 1005, 1006)  # 1004 is a gap
FLAGGED = 1003
#: The share of the frame the clean plate calls subject and the matte leaves out (header
#: vfxmatte:clean_plate_missed): 1002 under the 0.1 % the review names, 1005 over it.
MISSED = {1002: 0.0005, 1005: 0.02}
WIDTH, HEIGHT = 160, 96
FOREGROUND = (0.18, 0.18, 0.18)  # linear grey: sRGB-encoded 0.461 → 118
SMALL = ReviewSettings(thumb_size=96, preview_size=160, crop_size=64)


def write_shot(directory: Path, model_dir: Path, frames: tuple[int, ...] = FRAMES) -> Path:
    """Matte EXRs through ``write_matte``: a soft disc whose edge is uncertain, far more on FLAGGED.

    The flagged frame also has a hot spot in the top-left corner: its most uncertain region.
    """
    model = load_model(model_dir)
    params = MatteParams(steps=2, seeds=2, lr_size=64)
    params_json = params.header_json(model.describe())
    directory.mkdir(parents=True, exist_ok=True)
    ys, xs = np.indices((HEIGHT, WIDTH), dtype=np.float32)
    for frame in frames:
        radius = np.hypot(xs - WIDTH * 0.6, ys - HEIGHT / 2)
        alpha = np.clip((30.0 - radius) / 6.0 + 0.5, 0.0, 1.0).astype(np.float32)
        edge = (alpha > 0.0) & (alpha < 1.0)
        uncertainty = np.where(edge, 0.02 + 0.002 * (frame % 7), 0.0).astype(np.float32)
        if frame == FLAGGED:
            uncertainty = uncertainty * 5.0
            uncertainty[4:28, 4:28] = 0.3
        plate = Plate(
            rgb=np.zeros((HEIGHT, WIDTH, 3), np.float32),
            data_window=Window(4, 2, WIDTH, HEIGHT),
            display_window=Window(0, 0, WIDTH + 8, HEIGHT + 4),
            path=str(directory / f"plate.{frame}.exr"),
            frame=frame,
            colorspace=color.LINEAR_REC709,
        )
        matte = Matte(
            alpha=alpha,
            uncertainty=uncertainty,
            foreground=np.broadcast_to(np.float32(FOREGROUND), (HEIGHT, WIDTH, 3)).copy(),
            colorspace=color.LINEAR_REC709,
            score=edge_band_uncertainty(alpha, uncertainty),
            clean_plate_missed=MISSED.get(frame, 0.0),
        )
        write_matte(str(directory / f"matte.{frame:04d}.exr"), plate, matte, model, params, params_json)
    return directory / "matte.####.exr"


def header_scores(directory: Path) -> dict[int, float]:
    scores = {}
    for path in sorted(directory.glob("matte.*.exr")):
        inp = oiio.ImageInput.open(str(path))
        assert inp is not None, oiio.geterror()
        scores[int(path.name.split(".")[1])] = float(inp.spec().getattribute("vfxmatte:uncertainty"))
        inp.close()
    return scores


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return write_shot(tmp_path_factory.mktemp("shot") / "out", tiny_model_dir)


@pytest.fixture(scope="module")
def review(shot: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_review(shot, tmp_path_factory.mktemp("review"), settings=SMALL)


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# -- scores ---------------------------------------------------------------------------


def test_scores_agree_with_headers_and_flag_the_outlier(review: Any, shot: Path) -> None:
    headers = header_scores(shot.parent)
    assert sorted(headers) == list(FRAMES)
    assert {f.frame: f.score for f in review.frames} == pytest.approx(headers, rel=1e-6)
    median = float(np.median(list(headers.values())))
    assert review.threshold == pytest.approx(1.5 * median)
    assert "median" in review.threshold_rule
    assert review.flagged == [FLAGGED]
    assert review.missing == [1004]
    assert review.errors == []

    record = json.loads(review.scores_json.read_text())
    assert {f["frame"]: f["score"] for f in record["frames"]} == pytest.approx(headers, rel=1e-6)
    assert record["flagged"] == [FLAGGED] and record["threshold"] == pytest.approx(review.threshold)
    rows = list(csv.DictReader(io.StringIO(review.scores_csv.read_text())))
    assert [int(r["frame"]) for r in rows] == list(FRAMES)
    assert {int(r["frame"]): float(r["uncertainty"]) for r in rows} == pytest.approx(headers, rel=1e-6)
    assert [int(r["frame"]) for r in rows if r["flagged"] == "1"] == [FLAGGED]
    missed = {int(r["frame"]): float(r["clean_plate_missed"]) for r in rows}
    assert missed == pytest.approx({f: MISSED.get(f, 0.0) for f in FRAMES}, rel=1e-6)
    assert review.missed == record["missed"] == [1005]


def test_threshold_option(shot: Path, tmp_path: Path) -> None:
    headers = header_scores(shot.parent)
    lowest = min(headers.values())
    result = build_review(shot, tmp_path, threshold=lowest, settings=SMALL)
    assert result.flagged == sorted(f for f, s in headers.items() if s > lowest)
    assert result.threshold == lowest and "fixed" in result.threshold_rule
    assert build_review(shot, tmp_path, threshold_factor=100.0, settings=SMALL).flagged == []


# -- the page -------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_structure(review: Any) -> None:
    text = review.index_html.read_text()
    assert review.index_html.parent == review.directory
    parser = _Collector()
    parser.feed(text)
    cards = [a for t, a in parser.tags if t == "figure"]
    assert [int(str(a["data-frame"])) for a in cards] == [f for f in FRAMES]
    assert [a["id"] for a in cards if "flagged" in str(a["class"])] == [f"frame-{FLAGGED}"]
    rows = [a for t, a in parser.tags if t == "div" and "flag-row" in str(a.get("class"))]
    assert [a["data-frame"] for a in rows] == [str(FLAGGED)]
    missed = [a for t, a in parser.tags if t == "div" and "miss-row" in str(a.get("class"))]
    assert [a["data-frame"] for a in missed] == ["1005"]  # 1002's share is under the 0.1 % named
    assert "2.00% of the frame" in text

    images = [a for t, a in parser.tags if t == "img"]
    thumbs = [a for a in images if a.get("id") is None and a.get("src")]
    assert thumbs and all(a.get("loading") == "lazy" for a in thumbs if a["src"] != "plot.png")
    for a in images:
        if a.get("src"):
            assert (review.directory / str(a["src"])).is_file(), a["src"]
    # No network: every reference is relative to the page's folder, no script or style from elsewhere.
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert not [a for t, a in parser.tags if t in ("script", "link") and (a.get("src") or a.get("href"))]
    assert "1004" in text  # the gap is reported

    start = text.index('<script id="review-data" type="application/json">') + len(
        '<script id="review-data" type="application/json">'
    )
    data = json.loads(text[start : text.index("</script>", start)])
    entry = next(f for f in data["frames"] if f["frame"] == FLAGGED)
    assert entry["flagged"] and len(entry["crops"]) >= 1
    for key in ("comp", "alpha", "heat", "comp_large", "alpha_large", "heat_large"):
        assert (review.directory / entry["images"][key]).is_file()
    assert 0.0 < data["axes"]["left"] < data["axes"]["right"] < 1.0

    plot = read_png(review.plot)
    assert plot.shape[1] > 600 and (np.abs(plot.astype(int) - (214, 39, 40)).sum(axis=2) < 60).any()
    sheet = read_png(review.contact_sheet)
    assert sheet.shape[0] > SMALL.thumb_size // 2 and sheet.shape[1] > SMALL.thumb_size
    assert (np.abs(sheet.astype(int) - (214, 39, 40)).sum(axis=2) < 30).sum() > 50  # the flagged outline


def test_default_location_is_beside_the_outputs(shot: Path) -> None:
    assert default_review_dir(shot) == shot.parent / "review"
    assert default_review_dir(shot.parent) == shot.parent / "review"


def test_thumbnails_are_display_referred_and_heat_uses_the_colormap(review: Any) -> None:
    frame = next(f for f in review.frames if f.frame == 1001)
    comp = read_png(review.directory / frame.images["comp_large"])
    # Disc centre: linear 0.18 grey encoded for an sRGB display by OpenColorIO.
    expected = color.to_network(np.full((1, 1, 3), 0.18, np.float32), color.LINEAR_REC709)[0, 0] * 255
    assert expected == pytest.approx([118.0] * 3, abs=1.0)
    assert comp[HEIGHT // 2, int(WIDTH * 0.6)] == pytest.approx(expected, abs=3)
    # Outside the matte: the checkerboard's two greys.
    corner = comp[:20, :20].reshape(-1, 3)
    assert len({tuple(p) for p in corner if p[0] == p[1] == p[2]}) >= 2
    heat = read_png(review.directory / frame.images["heat_large"])
    assert heat[HEIGHT // 2, int(WIDTH * 0.6)] == pytest.approx(heat_display(np.zeros(1), 0.25)[0], abs=3)
    lut = heat_display(np.linspace(0, 0.25, 5), 0.25).astype(int)
    assert lut[0].sum() < 20 and lut[-1].sum() > 500  # inferno: black → pale yellow


def test_crops_find_the_most_uncertain_region(review: Any) -> None:
    frame = next(f for f in review.frames if f.frame == FLAGGED)
    top = frame.crops[0]
    # The hot square at x, y 4..28 lies inside the first crop.
    assert top["x"] <= 4 and top["y"] <= 4 and top["x"] + top["size"] >= 28 and top["y"] + top["size"] >= 28
    assert [c["mean"] for c in frame.crops] == sorted((c["mean"] for c in frame.crops), reverse=True)
    image = read_png(review.directory / top["image"])
    assert image.shape[1] > 2 * image.shape[0]  # comp | alpha | heat side by side

    hot = np.zeros((50, 80), np.float32)
    hot[30:40, 60:70] = 1.0
    x, y, _ = uncertain_regions(hot, 10, 3)[0]
    assert (x, y) == (60, 30)
    assert uncertain_regions(np.zeros((20, 20), np.float32), 8, 3) == []


# -- the cache ------------------------------------------------------------------------


def test_cache_reuses_unchanged_frames(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = write_shot(tmp_path / "out", tiny_model_dir, frames=(1, 2, 3))
    out = tmp_path / "review"
    first = build_review(pattern, out, settings=SMALL)
    assert (first.generated, first.cached) == (3, 0)
    thumb = out / first.frames[0].images["comp"]
    stamp, sheet_stamp = thumb.stat().st_mtime_ns, first.contact_sheet.stat().st_mtime_ns

    second = build_review(pattern, out, settings=SMALL)
    assert (second.generated, second.cached) == (0, 3)
    assert thumb.stat().st_mtime_ns == stamp
    assert second.contact_sheet.stat().st_mtime_ns == sheet_stamp  # nothing changed: not redrawn
    assert [f.score for f in second.frames] == [f.score for f in first.frames]

    # Re-matting one frame changes its size/mtime: only it is redone.
    time.sleep(0.01)
    write_shot(tmp_path / "out", tiny_model_dir, frames=(2,))
    third = build_review(pattern, out, settings=SMALL)
    assert (third.generated, third.cached) == (1, 2)
    assert third.contact_sheet.stat().st_mtime_ns != sheet_stamp

    # A missing cached image, other settings, a removed frame.
    (out / third.frames[2].images["heat"]).unlink()
    assert build_review(pattern, out, settings=SMALL).generated == 1
    assert build_review(pattern, out, settings=ReviewSettings(thumb_size=64, preview_size=128)).generated == 3
    gone = [out / p for p in third.frames[0].images.values()]
    (tmp_path / "out" / "matte.0001.exr").unlink()
    last = build_review(pattern, out, settings=ReviewSettings(thumb_size=64, preview_size=128))
    assert [f.frame for f in last.frames] == [2, 3] and last.cached == 2
    assert not any(p.exists() for p in gone)
    manifest = json.loads((out / "thumbs" / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["2", "3"]


def test_unreadable_frames_are_reported_not_fatal(tmp_path: Path, tiny_model_dir: Path) -> None:
    pattern = write_shot(tmp_path / "out", tiny_model_dir, frames=(1, 2))
    plain = oiio.ImageBuf(np.zeros((8, 8, 4), np.float32))  # an EXR vfxmatte did not write
    assert plain.write(str(tmp_path / "out" / "matte.0003.exr"))
    result = build_review(pattern, tmp_path / "review", settings=SMALL)
    assert [f.frame for f in result.frames] == [1, 2]
    assert (
        len(result.errors) == 1 and "matte.0003.exr" in result.errors[0] and "vfxmatte:uncertainty" in result.errors[0]
    )
    with pytest.raises(InputError, match="no frames match"):
        build_review(tmp_path / "none.####.exr", tmp_path / "r2")


# -- the flow -------------------------------------------------------------------------


def test_the_flow_builds_the_page_and_names_it_in_its_artifacts(
    shot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matte_shot's final record: the page built with the flow's own threshold, named in both artifacts."""
    from flows.matte_shot import markdown_summary, summarise
    from flows.params import MatteShotRequest
    from flows.settings import FlowSettings

    root = shot.parent.parent
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    request = MatteShotRequest(input=str(root / "plate.####.exr"), output=str(shot))
    records: list[dict[str, Any]] = [
        {"frame": f, "status": "written", "path": str(shot.parent / f"matte.{f:04d}.exr"), "seconds": 0.1}
        for f in FRAMES
    ]
    for record in records:
        record["error"] = None
    result = summarise(request, FlowSettings(roots=(str(root),)), str(shot), records)
    page = shot.parent / "review" / "index.html"
    assert result["review_page"] == str(page) and page.is_file(), result["review_note"]
    assert result["flagged"] == [FLAGGED]
    record = json.loads((page.parent / "scores.json").read_text())  # the page flags what the flow flagged
    assert record["flagged"] == result["flagged"]
    assert record["threshold"] == pytest.approx(result["flag_threshold"])
    assert f"Review page: `{page}`" in markdown_summary(result)  # the vfxmatte-summary artifact


# -- the command line -----------------------------------------------------------------


def cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow  # mattes three frames with the tiny model (pymatting compiles on first use)
def test_cli_reviews_a_real_matte_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    from test_cli import make_sequence

    plates = make_sequence(tmp_path / "in", frames=(1001, 1002, 1003))
    fast = ["--steps", "2", "--seeds", "2", "--lr-size", "64", "--quiet", "--model", tiny_model_dir]
    code, out, err = cli("matte", plates, "-o", tmp_path / "out" / "plate.####.exr", "--json", *fast)
    assert code == 0, err
    matted = json.loads(out)["uncertainty"]

    code, out, err = cli("review", tmp_path / "out" / "plate.####.exr", "--json", "--thumb-size", "64")
    assert code == 0, err
    record = json.loads(out)
    assert record["index_html"] == str(tmp_path / "out" / "review" / "index.html")
    assert {str(f["frame"]): f["score"] for f in record["frames"]} == pytest.approx(matted, rel=1e-3)
    assert (tmp_path / "out" / "review" / "contact_sheet.png").is_file()

    code, out, err = cli("review", tmp_path / "out", "-o", tmp_path / "r", "--threshold", "0", "--quiet")
    assert code == 0, err
    assert "3 flagged" in out and "3 cached" not in out
    code, _, err = cli("review", tmp_path / "nothing.####.exr", "--quiet")
    assert code == 2 and "no frames match" in err and len(err.strip().splitlines()) == 1


# -- in a browser ---------------------------------------------------------------------


def _differs(region: np.ndarray) -> bool:
    """True when a screenshot region shows a picture, not a flat fill."""
    return bool(region.reshape(-1, 3).std(axis=0).max() > 10)


@pytest.mark.slow
def test_page_in_headless_chromium(review: Any) -> None:
    pytest.importorskip("websockets", reason="the websockets client drives Chromium's DevTools protocol")
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not installed (Debian package 'chromium'; run scripts/install_test_deps.sh as root)")
    with Page(executable) as page:
        page.goto(review.index_html.resolve().as_uri())
        loaded = page.wait_images()
        assert loaded and all(img["width"] > 0 for img in loaded), loaded
        shot = page.screenshot()

        plot = page.rect("#plot")
        assert plot["width"] > 400 and plot["height"] > 100
        x, y, w, h = (int(plot[k]) for k in ("x", "y", "width", "height"))
        region = shot[y : y + h, x : x + w].astype(int)
        assert _differs(region)
        assert (np.abs(region - (214, 39, 40)).sum(axis=2) < 60).sum() > 20  # threshold line / flagged marker

        thumb = page.rect("#frame-1001 img")
        x, y, w, h = (int(thumb[k]) for k in ("x", "y", "width", "height"))
        if y + h > shot.shape[0]:  # below the fold: scroll there and look again
            page.evaluate("document.querySelector('#frame-1001').scrollIntoView()")
            page.wait_images("#frame-1001 img")
            shot, thumb = page.screenshot(), page.rect("#frame-1001 img")
            x, y, w, h = (int(thumb[k]) for k in ("x", "y", "width", "height"))
        assert w > 50 and _differs(shot[y : y + h, x : x + w])

        assert not page.evaluate("document.getElementById('viewer').classList.contains('open')")
        page.click(f".flag-row[data-frame='{FLAGGED}']")
        assert page.evaluate("document.getElementById('viewer').classList.contains('open')")
        assert str(FLAGGED) in page.evaluate("document.getElementById('viewer-title').textContent")
        assert page.evaluate("location.hash") == f"#{FLAGGED}"
        large = page.wait_images("#large")
        assert large[0]["src"].endswith(f"f{FLAGGED}.comp_large.jpg") and large[0]["width"] == SMALL.preview_size
        r = page.rect("#large")
        assert r["width"] > 400  # shown large, not at thumbnail size
        page.click("#viewer .kind[data-kind='heat']")
        assert page.wait_images("#large")[0]["src"].endswith(f"f{FLAGGED}.heat_large.jpg")
        shot = page.screenshot()
        r = page.rect("#large")
        x, y, w, h = (int(r[k]) for k in ("x", "y", "width", "height"))
        region = shot[y : y + h, x : x + w].astype(int)
        assert _differs(region)
        assert (region.sum(axis=2) > 500).sum() > 200  # the hot (pale yellow) uncertain square, scaled up

        page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
        assert not page.evaluate("document.getElementById('viewer').classList.contains('open')")
        # A frame the clean plate says misses a subject opens in the viewer too.
        page.evaluate("document.querySelector('.miss-row').scrollIntoView()")
        page.click(".miss-row[data-frame='1005']")
        assert page.evaluate("document.getElementById('viewer').classList.contains('open')")
        assert "1005" in page.evaluate("document.getElementById('viewer-title').textContent")
        page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")

        assert page.errors() == []
        assert all(url.startswith(("file:", "data:", "about:")) for url in page.requested_urls())
