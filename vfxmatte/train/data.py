"""Training data: image/alpha sources, multi-scale views and the latent bank.

Sources (the ``data`` block of a training config):

* ``{"kind": "synthetic", "count": N, "size": S, "multi_object_fraction": f}`` — procedural
  composites (:mod:`vfxmatte.train.synthetic`), with a caption per object;
* ``{"kind": "folder", "root": DIR}`` — any folder with an image sub-folder (``image/``,
  ``images/``, ``input/``, ``original_image/``, ``blurred_image/``, ``merged/``…) beside an
  alpha sub-folder (``alpha/``, ``gt/``, ``mask/``, ``matte/``…), paired by file stem;
* ``{"kind": "p3m", "root": DIR}`` — the P3M-10K layout, ``DIR/train/blurred_image/*.jpg``
  with ``DIR/train/mask/*.png`` (``DIR`` may also be the ``train`` folder itself).

Folder and P3M images are read as display-referred 8-bit (PNG / JPEG as they are).

**Multi-scale views (the paper's multi-scale random crops).** Each item gives one *full
view* (its centred square of the short side, resized to ``train_size``) and ``views``
*patches*: squares of ``train_size × zoom`` source pixels (``zoom`` uniform in
``patch_zoom``, never above ``patch_max_fraction`` of the short side), resized to
``train_size``, centred on the matte's transition band three times in four.  Full views
are conditioned on a caption of the object they select (or, with probability
``prompt_dropout``, the empty prompt and the matte of every object); patches are
conditioned on the fixed prompt "enhance details" and the matte of every object in them.
Without a ``patches`` block every sample is the full view (the paper's ablation:
resized full images).

**The latent bank.** Encoding a batch through the VAE costs more than a UNet step on a
CPU, so each view is encoded once, before the UNet stage, into a bank of latents; a step
then draws from the bank.  Which bank entry sample ``m`` of the run uses depends only on
``(seed, m)`` — never on what was drawn before — so a resumed run draws exactly the same
samples as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vfxmatte.errors import InputError, UsageError
from vfxmatte.train.text import DETAIL_PROMPT

__all__ = [
    "Item",
    "LatentBank",
    "MatteTarget",
    "Sampler",
    "build_bank",
    "find_pairs",
    "item_source",
]


@dataclass
class MatteTarget:
    """One matte an item can be trained towards, and the captions that ask for it."""

    alpha: np.ndarray  # uint8 (H, W)
    captions: tuple[str, ...]


@dataclass
class Item:
    """One training image: uint8 (H, W, 3), the matte of all its objects, selectable targets."""

    image: np.ndarray
    union: np.ndarray  # uint8 (H, W): every object (the null prompt's and the patches' target)
    targets: list[MatteTarget] = field(default_factory=list)


# --------------------------------------------------------------------------- sources


def _read_rgb8(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"{path}: cannot read the image: {oiio.geterror() or 'unknown format'}")
    try:
        pixels = inp.read_image(0, 0, 0, -1, "uint8")
    finally:
        inp.close()
    if pixels is None:
        raise InputError(f"{path}: cannot read the pixels")
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return np.ascontiguousarray(pixels)


def find_pairs(kind: str, root: str) -> list[tuple[str, str]]:
    """(image, alpha) paths of a ``folder`` or ``p3m`` source, sorted by stem."""
    from vfxmatte.bench import ALPHA_DIRS, IMAGE_DIRS
    from vfxmatte.evaluate import images_by_stem

    base = Path(root)
    if kind == "p3m":
        train = base if base.name == "train" else base / "train"
        image_dir, alpha_dir = train / "blurred_image", train / "mask"
        if not image_dir.is_dir() or not alpha_dir.is_dir():
            raise UsageError(f"{root}: not the P3M-10K layout (no train/blurred_image and train/mask)")
    elif kind == "folder":
        images = [base / n for n in IMAGE_DIRS if (base / n).is_dir()]
        alphas = [base / n for n in ALPHA_DIRS if (base / n).is_dir()]
        if not images or not alphas:
            raise UsageError(f"{root}: needs an image folder ({', '.join(IMAGE_DIRS)}) and an alpha folder")
        image_dir, alpha_dir = images[0], alphas[0]
    else:
        raise UsageError(f"data kind {kind!r}: choose synthetic, folder or p3m")
    image_files = images_by_stem(str(image_dir))
    alpha_files = images_by_stem(str(alpha_dir))
    stems = sorted(set(image_files) & set(alpha_files))
    if not stems:
        raise UsageError(f"{root}: no image in {image_dir.name}/ has an alpha of the same name in {alpha_dir.name}/")
    return [(image_files[s], alpha_files[s]) for s in stems]


def item_source(data: dict[str, Any], seed: int) -> tuple[int, Callable[[int], Item]]:
    """The number of items of a ``data`` block and a function reading item ``i``."""
    kind = str(data.get("kind", "synthetic"))
    if kind == "synthetic":
        from vfxmatte.train.synthetic import CompositeDataset

        dataset = CompositeDataset(
            int(data.get("count", 2000)),
            size=int(data.get("size", 256)),
            seed=seed,
            multi_object_fraction=float(data.get("multi_object_fraction", 0.0)),
        )

        def synthetic_item(i: int) -> Item:
            comp = dataset[i]
            image = _u8(comp.image)
            if len(comp.objects) == 1:
                targets = [MatteTarget(_u8(comp.alpha), comp.objects[0].captions)]
                return Item(image, targets[0].alpha, targets)
            targets = [MatteTarget(_u8(o.alpha), o.captions) for o in comp.objects]
            union = np.max(np.stack([t.alpha for t in targets]), axis=0)
            return Item(image, union, targets)

        return len(dataset), synthetic_item
    if "root" not in data:
        raise UsageError(f"data kind {kind!r} needs a 'root' folder")
    pairs = find_pairs(kind, str(data["root"]))
    limit = data.get("limit")
    if limit:
        pairs = pairs[: int(limit)]

    def file_item(i: int) -> Item:
        image_path, alpha_path = pairs[i]
        image = _read_rgb8(image_path)
        alpha = _read_rgb8(alpha_path)[:, :, 0]
        if image.shape[:2] != alpha.shape:
            raise InputError(f"{alpha_path}: {alpha.shape[1]}x{alpha.shape[0]} does not match {image_path}")
        image = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
        return Item(np.ascontiguousarray(image), alpha, [MatteTarget(alpha, ())])

    return len(pairs), file_item


def _u8(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.round(np.clip(x, 0.0, 1.0) * 255.0), np.uint8)


# --------------------------------------------------------------------------- views


def _square(x: np.ndarray, y0: int, x0: int, side: int, size: int) -> torch.Tensor:
    """Crop ``side``² at (y0, x0) of an (H, W[, C]) uint8 array, resize to ``size``², as (C, size, size) float."""
    crop = x[y0 : y0 + side, x0 : x0 + side]
    t = torch.from_numpy(np.ascontiguousarray(crop)).float().div_(255.0)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    if side != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)
    return t[0].clamp_(0.0, 1.0)


def _patch_origin(union: np.ndarray, side: int, rng: np.random.Generator) -> tuple[int, int]:
    h, w = union.shape
    band = np.flatnonzero((union > 3) & (union < 252)) if rng.random() < 0.75 else np.empty(0, np.int64)
    if band.size:
        cy, cx = divmod(int(band[int(rng.integers(0, band.size))]), w)
        y0, x0 = cy - side // 2, cx - side // 2
    else:
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return int(np.clip(y0, 0, h - side)), int(np.clip(x0, 0, w - side))


@dataclass
class _View:
    image: torch.Tensor  # (3, T, T) in [0, 1]
    mattes: list[torch.Tensor]  # (1, T, T) each; [0] is the union
    prompts: list[tuple[str, ...]]  # per matte: the captions that ask for it ((), for the union)
    patch: bool


def item_views(item: Item, size: int, patches: dict[str, Any] | None, rng: np.random.Generator) -> list[_View]:
    """The full view of ``item`` (and its patches, with a ``patches`` block) at ``size``²."""
    h, w = item.union.shape
    short = min(h, w)
    y0, x0 = (h - short) // 2, (w - short) // 2
    full = _View(
        _square(item.image, y0, x0, short, size),
        [_square(item.union, y0, x0, short, size)] + [_square(t.alpha, y0, x0, short, size) for t in item.targets],
        [()] + [t.captions for t in item.targets],
        patch=False,
    )
    views = [full]
    if patches:
        lo, hi = (float(v) for v in patches.get("patch_zoom", (1.0, 1.5)))
        largest = int(short * float(patches.get("patch_max_fraction", 0.75)))
        for _ in range(int(patches.get("views", 3))):
            side = min(largest, int(round(size * rng.uniform(lo, hi))))
            side = max(8, min(side, short))
            py, px = _patch_origin(item.union, side, rng)
            views.append(_View(_square(item.image, py, px, side, size), [_square(item.union, py, px, side, size)],
                               [()], patch=True))
    return views


# --------------------------------------------------------------------------- the bank


@dataclass
class LatentBank:
    """Encoded views: image latents, matte latents and, per view, which mattes it offers."""

    images: torch.Tensor  # (V, C, h, w)
    mattes: torch.Tensor  # (M, C, h, w)
    items: list[list[int]]  # item -> its view ids ([0] the full view)
    union: list[int]  # view -> matte id of its union matte
    choices: list[list[tuple[int, tuple[str, ...]]]]  # view -> (matte id, captions) selectable by a caption
    patch: list[bool]  # view -> is a patch

    @property
    def captions(self) -> list[str]:
        return sorted({c for view in self.choices for _, caps in view for c in caps})


def build_bank(
    count: int,
    read: Callable[[int], Item],
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    size: int,
    patches: dict[str, Any] | None,
    seed: int,
    chunk: int = 32,
    progress: Callable[[int], None] | None = None,
) -> LatentBank:
    """Read every item, cut its views and encode them (``encode``: (B, 3, T, T) in [0, 1] → latents)."""
    images: list[torch.Tensor] = []
    mattes: list[torch.Tensor] = []
    items: list[list[int]] = []
    union: list[int] = []
    choices: list[list[tuple[int, tuple[str, ...]]]] = []
    patch: list[bool] = []
    pending_images: list[torch.Tensor] = []
    pending_mattes: list[torch.Tensor] = []

    def flush() -> None:
        if pending_images:
            images.append(encode(torch.stack(pending_images)))
            pending_images.clear()
        if pending_mattes:
            mattes.append(encode(torch.stack(pending_mattes).expand(-1, 3, -1, -1)))
            pending_mattes.clear()

    n_views = n_mattes = 0
    for i in range(count):
        rng = np.random.default_rng([seed, 7, i])
        ids = []
        for view in item_views(read(i), size, patches, rng):
            first = n_mattes
            pending_images.append(view.image)
            pending_mattes.extend(view.mattes)
            n_mattes += len(view.mattes)
            union.append(first)
            choices.append([(first + k, caps) for k, caps in enumerate(view.prompts) if k > 0])
            patch.append(view.patch)
            ids.append(n_views)
            n_views += 1
        items.append(ids)
        if len(pending_images) >= chunk:
            flush()
        if progress is not None:
            progress(i)
    flush()
    return LatentBank(torch.cat(images), torch.cat(mattes), items, union, choices, patch)


@dataclass
class Batch:
    image_latents: torch.Tensor
    alpha_latents: torch.Tensor
    prompts: list[str]


class Sampler:
    """Sample ``m`` of a run → (view, matte, prompt), a pure function of ``(seed, m)``.

    Items are visited in a fresh permutation per epoch; a full view is drawn with
    probability ``full_fraction`` (1 without patches), else one of the item's patches.
    """

    def __init__(self, bank: LatentBank, seed: int, full_fraction: float, prompt_dropout: float) -> None:
        self.bank = bank
        self.seed = seed
        self.full_fraction = full_fraction
        self.prompt_dropout = prompt_dropout
        self._perm: tuple[int, np.ndarray] | None = None

    def _item(self, m: int) -> int:
        n = len(self.bank.items)
        epoch, k = divmod(m, n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 11, epoch]).permutation(n))
        return int(self._perm[1][k])

    def sample(self, m: int) -> tuple[int, int, str]:
        rng = np.random.default_rng([self.seed, 13, m])
        views = self.bank.items[self._item(m)]
        view = views[0] if len(views) == 1 or rng.random() < self.full_fraction else views[1:][
            int(rng.integers(0, len(views) - 1))]
        if self.bank.patch[view]:
            return view, self.bank.union[view], DETAIL_PROMPT
        options = self.bank.choices[view]
        drop = rng.random() < self.prompt_dropout
        captioned = [(mid, caps) for mid, caps in options if caps]
        if drop or not captioned:
            return view, self.bank.union[view], ""
        mid, caps = captioned[int(rng.integers(0, len(captioned)))]
        return view, mid, caps[int(rng.integers(0, len(caps)))]

    def batch(self, first: int, size: int) -> Batch:
        drawn = [self.sample(m) for m in range(first, first + size)]
        views = torch.tensor([d[0] for d in drawn])
        mattes = torch.tensor([d[1] for d in drawn])
        return Batch(self.bank.images[views], self.bank.mattes[mattes], [d[2] for d in drawn])
