"""`vfxmatte bench`: run a model over a matting dataset and report a Table-1-style row.

A dataset is a folder of image / alpha pairs (optionally trimaps) in sub-folders, paired
by file stem.  :func:`find_dataset` recognises

* an image folder named ``image``, ``images``, ``input``, ``original_image``, ``original``,
  ``blurred_image`` or ``merged``;
* beside an alpha folder named ``alpha``, ``gt``, ``mask``, ``matte`` or ``alphas``;
* and, optionally, a trimap folder named ``trimap`` or ``trimaps``.

That covers the alphamatting.com training set (``input/ gt/ trimap/``), PPM-100
(``image/ matte/``), the P3M-10k validation sets (``P3M-500-P/blurred_image/ mask/ trimap/``
and ``P3M-500-NP/original_image/ mask/ trimap/``) and a plain ``image/ alpha/`` folder.
When DATASET itself holds no such pair of folders, its direct sub-folders are tried (so
``P3M-10k/validation`` benchmarks both P3M-500-P and P3M-500-NP, items named
``P3M-500-P/<stem>``); sub-folders whose names start with ``train`` are never used.

Each image is read with :func:`vfxmatte.io.exr.read_plate` (so colour handling is the
CLI's: PNG / JPEG are sRGB, EXR scene-linear) and matted with
:func:`vfxmatte.pipeline.matte_plate`, the code path of ``vfxmatte matte`` (LR ensemble,
upsampling, foreground estimation).  Scores are the whole-image metrics in the P3M
convention; with ``trimaps=True`` also the DIM / GCA unknown-region metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vfxmatte import __version__
from vfxmatte.config import MatteParams
from vfxmatte.errors import InputError, OutputError, UsageError
from vfxmatte.evaluate import (
    UNKNOWN_CONVENTION,
    WHOLE_CONVENTION,
    format_scores_row,
    images_by_stem,
    read_matte,
    read_trimap,
    scores_table_header,
)
from vfxmatte.metrics import MattingScores, evaluate_unknown, evaluate_whole, mean_scores

__all__ = [
    "ALPHA_DIRS",
    "IMAGE_DIRS",
    "TRIMAP_DIRS",
    "BenchItem",
    "BenchItemResult",
    "BenchResult",
    "DatasetScan",
    "add_bench_parser",
    "bench_table_header",
    "cmd_bench",
    "find_dataset",
    "run_bench",
    "select_images",
    "scan_dataset",
]

#: Image sub-folder names, in order of preference.
IMAGE_DIRS = ("image", "images", "input", "original_image", "original", "blurred_image", "merged")
#: Alpha (ground-truth) sub-folder names, in order of preference.
ALPHA_DIRS = ("alpha", "gt", "mask", "matte", "alphas")
#: Trimap sub-folder names, in order of preference (``trimap2/`` of alphamatting is not used).
TRIMAP_DIRS = ("trimap", "trimaps")

_GIB = float(2**30)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class BenchItem:
    """One benchmark sample: an image, its ground-truth alpha and optionally a trimap."""

    image: str
    alpha: str
    trimap: str | None
    name: str


@dataclass
class DatasetScan:
    """What :func:`scan_dataset` found: the items, the layouts and the files left unpaired."""

    root: str
    items: list[BenchItem]
    layouts: list[str]
    unmatched: list[str] = field(default_factory=list)

    @property
    def has_trimaps(self) -> bool:
        return any(item.trimap is not None for item in self.items)


def _subset_dirs(folder: Path) -> tuple[Path, Path, Path | None] | None:
    """The (image, alpha, trimap) sub-folders of ``folder``, or None when it is no dataset."""

    def first(names: tuple[str, ...]) -> Path | None:
        for name in names:
            if (folder / name).is_dir():
                return folder / name
        return None

    image, alpha = first(IMAGE_DIRS), first(ALPHA_DIRS)
    if image is None or alpha is None:
        return None
    return image, alpha, first(TRIMAP_DIRS)


def _scan_subset(dirs: tuple[Path, Path, Path | None], prefix: str) -> tuple[list[BenchItem], list[str]]:
    image_dir, alpha_dir, trimap_dir = dirs
    images = images_by_stem(str(image_dir))
    alphas = images_by_stem(str(alpha_dir))
    trimaps = images_by_stem(str(trimap_dir)) if trimap_dir is not None else {}
    items = [
        BenchItem(images[stem], alphas[stem], trimaps.get(stem), prefix + stem) for stem in images if stem in alphas
    ]
    unmatched = [f"{prefix}{image_dir.name}/{Path(images[s]).name}" for s in images if s not in alphas]
    unmatched += [f"{prefix}{alpha_dir.name}/{Path(alphas[s]).name}" for s in alphas if s not in images]
    if trimap_dir is not None:
        unmatched += [f"{prefix}{s} (no trimap)" for s in images if s in alphas and s not in trimaps]
    return items, unmatched


def _layout(dirs: tuple[Path, Path, Path | None], prefix: str) -> str:
    image, alpha, trimap = dirs
    names = [image.name, alpha.name] + ([trimap.name] if trimap is not None else [])
    return prefix + "{" + ", ".join(names) + "}"


def scan_dataset(root: str | os.PathLike[str]) -> DatasetScan:
    """Find the image / alpha (/ trimap) pairs of a dataset folder (see the module docstring)."""
    folder = Path(root)
    if not folder.is_dir():
        raise InputError(f"{folder}: dataset folder does not exist")
    subsets: list[tuple[tuple[Path, Path, Path | None], str]] = []
    direct = _subset_dirs(folder)
    if direct is not None:
        subsets.append((direct, ""))
    else:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.lower().startswith("train")):
            dirs = _subset_dirs(child)
            if dirs is not None:
                subsets.append((dirs, child.name + "/"))
    if not subsets:
        raise InputError(
            f"{folder}: no dataset layout found: expected an image folder ({', '.join(IMAGE_DIRS)}) beside an "
            f"alpha folder ({', '.join(ALPHA_DIRS)}), here or in a direct sub-folder"
        )
    items: list[BenchItem] = []
    unmatched: list[str] = []
    for dirs, prefix in subsets:
        found, left = _scan_subset(dirs, prefix)
        items += found
        unmatched += left
    layouts = [_layout(*s) for s in subsets]
    if not items:
        raise InputError(f"{folder}: no image has an alpha of the same name ({'; '.join(layouts)})")
    return DatasetScan(str(folder), items, layouts, unmatched)


def find_dataset(root: str | os.PathLike[str]) -> list[BenchItem]:
    """The benchmark items of a dataset folder, sorted by name (see :func:`scan_dataset`)."""
    return scan_dataset(root).items


def _name_range(first: str, last: str) -> list[str] | None:
    """``GT01``..``GT10`` → the names between (same prefix, numbered suffix); None if not a range."""
    a, b = re.fullmatch(r"(.*?)(\d+)", first), re.fullmatch(r"(.*?)(\d+)", last)
    if a is None or b is None or a.group(1) != b.group(1):
        return None
    lo, hi, width = int(a.group(2)), int(b.group(2)), len(a.group(2))
    if hi < lo:
        return None
    return [f"{a.group(1)}{n:0{width}d}" for n in range(lo, hi + 1)]


def select_images(items: list[BenchItem], spec: str) -> list[BenchItem]:
    """The items named by ``spec``: comma-separated names and ranges (``GT01-GT10,GT15``).

    A name matches an item's name or, for datasets with sub-folders, its stem after the
    sub-folder (``P3M-500-P/x`` is matched by ``x``).  A range's ends share a prefix and
    number the names between them (zero padding as written).  Every name must exist: a
    typo must not quietly shrink a benchmark.
    """
    wanted: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        names = None
        if "-" in token:
            first, _, last = token.rpartition("-")
            names = _name_range(first, last) if first else None
        wanted += names if names is not None else [token]
    if not wanted:
        raise UsageError(f"--images {spec!r}: names no image")
    by_name: dict[str, BenchItem] = {}
    for item in items:
        by_name.setdefault(item.name, item)
        by_name.setdefault(item.name.rsplit("/", 1)[-1], item)
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise UsageError(f"--images: no image named {', '.join(missing)} in the dataset")
    chosen = {id(by_name[n]) for n in wanted}
    return [item for item in items if id(item) in chosen]


# --------------------------------------------------------------------------- results


@dataclass
class BenchItemResult:
    """One matted item: its scores and how long the matting took."""

    item: BenchItem
    whole: MattingScores
    unknown: MattingScores | None
    seconds: float  # matte_plate only: reading and scoring are excluded
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.item.name,
            "image": self.item.image,
            "alpha": self.item.alpha,
            "trimap": self.item.trimap,
            "size": [self.width, self.height],
            "seconds": round(self.seconds, 4),
            "whole": self.whole.as_dict(),
            "unknown": None if self.unknown is None else self.unknown.as_dict(),
        }


@dataclass
class BenchResult:
    """A benchmark run: per-item scores, means, timings and memory, and how they were made."""

    dataset: str
    layouts: list[str]
    label: str
    model: str
    device: str
    params: MatteParams
    items: list[BenchItemResult]
    warmup_seconds: float
    seconds_per_image: float
    peak_rss_gib: float | None
    peak_cuda_gib: float | None
    trimaps: bool
    guided: bool = False
    guide_as: str = "trimap"
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_whole(self) -> MattingScores:
        return mean_scores(r.whole for r in self.items)

    @property
    def mean_unknown(self) -> MattingScores | None:
        scored = [r.unknown for r in self.items if r.unknown is not None]
        return mean_scores(scored) if scored else None

    @property
    def peak_gib(self) -> float | None:
        """The memory figure of the table: CUDA peak allocation on a GPU, process peak RSS otherwise."""
        return self.peak_cuda_gib if self.peak_cuda_gib is not None else self.peak_rss_gib

    def table_row(self, region: str = "whole", label: str | None = None) -> str:
        """``| label | MSE | MAD | SAD | Conn | Grad | s/img | peak GiB |`` (see :func:`bench_table_header`).

        ``region="unknown"`` gives the trimap unknown-region scores (only with ``trimaps``).
        """
        scores = self.mean_whole if region == "whole" else self.mean_unknown
        if scores is None:
            raise UsageError("no unknown-region scores: run the benchmark with trimaps")
        peak = self.peak_gib
        extra = (f"{self.seconds_per_image:.2f}", "n/a" if peak is None else f"{peak:.2f}")
        return format_scores_row(label or self.label, scores, extra)

    def as_dict(self) -> dict[str, Any]:
        unknown = self.mean_unknown
        return {
            "dataset": self.dataset,
            "layouts": self.layouts,
            "label": self.label,
            "model": self.model,
            "device": self.device,
            "params": asdict(self.params),
            "count": len(self.items),
            "conventions": {"whole": WHOLE_CONVENTION, "unknown": UNKNOWN_CONVENTION},
            "trimap_guided": self.guided,
            "guide_as": self.guide_as if self.guided else None,
            "trimaps": self.trimaps,
            "mean": {"whole": self.mean_whole.as_dict(), "unknown": None if unknown is None else unknown.as_dict()},
            "seconds_per_image": round(self.seconds_per_image, 4),
            "warmup_seconds": round(self.warmup_seconds, 4),
            "peak_rss_gib": None if self.peak_rss_gib is None else round(self.peak_rss_gib, 3),
            "peak_cuda_gib": None if self.peak_cuda_gib is None else round(self.peak_cuda_gib, 3),
            "items": [r.as_dict() for r in self.items],
            "unmatched": self.unmatched,
            "notes": self.notes,
            "machine": self.machine,
            "version": __version__,
        }

    def guidance_text(self) -> str:
        if not self.guided:
            return "trimap-free prediction scored inside the trimap's unknown region (no trimap guidance)."
        if self.guide_as == "mask":
            return "prediction guided by a coarse mask (trimap >= 0.5), scored inside the trimap's unknown region."
        return "prediction guided by the same trimap (Eq. 8), scored inside its unknown region."

    def to_markdown(self) -> str:
        """Header, row(s) and caption lines as ``vfxmatte bench`` prints them."""
        lines = [f"Scores: {WHOLE_CONVENTION}.", "", bench_table_header(), self.table_row()]
        if self.mean_unknown is not None:
            lines += [
                "",
                f"Scores: {UNKNOWN_CONVENTION}; {self.guidance_text()}",
                "",
                bench_table_header(),
                self.table_row("unknown"),
            ]
        peak = "CUDA peak allocated" if self.peak_cuda_gib is not None else "process peak RSS"
        lines += [
            "",
            f"{len(self.items)} images of {self.dataset} ({'; '.join(self.layouts)}), device {self.device}; "
            f"s/img: mean matting time per image after one warm-up image ({self.warmup_seconds:.2f} s); "
            f"peak GiB: {peak}.",
        ]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def bench_table_header(first: str = "model") -> str:
    """``| model | MSE | MAD | SAD | Conn | Grad | s/img | peak GiB |`` and its separator line."""
    return scores_table_header(first, ("s/img", "peak GiB"))


# --------------------------------------------------------------------------- running


def _peak_rss_gib() -> float | None:
    """This process's peak resident set size so far, in GiB (None where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / _GIB if sys.platform == "darwin" else peak * 1024.0 / _GIB  # bytes on macOS, KiB on Linux


def _machine(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if getattr(device, "type", None) == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _coarse_mask(trimap: str) -> np.ndarray:
    """A binary mask from a trimap file: its pixels at or above half its range (unknown and foreground)."""
    values = read_matte(trimap, "ground truth", None)
    top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(values.dtype, 1.0)
    return (values.astype(np.float32) >= 0.5 * top).astype(np.float32)


def _save_png(path: Path, alpha: np.ndarray) -> None:
    import OpenImageIO as oiio

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)[:, :, None]  # OIIO wants (H, W, C)
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 1, "uint8")
    spec.channelnames = ("Y",)
    out = oiio.ImageOutput.create(str(path))
    if out is None or not out.open(str(path), spec) or not out.write_image(pixels) or not out.close():
        raise OutputError(f"{path}: cannot write the predicted alpha")


def run_bench(
    root: str | os.PathLike[str],
    model: Any = None,
    params: MatteParams | None = None,
    device: str = "cpu",
    trimaps: bool = False,
    limit: int | None = None,
    on_item: Callable[[BenchItemResult], None] | None = None,
    *,
    save: str | os.PathLike[str] | None = None,
    label: str | None = None,
    guided: bool = False,
    guide_as: str = "trimap",
    images: str | None = None,
) -> BenchResult:
    """Matte every item of a dataset folder and score it against its alpha.

    ``model`` is a loaded :class:`~vfxmatte.model.core.MattingModel`, a model folder, or
    None for the bundled default model (loaded on ``device``: ``cpu``, ``cuda[:N]``,
    ``mps`` or ``auto``; float16 on CUDA as ``vfxmatte matte`` does).  ``limit`` takes the
    first N items by name; ``images`` (``GT01-GT10,GT15``) only the items it names
    (:func:`select_images`), before ``limit``.  ``save`` writes each predicted alpha as an 8-bit PNG
    (``<save>/<name>.png``) for inspection.

    Seconds per image time :func:`~vfxmatte.pipeline.matte_plate` only (no reading or
    scoring), averaged over every image but the first, whose time (model warm-up, JIT
    compilation of the foreground solver, allocator growth) is reported separately as
    ``warmup_seconds``.  Peak memory is the process's peak resident set size (it includes
    the model and everything loaded before), and on CUDA also the peak memory allocated by
    torch during the run.

    ``trimaps=True`` also scores each prediction inside its trimap's unknown region (DIM /
    GCA convention).  ``guided=True`` (needs ``trimaps``) hands each image's trimap to the
    model as a ``--guide-kind trimap`` guide (Eq. 8); otherwise the prediction stays
    trimap-free.  ``guide_as="mask"`` hands it instead a binary coarse mask, the trimap's
    pixels at or above 0.5 (``--guide-kind mask``): what a roto shape gives.
    """
    import torch

    from vfxmatte.io.exr import read_plate
    from vfxmatte.model.core import MattingModel, load_model, resolve_device
    from vfxmatte.pipeline import matte_plate

    params = params or MatteParams()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    scan = scan_dataset(root)
    if guided and not trimaps:
        raise UsageError("--guided needs --trimaps: the trimaps are the guides")
    if guide_as not in ("trimap", "mask"):
        raise UsageError(f"--guide-as {guide_as}: choose trimap or mask")
    masks = tempfile.TemporaryDirectory(prefix="vfxmatte-bench-masks-") if guided and guide_as == "mask" else None
    if trimaps and not scan.has_trimaps:
        raise UsageError(f"{scan.root}: --trimaps needs a trimap folder ({', '.join(TRIMAP_DIRS)}); none found")
    items = select_images(scan.items, images) if images is not None else scan.items
    items = items[:limit] if limit is not None else items
    if isinstance(model, MattingModel):
        loaded = model
    else:
        target = resolve_device(device)
        loaded = load_model(model, device=target, dtype=torch.float16 if target.type == "cuda" else torch.float32)
    torch_device = loaded.device
    cuda = torch_device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(torch_device)
    results: list[BenchItemResult] = []
    notes: list[str] = []
    for index, item in enumerate(items):
        plate = read_plate(item.image, index, colorspace=params.colorspace)
        notes += plate.warnings
        gt = read_matte(item.alpha, "ground truth", None)
        if gt.shape != plate.rgb.shape[:2]:
            raise InputError(
                f"{item.image}: image is {plate.rgb.shape[1]}x{plate.rgb.shape[0]} but its alpha {item.alpha} is "
                f"{gt.shape[1]}x{gt.shape[0]}; they must be the same size"
            )
        if cuda:
            torch.cuda.synchronize(torch_device)
        started = time.perf_counter()
        run_params = params
        if guided and item.trimap is not None:
            if masks is not None:
                mask_path = Path(masks.name) / f"{item.name}.png"
                _save_png(mask_path, _coarse_mask(item.trimap))
                run_params = replace(params, guide=str(mask_path), guide_kind="mask")
            else:
                run_params = replace(params, guide=str(item.trimap), guide_kind="trimap")
        matte = matte_plate(loaded, plate, run_params)
        if cuda:
            torch.cuda.synchronize(torch_device)
        seconds = time.perf_counter() - started
        alpha = np.clip(matte.alpha, 0.0, 1.0)
        whole = evaluate_whole(alpha, gt)
        unknown = None
        if trimaps and item.trimap is not None:
            region = read_trimap(item.trimap)
            if region.shape != gt.shape:
                raise InputError(
                    f"{item.trimap}: trimap is {region.shape[1]}x{region.shape[0]} but the alpha {item.alpha} is "
                    f"{gt.shape[1]}x{gt.shape[0]}; they must be the same size"
                )
            unknown = evaluate_unknown(alpha, gt, region)
        if save is not None:
            _save_png(Path(save) / f"{item.name}.png", alpha)
        result = BenchItemResult(item, whole, unknown, seconds, gt.shape[1], gt.shape[0])
        results.append(result)
        if on_item is not None:
            on_item(result)
    if masks is not None:
        masks.cleanup()
    timed = [r.seconds for r in results[1:]] or [results[0].seconds]
    if len(results) == 1:
        notes.append("one image only: s/img includes the warm-up")
    return BenchResult(
        dataset=scan.root,
        layouts=scan.layouts,
        label=label or loaded.name,
        model=loaded.describe(),
        device=str(torch_device),
        params=params,
        items=results,
        warmup_seconds=results[0].seconds,
        seconds_per_image=float(np.mean(timed)),
        peak_rss_gib=_peak_rss_gib(),
        peak_cuda_gib=torch.cuda.max_memory_allocated(torch_device) / _GIB if cuda else None,
        trimaps=trimaps,
        guided=guided,
        guide_as=guide_as,
        unmatched=scan.unmatched,
        notes=list(dict.fromkeys(notes)),
        machine=_machine(torch_device),
    )


# --------------------------------------------------------------------------- CLI glue


def add_bench_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``vfxmatte bench`` on an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run a model over a matting dataset; print a Table-1-style row (metrics, s/img, peak memory)",
        description="Matte every image of DATASET (image/alpha folders paired by stem: alphamatting input/gt/"
        "trimap, PPM-100 image/matte, P3M-500 blurred_image|original_image/mask/trimap) and score it.",
    )
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--model", help="model folder (default: the bundled model)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps T' (default 10)")
    p.add_argument("--seeds", type=int, default=4, help="ensemble size L (default 4)")
    p.add_argument("--lr-size", type=int, default=512, help="long side of the LR pass (default 512)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda[:N], mps")
    p.add_argument(
        "--trimaps",
        action="store_true",
        help="also score the trimap's unknown region (DIM convention); the prediction stays trimap-free",
    )
    p.add_argument("--guided", action="store_true", help="with --trimaps: guide the model with each trimap (Eq. 8)")
    p.add_argument(
        "--guide-as",
        default="trimap",
        choices=("trimap", "mask"),
        help="with --guided: the trimap itself, or a coarse mask made of it (trimap >= 0.5)",
    )
    p.add_argument("--hr", default="auto", choices=("auto", "diffusion", "pymatting", "off"), help="as vfxmatte matte")
    p.add_argument("--prior", default="u2netp", choices=("u2netp", "people", "none"), help="as vfxmatte matte (u2netp)")
    p.add_argument("--prior-strength", type=float, help="as vfxmatte matte (default: the same as vfxmatte matte)")
    p.add_argument("--limit", type=int, help="benchmark the first N images (by name) only")
    p.add_argument(
        "--images",
        help="benchmark only these images: names and ranges, comma-separated (GT01-GT10,GT15); "
        "how docs/BENCHMARKS.md tunes on one half and reports on the other",
    )
    p.add_argument("--save", help="write each predicted alpha as an 8-bit PNG into this folder")
    p.add_argument("--label", help="first cell of the table row (default: the model's name)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``vfxmatte bench``: a Markdown table (or ``--json``) on stdout, progress on stderr."""
    params = MatteParams(
        steps=args.steps,
        seeds=args.seeds,
        lr_size=args.lr_size,
        seed=args.seed,
        hr=args.hr,
        prior=args.prior,
        temporal="off",
        # Unset: the library default, so bench measures exactly what `vfxmatte matte` runs.
        **({"prior_strength": args.prior_strength} if args.prior_strength is not None else {}),
    )
    count = 0

    def progress(result: BenchItemResult) -> None:
        nonlocal count
        count += 1
        if sys.stderr.isatty():
            print(f"\r{count} {result.item.name}: {result.seconds:.2f} s", end="", file=sys.stderr, flush=True)

    result = run_bench(
        args.dataset,
        model=args.model,
        params=params,
        device=args.device,
        trimaps=args.trimaps,
        limit=args.limit,
        images=args.images,
        on_item=progress,
        save=args.save,
        label=args.label,
        guided=args.guided,
        guide_as=args.guide_as,
    )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.to_markdown())
    if result.unmatched:
        print(f"warning: {len(result.unmatched)} file(s) left unpaired: {', '.join(result.unmatched)}", file=sys.stderr)
    return 0
