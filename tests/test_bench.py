"""`vfxmatte bench`: dataset layouts, a run with the tiny model, the table row and the CLI glue."""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from vfxmatte.bench import (
    BenchItem,
    BenchResult,
    add_bench_parser,
    bench_table_header,
    cmd_bench,
    find_dataset,
    run_bench,
    scan_dataset,
    select_images,
)
from vfxmatte.config import MatteParams
from vfxmatte.errors import InputError, UsageError

FAST = MatteParams(steps=2, seeds=2, lr_size=64, hr="off")


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[:, :, None])
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], "uint8")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec) and out.write_image(pixels) and out.close()


def test_alphamatting_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "input", "GT01.png", "GT02.png", "GT03.png")
    _touch(tmp_path / "gt", "GT01.png", "GT02.png")
    _touch(tmp_path / "trimap", "GT01.png", "GT02.png")
    _touch(tmp_path / "trimap2", "GT01.png", "GT02.png")
    scan = scan_dataset(tmp_path)
    assert [i.name for i in scan.items] == ["GT01", "GT02"]
    assert scan.items[0].image == str(tmp_path / "input" / "GT01.png")
    assert scan.items[0].alpha == str(tmp_path / "gt" / "GT01.png")
    assert scan.items[1].trimap == str(tmp_path / "trimap" / "GT02.png")  # Trimap1, not trimap2
    assert scan.layouts == ["{input, gt, trimap}"]
    assert scan.unmatched == ["input/GT03.png"]


def test_p3m_500_layout_skips_the_training_split(tmp_path: Path) -> None:
    validation = tmp_path / "P3M-10k" / "validation"
    _touch(validation / "P3M-500-P" / "blurred_image", "p_1.jpg", "p_2.jpg")
    _touch(validation / "P3M-500-P" / "mask", "p_1.png", "p_2.png")
    _touch(validation / "P3M-500-P" / "trimap", "p_1.png", "p_2.png")
    _touch(validation / "P3M-500-NP" / "original_image", "n_1.jpg")
    _touch(validation / "P3M-500-NP" / "mask", "n_1.png")
    _touch(validation / "P3M-500-NP" / "trimap", "n_1.png")
    _touch(tmp_path / "P3M-10k" / "train" / "blurred_image", "t_1.jpg")
    _touch(tmp_path / "P3M-10k" / "train" / "mask", "t_1.png")
    items = find_dataset(validation)
    assert [i.name for i in items] == ["P3M-500-NP/n_1", "P3M-500-P/p_1", "P3M-500-P/p_2"]
    assert items[0].image.endswith("P3M-500-NP/original_image/n_1.jpg")
    assert items[1].alpha.endswith("P3M-500-P/mask/p_1.png")
    assert all(i.trimap is not None for i in items)
    single = find_dataset(validation / "P3M-500-P")
    assert [i.name for i in single] == ["p_1", "p_2"]
    with pytest.raises(InputError, match="no dataset layout"):
        find_dataset(tmp_path / "P3M-10k")  # only train/ and validation/ (one level deeper): never train


def test_ppm_100_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "image", "a.jpg", "b.jpg")
    _touch(tmp_path / "matte", "a.png", "b.png", ".DS_Store")
    scan = scan_dataset(tmp_path)
    assert [(Path(i.image).name, Path(i.alpha).name, i.trimap) for i in scan.items] == [
        ("a.jpg", "a.png", None),
        ("b.jpg", "b.png", None),
    ]
    assert not scan.has_trimaps


def test_no_layout_is_a_clear_error(tmp_path: Path) -> None:
    _touch(tmp_path / "photos", "a.jpg")
    with pytest.raises(InputError) as caught:
        find_dataset(tmp_path)
    assert str(tmp_path) in str(caught.value) and "alpha folder" in str(caught.value)
    with pytest.raises(InputError, match="does not exist"):
        find_dataset(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 40x56 image / alpha / trimap triples."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        alpha = np.zeros((40, 56), np.uint8)
        alpha[8:32, 12:44] = 255
        image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        image[alpha > 0] = (220, 60, 40)
        trimap = np.where(alpha > 0, 255, 0).astype(np.uint8)
        trimap[6:34, 10:14] = 128
        _png(root / "image" / f"{name}.png", image)
        _png(root / "alpha" / f"{name}.png", alpha)
        _png(root / "trimap" / f"{name}.png", trimap)
    return root


@pytest.fixture(scope="module")
def bench_result(tiny_dataset: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BenchResult:
    save = tmp_path_factory.mktemp("saved")
    seen: list[str] = []
    result = run_bench(
        tiny_dataset, tiny_model_dir, FAST, device="cpu", trimaps=True, on_item=lambda r: seen.append(r.item.name),
        save=save,
    )
    assert seen == ["one", "two"]
    assert sorted(p.name for p in save.iterdir()) == ["one.png", "two.png"]
    return result


def test_run_bench_gives_finite_metrics_and_timings(bench_result: BenchResult) -> None:
    assert [r.item.name for r in bench_result.items] == ["one", "two"]
    for r in bench_result.items:
        assert (r.width, r.height) == (56, 40)
        assert all(math.isfinite(v) and v >= 0 for v in r.whole.as_dict().values())
        assert r.unknown is not None and all(math.isfinite(v) for v in r.unknown.as_dict().values())
        assert r.seconds > 0
    assert bench_result.seconds_per_image == bench_result.items[1].seconds
    assert bench_result.warmup_seconds == bench_result.items[0].seconds
    assert bench_result.peak_rss_gib is not None and 0 < bench_result.peak_rss_gib < 64
    assert bench_result.peak_cuda_gib is None and bench_result.device == "cpu"
    record = json.loads(json.dumps(bench_result.as_dict()))
    assert record["trimap_guided"] is False and record["count"] == 2 and record["params"]["steps"] == 2
    assert record["model"].startswith("tiny-test sha256:")


def test_table_row_matches_the_header(bench_result: BenchResult) -> None:
    header = bench_table_header().splitlines()[0]
    assert header == "| model | MSE | MAD | SAD | Conn | Grad | s/img | peak GiB |"
    row = bench_result.table_row()
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 8 and cells[0] == "tiny-test"
    mean = bench_result.mean_whole
    assert cells[1:4] == [f"{mean.mse:.2f}", f"{mean.mad:.2f}", f"{mean.sad:.2f}"]
    assert bench_result.table_row("unknown") != row
    assert "no trimap guidance" in bench_result.to_markdown()


def test_trimaps_need_a_trimap_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    _png(tmp_path / "image" / "a.png", np.zeros((8, 8, 3), np.uint8))
    _png(tmp_path / "alpha" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(UsageError, match="--trimaps needs a trimap folder"):
        run_bench(tmp_path, tiny_model_dir, FAST, trimaps=True)


def test_cmd_bench_json(tiny_dataset: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["bench", str(tiny_dataset), "--model", str(tiny_model_dir), "--steps", "2", "--seeds", "2",
         "--lr-size", "64", "--device", "cpu", "--limit", "1", "--json"]
    )
    assert cmd_bench(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["count"] == 1 and record["params"]["lr_size"] == 64
    assert math.isfinite(record["mean"]["whole"]["sad"]) and record["mean"]["unknown"] is None


def test_mask_guided_bench_hands_each_image_a_coarse_mask(
    tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    save = tmp_path / "saved"
    result = run_bench(
        tiny_dataset, tiny_model_dir, FAST, device="cpu", trimaps=True, guided=True, guide_as="mask", save=save
    )
    record = result.as_dict()
    assert record["trimap_guided"] is True and record["guide_as"] == "mask"
    assert "coarse mask (trimap >= 0.5)" in result.to_markdown()
    # The mask (trimap >= 0.5: columns 10-43) limits the matte to its support grown by 8 px.
    import OpenImageIO as oiio

    alpha = np.asarray(oiio.ImageBuf(str(save / "one.png")).get_pixels(oiio.FLOAT))[..., 0]
    assert (alpha[:, 53:] == 0).all()
    assert list((tmp_path / "tmp").iterdir()) == []  # the masks' folder is removed
    with pytest.raises(UsageError, match="--guide-as outline"):
        run_bench(tiny_dataset, tiny_model_dir, FAST, trimaps=True, guided=True, guide_as="outline")


def test_real_alphamatting_fixture_is_detected(shared_data: Path) -> None:
    scan = scan_dataset(shared_data / "matting" / "alphamatting")
    assert [i.name for i in scan.items] == [f"GT{n:02d}" for n in range(1, 21)]
    assert all(i.trimap is not None and i.trimap.endswith(f"trimap/{i.name}.png") for i in scan.items)
    assert scan.unmatched == []


def test_select_images_takes_names_and_ranges() -> None:
    items = [BenchItem(f"{n}.png", f"{n}.png", None, n) for n in [f"GT{i:02d}" for i in range(1, 21)] + ["sub/x7"]]
    half = select_images(items, "GT01-GT10")
    assert [i.name for i in half] == [f"GT{i:02d}" for i in range(1, 11)]
    assert [i.name for i in select_images(items, "GT15, GT03,x7")] == ["GT03", "GT15", "sub/x7"]
    with pytest.raises(UsageError, match="no image named GT21"):
        select_images(items, "GT19-GT21")
    with pytest.raises(UsageError, match="names no image"):
        select_images(items, " , ")


def test_cmd_bench_images_selects_a_subset(
    tiny_dataset: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = sorted(p.stem for p in (tiny_dataset / "image").iterdir())
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["bench", str(tiny_dataset), "--model", str(tiny_model_dir), "--steps", "2", "--seeds", "2",
         "--lr-size", "64", "--device", "cpu", "--images", names[-1], "--json"]
    )
    assert cmd_bench(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert [item["name"] for item in record["items"]] == [names[-1]]
