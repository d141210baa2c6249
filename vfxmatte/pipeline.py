"""Matte one frame, or a shot of frames: the single code path every entry point uses.

The CLI, the Prefect flows and the Nuke bridge all call :func:`matte_shot` (or
:func:`matte_plate` for one decoded frame); none of them reads, mattes or writes itself.
"""

from __future__ import annotations

import bisect
import json
import os
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from vfxmatte import __version__, carry, cleanplate, hr, steady
from vfxmatte import guide as guidance
from vfxmatte import temporal as temporal_module
from vfxmatte.config import MatteParams, RunOptions
from vfxmatte.errors import FrameError, InputError, OutputError, UsageError
from vfxmatte.io import color
from vfxmatte.io.exr import read_header_attribute, read_plate, read_windows, remove_stale_temporaries, write_exr
from vfxmatte.io.frames import Plate
from vfxmatte.io.locks import FrameLock
from vfxmatte.io.movie_out import MovieKind, MovieWriter, preview_picture
from vfxmatte.io.sequence import (
    FrameSequence,
    format_ranges,
    output_sequence,
    sequence_stem,
)
from vfxmatte.model.core import MattingModel, load_model, resolve_device
from vfxmatte.person import NAME as PERSON_NAME
from vfxmatte.person import SHA256 as PERSON_SHA256
from vfxmatte.prior import SHA256 as PRIOR_SHA256
from vfxmatte.prior import PersonSettings, ZoomSettings, load_prior
from vfxmatte.sampling import encode_image, lr_ensemble, lr_shape, resize
from vfxmatte.temporal import TemporalState, temporal_state
from vfxmatte.uncertainty import estimate as estimate_uncertainty

Status = Literal["written", "skipped", "failed"]


@dataclass
class FrameResult:
    frame: int
    status: Status
    path: str | None = None
    error: str | None = None
    uncertainty: float | None = None
    seconds: float = 0.0
    prior_seconds: float = 0.0
    keyframe_doubt: float | None = None  # how much a new keyframe would help (carried guides only)
    warnings: list[str] = field(default_factory=list)
    traceback: str | None = None  # where a failure was raised, for ``--debug``; not in ``as_dict``


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


@dataclass
class ShotSummary:
    input: str
    output: str
    model: str
    results: list[FrameResult] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    keyframes: list[int] = field(default_factory=list)
    carry_seconds: float = 0.0  # the keyframe carry's own time (reading the frames it steps over included)
    #: Frames whose matte leaves out more than ``cleanplate.MISSED_NOTE`` of the frame that the clean
    #: plate calls subject, and that share (``vfxmatte:clean_plate_missed``).
    missed: dict[int, float] = field(default_factory=dict)

    def frames(self, status: Status) -> list[int]:
        return [r.frame for r in self.results if r.status == status]

    @property
    def exit_code(self) -> int:
        """0 all written; 1 some failed; 2 nothing readable; 130 interrupted (DESIGN §4)."""
        if self.interrupted:
            return 130
        if not self.frames("failed"):
            return 0
        if not self.frames("written") and not self.frames("skipped"):
            return 2
        return 1

    def as_dict(self) -> dict[str, object]:
        return {
            "input": self.input,
            "output": self.output,
            "model": self.model,
            "exit_code": self.exit_code,
            "frames": {
                "written": self.frames("written"),
                "skipped": self.frames("skipped"),
                "failed": [{"frame": r.frame, "error": r.error} for r in self.results if r.status == "failed"],
            },
            "uncertainty": {str(r.frame): r.uncertainty for r in self.results if r.uncertainty is not None},
            "timings": {
                "total_s": round(self.seconds, 3),
                "per_frame_s": {str(r.frame): round(r.seconds, 3) for r in self.results if r.status == "written"},
                "prior_s": {str(r.frame): round(r.prior_seconds, 3) for r in self.results if r.status == "written"},
                "carry_s": round(self.carry_seconds, 3),
            },
            "warnings": [w for r in self.results for w in r.warnings],
            "notes": self.notes,
            "missed": {str(f): round(share, 6) for f, share in sorted(self.missed.items())},
            **self._keyframe_report(),
        }

    def _keyframe_report(self) -> dict[str, object]:
        """Keyframe runs: the keyframes, each frame's doubt and where the next roto would help most."""
        if not self.keyframes:
            return {}
        return {
            "keyframes": self.keyframes,
            "keyframe_doubt": {str(f): round(d, 4) for f, d in self._keyframe_doubts().items()},
            "next_keyframes": self.next_keyframes(),
        }

    def _keyframe_doubts(self) -> dict[int, float]:
        return {r.frame: r.keyframe_doubt for r in self.results if r.keyframe_doubt is not None}

    def next_keyframes(self) -> list[int]:
        """Frames where a new keyframe would help most (:func:`vfxmatte.carry.next_keyframes`)."""
        return carry.next_keyframes(self._keyframe_doubts(), self.keyframes)


@dataclass
class Matte:
    """The matting result of one plate, at the plate's data-window resolution."""

    alpha: np.ndarray  # (H, W) in [0, 1]
    uncertainty: np.ndarray  # (H, W) in [0, 1]: estimated absolute alpha error (vfxmatte.uncertainty)
    foreground: np.ndarray  # (H, W, 3) unpremultiplied, in ``colorspace``
    colorspace: str
    score: float  # mean of ``uncertainty``: the frame's estimated error (header ``vfxmatte:uncertainty``)
    trimap: np.ndarray | None = None  # the HR auto-trimap (0 / 0.5 / 1), written as ``trimap.Y``
    prior_seconds: float = 0.0  # time spent in the salient-object prior
    keyframe_doubt: float | None = None  # a carried guide's doubt (header ``vfxmatte:keyframe_doubt``)
    #: (top, bottom, left, right) of the picture inside black bars that a trimap-free run cut off
    #: (header ``vfxmatte:picture``); None: no bars were found, or a guide was given.
    picture: tuple[int, int, int, int] | None = None
    #: The share of the frame the shot's clean plate made known background (header
    #: ``vfxmatte:clean_plate``); None: no clean plate was used on this frame.
    clean_plate: float | None = None
    #: The share of the frame the clean plate made subject (header ``vfxmatte:clean_plate_subject``);
    #: None: no clean plate was used on this frame.
    clean_plate_subject: float | None = None
    #: Without ``fill``: the share of the frame the clean plate calls subject and the matte leaves
    #: under 0.5 (header ``vfxmatte:clean_plate_missed``); None: not measured.
    clean_plate_missed: float | None = None

    @property
    def premultiplied(self) -> np.ndarray:
        return self.foreground * self.alpha[..., None]


def describe_run(model: MattingModel, params: MatteParams) -> str:
    """``vfxmatte:model``: the matting model's name and sha256, plus the prior's where one runs
    (the ``people`` prior: U²-Netp's and the person network's)."""
    text = model.describe()
    if params.uses_prior:
        text += f"; prior {params.prior} sha256:{PRIOR_SHA256}"
        if params.prior == "people":
            text += f" + {PERSON_NAME} sha256:{PERSON_SHA256}"
    return text


def mask_latents(model: MattingModel, mask: np.ndarray, seeds: int) -> torch.Tensor:
    """A coarse (h, w) mask in [0, 1] encoded like an alpha matte, one copy per ensemble member."""
    pixels = torch.from_numpy(np.repeat(mask[None].astype(np.float32), 3, axis=0))[None]
    return encode_image(model, pixels).float().cpu().expand(seeds, -1, -1, -1).contiguous()


def mask_iou(a: np.ndarray, b: np.ndarray, level: float = 0.5) -> float:
    """Intersection over union of two soft masks, inside where above ``level`` (two empty masks agree: 1)."""
    inside_a, inside_b = a > level, b > level
    union = int(np.count_nonzero(inside_a | inside_b))
    return 1.0 if union == 0 else int(np.count_nonzero(inside_a & inside_b)) / union


def edge_band_uncertainty(alpha: np.ndarray, uncertainty: np.ndarray, radius: int = 2) -> float:
    """Mean uncertainty inside the matte's edge band.

    The band is every pixel whose alpha is fractional (0.02–0.98) grown by ``radius``
    pixels, measured at LR resolution; a frame with no edge at all scores 0.
    """
    band = (alpha > 0.02) & (alpha < 0.98)
    if radius > 0 and band.any():
        band = ndimage.binary_dilation(band, iterations=radius)
    return float(uncertainty[band].mean()) if band.any() else 0.0


def estimate_foreground(linear: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colour by Germer et al. 2021 (pymatting's ``estimate_foreground_ml``).

    Solved in linear light on non-negative values; where alpha is solid the plate's own
    pixel is kept exactly.
    """
    from pymatting import estimate_foreground_ml

    image = np.clip(linear, 0.0, None).astype(np.float32)
    # The solver clamps to [0, 1]; it is linear in the image otherwise, so scale HDR
    # plates into range and back rather than clip their highlights.
    scale = max(1.0, float(image.max()))
    fg = np.asarray(estimate_foreground_ml(image / scale, alpha.astype(np.float32)), dtype=np.float32) * scale
    solid = alpha >= 0.999
    fg[solid] = linear[solid]
    return fg


def _run_prior(
    name: str, display: np.ndarray, lr_h: int, lr_w: int, zoom: bool = True, complete: bool = True
) -> tuple[np.ndarray, float]:
    """The salient-object prior's mask at the LR size, and the seconds it took.

    ``complete`` False: the ``people`` prior's subjects are not completed by the person network
    (what a sequence's steadied prior is made of; each frame completes its own afterwards,
    :func:`_complete_prior`).

    ``zoom``: each subject is looked at again from close up (:meth:`SalientPrior.predict_subjects`),
    for trimap-free runs, whose matte is the prior's core and its solved edge.  A mask guide's
    band is solved from the guide alone, so there the prior only starts the ensemble and the
    plain mask does (``zoom=False``, one look fewer per subject).

    The prior sees the full-resolution display-referred plate, not the LR image: U²-Netp
    is sensitive to softness, and the twice-resampled LR image (to the LR size in linear
    light, then to its 320²) scored MSE×1e3 50.2 on alphamatting GT01–GT20 against 41.1
    from the plate itself.
    """
    prior = load_prior(name)
    assert prior is not None
    started = time.perf_counter()
    zoomed = None if zoom else ZoomSettings(enabled=False)
    person = None if complete else PersonSettings(enabled=False)
    mask = prior.predict_subjects(display, size=(lr_h, lr_w), zoom=zoomed, person=person)
    return mask, time.perf_counter() - started


def _complete_prior(name: str, display: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """A steadied prior ``mask`` with this frame's subjects completed by the person network (the
    ``people`` prior; ``mask`` itself for the others), and the seconds it took.  The median over
    neighbouring frames keeps what most of them found: a head the person network finds on this
    frame is added to this frame."""
    prior = load_prior(name)
    assert prior is not None
    started = time.perf_counter()
    return prior.complete_subjects(display, mask), time.perf_counter() - started


def matte_plate(
    model: MattingModel,
    plate: Plate,
    params: MatteParams,
    batch_size: int | None = None,
    temporal: TemporalState | None = None,
    subject: carry.CarriedSubject | None = None,
    steady_prior: tuple[np.ndarray, float] | None = None,
    clean: cleanplate.CleanPlate | None = None,
) -> Matte:
    """Matte one decoded plate: LR ensemble → upsampled matte + uncertainty → foreground.

    ``temporal`` carries the noise and the previous frame's matte through a shot (frames in
    order); without it the plate is matted as the first frame of a shot.  ``subject`` is the
    guide carried to this frame from the keyframes (:mod:`vfxmatte.carry`); a keyframe run
    needs it on every frame.  ``steady_prior`` is this frame's prior mask at the LR size,
    steadied over its neighbours (:mod:`vfxmatte.steady`), with the seconds it took: used
    instead of the frame's own prior on trimap-free runs.  ``clean`` is the shot's clean plate
    (:mod:`vfxmatte.cleanplate`, trimap-free runs; tracked where the camera moves): where this frame still
    shows it outside the prior's contour is background.
    """
    linear, linear_space, lr_h, lr_w = _linear_view(plate, params, model)
    height, width = linear.shape[:2]
    network_image = color.to_network(resize(linear, lr_h, lr_w), linear_space)
    # What the optical flow of the prior-jump check sees (uint8 RGB at the LR size); only with the check.
    picture = (
        np.asarray(np.round(np.clip(network_image, 0.0, 1.0) * 255.0), dtype=np.uint8)
        if params.prior_jump_iou > 0
        else None
    )
    mode = hr.resolve_mode(params.hr, model)
    # The plate display-referred at full resolution: what the prior and the refine see.
    needs_display = mode in ("pymatting", "diffusion") or params.prior != "none"
    display = color.to_network(linear, linear_space) if needs_display else linear
    temporal = temporal or temporal_state(params)
    member = (int(model.unet.config.out_channels), lr_h // model.latent_factor, lr_w // model.latent_factor)
    noise = temporal.noise(plate.frame, (params.seeds, *member))
    start: torch.Tensor | None = None  # pure noise unless a guide or the prior gives a start
    strength = 1.0
    spatial: guidance.Guide | None = None
    prior_seconds = 0.0
    prior_mask: np.ndarray | None = None  # the prior's subject, for the uncertainty pass
    subject_doubt: np.ndarray | None = None
    if subject is not None:
        # A keyframe's subject carried here: a trimap whose band follows the carried edge.
        subject_doubt = subject.full_doubt(height, width)
        spatial = subject.to_guide(height, width, doubt=subject_doubt)
    elif params.keyframes:
        raise FrameError(f"{plate.path}: no keyframe guide was carried to frame {plate.frame}")
    elif params.guide:
        guide_path = guidance.guide_frames(params.guide, [plate.frame])[plate.frame]
        spatial = guidance.load_guide(
            guide_path, params.guide_kind, plate.data_window, plate.display_window, params.guide_channel
        )
        plate.warnings.extend(spatial.warnings)
    if spatial is not None:
        if spatial.kind == "mask":
            # A coarse mask says which object (a roto shape, a garbage matte); the prior, kept
            # inside it, finds that object's shape.  Sampling starts from the result noised to
            # prior_strength, the mechanism of the trimap-free start.
            coarse = np.clip(resize(spatial.values, lr_h, lr_w), 0.0, 1.0)
            if params.prior != "none":
                found, prior_seconds = _run_prior(params.prior, display, lr_h, lr_w, zoom=False)
                coarse = prior_mask = guidance.prior_within_mask(found, coarse)
            start, strength = mask_latents(model, coarse, params.seeds), params.prior_strength
        elif not spatial.unknown.all():
            # Eq. 8: the guide's known pixels seed the start point.
            start, strength = guidance.guided_start(model, spatial, lr_h, lr_w, params.seeds), 1.0
    if params.uses_prior and start is None and spatial is None:
        # No guide: the salient-object prior's coarse mask, noised to
        # ``prior_strength`` of the schedule, is where sampling starts (SDEdit-style, as Eq. 6/8).
        if steady_prior is not None and steady_prior[0].shape == (lr_h, lr_w):
            mask, prior_seconds = steady_prior
            mask, completing = _complete_prior(params.prior, display, mask)
            prior_seconds += completing
        else:
            mask, prior_seconds = _run_prior(params.prior, display, lr_h, lr_w)
        # The previous matte is moved by optical flow only for the check (off by default).
        previous = temporal.previous_matte(plate.frame, mask.shape, picture) if params.prior_jump_iou > 0 else None
        if previous is not None:
            agreement = mask_iou(mask, previous)
            jumped = agreement < params.prior_jump_iou
            if temporal.follow(jumped):
                # A per-frame prior can jump to another object; the shot's subject does not.
                plate.warnings.append(
                    f"{plate.path}: the prior's subject jumped (IoU {agreement:.2f} with the previous frame's "
                    "matte); followed the previous frame instead"
                )
                mask = previous
            elif jumped:
                plate.warnings.append(
                    f"{plate.path}: the prior's subject differs from the previous frame's matte (IoU "
                    f"{agreement:.2f}) after {temporal_module.MAX_FOLLOW} frames that followed it; the prior is taken"
                )
        prior_mask = mask
        start, strength = mask_latents(model, mask, params.seeds), params.prior_strength
    ensemble = lr_ensemble(
        model,
        network_image,
        steps=params.steps,
        seeds=params.seeds,
        seed=params.seed,
        batch_size=batch_size,
        prompt=params.prompt,
        noise=noise,
        start=start,
        strength=strength,
    )
    temporal.update(plate.frame, ensemble.mean, picture)
    lr_mean, lr_std = ensemble.mean, ensemble.std
    known: np.ndarray | None = None
    known_subject: np.ndarray | None = None
    plate_subject: np.ndarray | None = None
    if clean is not None and prior_mask is not None and spatial is None:
        match = cleanplate.background_match(display, clean, prior_mask, frame=plate.frame)
        if match.refused is not None:
            plate.warnings.append(f"{plate.path}: {match.refused}; matted without it")
        known, plate_subject = match.known, match.subject
        if params.clean_plate == "fill":
            known_subject = plate_subject
    refined = hr.refine(
        mode,
        model,
        linear,
        display,
        lr_mean,
        lr_std,
        steps=params.steps,
        seed=params.seed,
        lr_size=params.lr_size,
        want_trimap=params.write_trimap,
        guide_trimap=guidance.refine_trimap(spatial, params.mask_band) if spatial is not None else None,
        scribbles=(spatial.known, spatial.values) if spatial is not None and spatial.kind == "scribble" else None,
        # Trimap-free: the prior's confident core is kept, only its edge band is solved (hr.prior_band_trimap).
        prior=prior_mask if spatial is None else None,
        known_background=known,
        known_subject=known_subject,
    )
    if spatial is not None:
        refined.alpha = guidance.apply_to_matte(refined.alpha, spatial, params.clamp_known)
    missed: float | None = None
    if plate_subject is not None and known_subject is None:  # what fill would have filled
        missed = float((plate_subject & (refined.alpha < 0.5)).mean())
    doubt = estimate_uncertainty(lr_mean, lr_std, refined.alpha, prior=prior_mask, subject_doubt=subject_doubt)
    foreground = refined.foreground if refined.foreground is not None else estimate_foreground(linear, refined.alpha)
    return Matte(
        alpha=refined.alpha,
        uncertainty=doubt.map,
        foreground=foreground,
        colorspace=linear_space,
        score=doubt.score,
        trimap=refined.trimap if params.write_trimap else None,
        prior_seconds=prior_seconds,
        keyframe_doubt=subject.score() if subject is not None else None,
        picture=refined.picture,
        clean_plate=refined.known_share,
        clean_plate_subject=refined.subject_share,
        clean_plate_missed=missed,
    )


# -- shots ---------------------------------------------------------------------------


@dataclass
class Shot:
    """An input resolved to the frames to matte and a way to read them."""

    description: str
    stem: str
    frames: list[int]
    missing: list[int]
    # plates(skip): the frames in order, decoded, or as ints where skipped.
    plates: Callable[[set[int]], Iterator[Plate | FrameError | int]]
    input_paths: dict[int, str]
    padding: int = 4
    is_movie: bool = False
    # (width, height, display width, display height) every frame must have: the first requested
    # frame's, from its header, so a resumed run (first frames skipped) checks against the same.
    reference_size: tuple[int, int, int, int] | None = None
    # The frame before a frame in the input (None for the first): the prior-jump check follows its matte.
    predecessor: Callable[[int], int | None] = lambda frame: frame - 1
    # Every frame of the input in order, requested or not: a keyframe guide is carried over them.
    ordered: list[int] = field(default_factory=list)


def open_shot(input_path: str, requested: list[int] | None, params: MatteParams, options: RunOptions) -> Shot:
    """Resolve an input (sequence pattern, single image or movie) and the frames to do."""
    from vfxmatte.errors import MovieDecodeError
    from vfxmatte.io.movie import is_movie, probe_movie, read_movie

    if is_movie(input_path):
        info = probe_movie(input_path, max_pixels=options.max_pixels)
        declared = info.declared_frames
        frames = list(range(options.start_frame, options.start_frame + declared)) if declared else []
        if requested is not None:
            frames = requested
        wanted = set(requested) if requested is not None else None
        colorspace = params.colorspace or color.NETWORK_SPACE

        def movie_plates(skip: set[int]) -> Iterator[Plate | FrameError | int]:
            # A movie decodes sequentially: skipped frames are decoded and dropped.
            try:
                movie = read_movie(
                    input_path, start_frame=options.start_frame, frames=wanted, colorspace=colorspace,
                    max_pixels=options.max_pixels,
                )
                for plate in movie:
                    yield plate.frame if plate.frame in skip else plate
            except MovieDecodeError as exc:
                yield exc

        return Shot(
            description=input_path,
            stem=Path(input_path).stem,
            frames=frames,
            missing=[],
            plates=movie_plates,
            input_paths={},
            is_movie=True,
            predecessor=lambda frame: frame - 1 if frame > options.start_frame else None,
            ordered=sorted(set(range(options.start_frame, options.start_frame + (declared or 0))) | set(frames)),
        )

    sequence = FrameSequence.parse(input_path)
    on_disk = sequence.frames_on_disk()
    if not on_disk and requested is None:
        what = "file does not exist" if sequence.is_single else "no frames match the pattern"
        raise InputError(f"{input_path}: {what}")
    if requested is None:
        # The whole shot: first to last frame on disk, so holes inside it are reported.
        requested = list(range(on_disk[0], on_disk[-1] + 1)) if not sequence.is_single else on_disk
    present = set(on_disk)
    frames = [f for f in requested if f in present]
    missing = [f for f in requested if f not in present]
    if not frames:
        raise InputError(f"{input_path}: none of the requested frames {format_ranges(requested)} exist")

    def sequence_plates(skip: set[int]) -> Iterator[Plate | FrameError | int]:
        for frame in sorted(frames):
            if frame in skip:
                yield frame
                continue
            try:
                yield read_plate(
                    sequence.path(frame),
                    frame,
                    layer=params.layer,
                    view=params.view,
                    colorspace=params.colorspace,
                    max_pixels=options.max_pixels,
                )
            except FrameError as exc:
                exc.frame = frame
                yield exc

    try:
        dw, disp = read_windows(sequence.path(frames[0]), frames[0], layer=params.layer, view=params.view)
        reference: tuple[int, int, int, int] | None = (dw.width, dw.height, disp.width, disp.height)
    except FrameError:
        reference = None  # that frame fails on its own; the first readable one sets the size
    return Shot(
        description=sequence.pattern,
        stem=sequence_stem(sequence),
        frames=frames,
        missing=missing,
        plates=sequence_plates,
        input_paths={f: sequence.path(f) for f in frames},
        padding=sequence.padding or 4,
        reference_size=reference,
        predecessor=lambda frame: on_disk[i - 1] if (i := bisect.bisect_left(on_disk, frame)) > 0 else None,
        ordered=on_disk,
    )


def _plan_outputs(
    shot: Shot, output: str, params_json: str, overwrite: bool
) -> tuple[FrameSequence, set[int]]:
    """Resolve the output pattern, refuse writes over inputs, find frames to skip (resume)."""
    out_seq = output_sequence(output, FrameSequence.parse(shot.description) if not shot.is_movie else None, shot.stem)
    if out_seq.is_single and len(shot.frames) > 1:
        raise UsageError(f"{output}: {len(shot.frames)} frames need an output pattern with #### or a directory")
    inputs = {os.path.realpath(p) for p in shot.input_paths.values()}
    for frame in shot.frames:
        target = output_path(out_seq, frame)
        if os.path.realpath(target) in inputs:
            raise OutputError(f"{target}: output would overwrite an input frame; choose another output")
    skip: set[int] = set()
    conflicts: list[str] = []
    existing = out_seq.frames_on_disk() if os.path.isdir(out_seq.directory) else []
    for frame in shot.frames or existing:
        target = output_path(out_seq, frame)
        if not os.path.exists(target):
            continue
        if read_header_attribute(target, "vfxmatte:params") == params_json:
            skip.add(frame)
        elif not overwrite:
            conflicts.append(target)
    if conflicts:
        raise OutputError(
            f"{conflicts[0]}: {len(conflicts)} output frame(s) already exist with other parameters "
            "or from another vfxmatte build; pass --overwrite to replace them"
        )
    return out_seq, skip


def load_run_model(model: str | None = None, device: str = "auto") -> MattingModel:
    """Load a model folder (None: the bundled one) the way a run uses it: half precision on CUDA."""
    torch_device = resolve_device(device)
    dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
    return load_model(model, device=torch_device, dtype=dtype)


def output_path(out_seq: FrameSequence, frame: int) -> str:
    """Where ``frame`` is written: its name in the pattern, or the one named output file."""
    return out_seq.single_path if out_seq.single_path is not None else out_seq.path(frame)


def matte_shot(
    input_path: str,
    output: str,
    params: MatteParams,
    options: RunOptions | None = None,
    frames: list[int] | None = None,
    model: MattingModel | str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> ShotSummary:
    """Matte every requested frame of a shot and write one EXR per frame.

    Failures of single frames are recorded, not raised; bad usage, unreadable inputs
    and refused outputs raise.  Ctrl-C finishes nothing half-way: the frame being
    written is discarded and the summary is marked interrupted.
    """
    options = options or RunOptions()
    started = time.perf_counter()
    shot = open_shot(input_path, frames, params, options)
    if not isinstance(model, MattingModel):
        model = load_run_model(model, options.device)
    params = replace(params, hr=hr.resolve_mode(params.hr, model))  # the header records what ran
    plan: carry.GuidePlan | None = None
    if params.guide:
        # Guide files for every frame, one for all, or keyframes; bad ones fail before any work.
        plan = carry.plan_guides(params.guide, params.guide_frame, shot.frames, shot.ordered or shot.frames)
        params = replace(params, keyframes=tuple(plan.keyframes))
    params_json = params.header_json(describe_run(model, params))
    movie_out = _plan_movie_output(input_path, output, options)
    if movie_out:
        out_seq, skip = FrameSequence.parse(os.path.abspath(output)), set[int]()
    else:
        out_seq, skip = _plan_outputs(shot, output, params_json, options.overwrite)
    summary = ShotSummary(
        input=shot.description,
        output=out_seq.pattern,
        model=describe_run(model, params),
        keyframes=list(params.keyframes),
    )
    writer: MovieWriter | None = None
    # A killed run's half-written frames are hidden temp files; a resumed run clears them.
    for stale in remove_stale_temporaries([output_path(out_seq, f) for f in shot.frames]):
        summary.notes.append(f"removed a stale temporary file: {stale}")
    if shot.missing:
        summary.notes.append(f"missing on disk: frames {format_ranges(shot.missing)}")

    def record(result: FrameResult) -> None:
        summary.results.append(result)
        if on_frame is not None:
            on_frame(result)

    reference = shot.reference_size
    temporal = temporal_state(params, shot.predecessor)
    to_do = {f for f in shot.frames if f not in skip}
    carried: dict[int, carry.CarriedSubject] = {}
    if plan is not None and plan.mode == "keyframes" and to_do:
        # Carry the keyframes over the frames between them first (read, not written): each frame's
        # guide depends only on the keyframes around it, so chunks and resumes carry the same.
        result = carry.carry_shot(
            plan, params.guide_kind, params.guide_channel, to_do, shot.ordered or shot.frames,
            _plate_reader(input_path, params, options),
        )
        carried, summary.carry_seconds = result.subjects, result.seconds
        summary.notes.extend(result.notes)
    steadied = _steady_priors(input_path, shot, params, options, model, to_do)
    clean = _clean_plate(input_path, shot, params, options, model, to_do, summary.notes)
    missed = summary.missed  # frame: the share the clean plate calls subject and the matte leaves out
    if on_start is not None:
        on_start(len(shot.frames) + len(shot.missing))
    for frame in shot.missing:
        record(FrameResult(frame, "failed", error=f"{shot.description}: frame {frame} is missing on disk"))
    movie_lock: FrameLock | None = None
    if movie_out:
        movie_lock = FrameLock(output)
        if not movie_lock.acquire(0.0):
            raise OutputError(f"{output}: being written by {movie_lock.holder()}; wait for that run to finish")
    try:
        for item in shot.plates(skip):
            frame_started = time.perf_counter()
            if isinstance(item, int):
                record(FrameResult(item, "skipped", path=output_path(out_seq, item)))
                continue
            if isinstance(item, FrameError):
                record(FrameResult(item.frame or 0, "failed", error=str(item), traceback=_traceback(item)))
                continue
            plate = item
            dw, disp = plate.data_window, plate.display_window
            size = (dw.width, dw.height, disp.width, disp.height)
            if reference is None:
                reference = size
            elif size != reference:
                record(
                    FrameResult(
                        plate.frame,
                        "failed",
                        error=f"{plate.path}: resolution {size[0]}x{size[1]} (display {size[2]}x{size[3]}) differs "
                        f"from the shot's {reference[0]}x{reference[1]} (display {reference[2]}x{reference[3]})",
                    )
                )
                continue
            target = output if movie_out else output_path(out_seq, plate.frame)
            frame_lock: FrameLock | None = None
            if not movie_out:
                claim = _claim_frame(target, plate.frame, params_json, options, summary.notes)
                if isinstance(claim, FrameResult):
                    record(claim)
                    continue
                frame_lock = claim
            try:
                prior = steadied(plate.frame) if steadied is not None else None
                matte = matte_plate(
                    model, plate, params, options.batch_size, temporal, carried.get(plate.frame), prior, clean
                )
                if movie_out:
                    if writer is None:
                        kind: MovieKind = "preview" if options.preview else "prores"
                        writer = MovieWriter(output, kind, plate.fps, plate.timecode)
                    _write_movie_frame(writer, matte)
                else:
                    write_matte(target, plate, matte, model, params, params_json)
                if matte.clean_plate_missed is not None and matte.clean_plate_missed > cleanplate.MISSED_NOTE:
                    missed[plate.frame] = matte.clean_plate_missed
            except FrameError as exc:
                record(
                    FrameResult(
                        plate.frame, "failed", error=str(exc), warnings=plate.warnings, traceback=_traceback(exc)
                    )
                )
                continue
            finally:
                if frame_lock is not None:
                    frame_lock.release()
            record(
                FrameResult(
                    plate.frame,
                    "written",
                    path=target,
                    uncertainty=matte.score,
                    seconds=time.perf_counter() - frame_started,
                    prior_seconds=matte.prior_seconds,
                    keyframe_doubt=matte.keyframe_doubt,
                    warnings=plate.warnings,
                )
            )
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        try:
            if writer is not None and (summary.interrupted or sys.exc_info()[0] is not None):
                writer.abort()
            if writer is not None and not summary.interrupted and sys.exc_info()[0] is None:
                writer.close()
        finally:
            if movie_lock is not None:
                movie_lock.release()
    if not summary.interrupted:
        # A movie yields nothing for requested frames past its end (or past damage).
        done = {r.frame for r in summary.results}
        for frame in shot.frames:
            if frame not in done:
                record(FrameResult(frame, "failed", error=f"{shot.description}: frame {frame} was not decoded"))
    if missed:
        summary.notes.append(
            f"the clean plate sees a subject the matte leaves out (a head or hat lost against a background of "
            f"its own colour?) on frames {format_ranges(missed)}, up to {max(missed.values()):.1%} of the frame: "
            "look at them, or matte them with --clean-plate fill"
        )
    if writer is not None and not summary.interrupted and summary.frames("failed"):
        summary.notes.append(f"{output}: holds the {writer.frames} matted frame(s) only; failed frames are left out")
    summary.results.sort(key=lambda r: r.frame)
    summary.seconds = time.perf_counter() - started
    return summary


def _claim_frame(
    target: str, frame: int, params_json: str, options: RunOptions, notes: list[str]
) -> FrameLock | FrameResult:
    """Lock ``target`` for this run, or say why the frame is not this run's to write.

    Another run on the same output holds the lock while it mattes and writes that frame: wait
    for it (up to ``options.lock_timeout``), then look again, since the frame may now be done.
    """
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the output directory: {exc.strerror}") from exc
    lock = FrameLock(target)
    if not lock.acquire(0.0):
        holder = lock.holder()
        if not lock.acquire(options.lock_timeout):
            return FrameResult(
                frame, "failed", error=f"{target}: still being written by {holder} after {options.lock_timeout:.0f} s"
            )
        notes.append(f"frame {frame}: waited for {holder}, which was writing it")
    if os.path.exists(target):
        existing = read_header_attribute(target, "vfxmatte:params")
        if existing == params_json:
            lock.release()
            return FrameResult(frame, "skipped", path=target)
        if not options.overwrite:
            lock.release()
            return FrameResult(
                frame,
                "failed",
                error=f"{target}: written meanwhile by another run with other parameters "
                "or another vfxmatte build; pass --overwrite to replace it",
            )
    return lock


def plan_shot_guides(input_path: str, shot: Shot, params: MatteParams, options: RunOptions) -> carry.GuidePlan:
    """What a run's ``--guide`` means (:func:`vfxmatte.carry.plan_guides`), every keyframe checked
    against its plate: what a chunked run does once before its chunks start."""
    assert params.guide
    plan = carry.plan_guides(params.guide, params.guide_frame, shot.frames, shot.ordered or shot.frames)
    carry.check_keyframes(plan, params.guide_kind, params.guide_channel, _plate_reader(input_path, params, options))
    return plan


def _linear_view(plate: Plate, params: MatteParams, model: MattingModel) -> tuple[np.ndarray, str, int, int]:
    """The plate in its linear space (and that space's name), and the run's LR size (height, width)."""
    linear_space = color.linear_space(plate.colorspace)
    linear = color.convert(plate.rgb, plate.colorspace, linear_space)
    height, width = linear.shape[:2]
    lr_h, lr_w = lr_shape(height, width, min(params.lr_size, max(height, width)), model.size_multiple)
    return linear, linear_space, lr_h, lr_w


def _display_view(plate: Plate, params: MatteParams, model: MattingModel) -> tuple[np.ndarray, int, int]:
    """The plate display-referred (what the prior sees) and the run's LR size (height, width): what
    the passes that read ahead of the matting (the steadied prior, the clean plate) need of a frame."""
    linear, linear_space, lr_h, lr_w = _linear_view(plate, params, model)
    return color.to_network(linear, linear_space), lr_h, lr_w


def _steady_priors(
    input_path: str, shot: Shot, params: MatteParams, options: RunOptions, model: MattingModel, to_do: set[int]
) -> Callable[[int], tuple[np.ndarray, float] | None] | None:
    """With ``--prior-window`` on a trimap-free run: a lookup of each frame's steadied prior mask
    (:mod:`vfxmatte.steady`), fed by a second pass over the input that reads ``prior_window``
    frames ahead of the matting.  None where the run has no such prior."""
    radius = params.prior_window
    if radius <= 0 or params.prior == "none" or params.guide or not to_do:
        return None
    ordered = shot.ordered or shot.frames
    frames = steady.frames_to_read(to_do, ordered, radius)

    def seen() -> Iterator[steady.Seen | int]:
        for item in _plate_reader(input_path, params, options)(frames):
            if isinstance(item, int):
                yield item
                continue
            display, lr_h, lr_w = _display_view(item, params, model)
            mask, _ = _run_prior(params.prior, display, lr_h, lr_w, complete=False)
            yield steady.Seen(item.frame, mask, carry.carry_image(item))

    masks = steady.steady_masks(seen(), sorted(to_do), ordered, radius)
    ahead: list[tuple[int, np.ndarray]] = []

    def lookup(frame: int) -> tuple[np.ndarray, float] | None:
        started = time.perf_counter()
        while not ahead or ahead[-1][0] < frame:
            item = next(masks, None)
            if item is None:
                return None
            ahead.append(item)
        while ahead and ahead[0][0] < frame:
            ahead.pop(0)
        if ahead and ahead[0][0] == frame:
            return ahead.pop(0)[1], time.perf_counter() - started
        return None

    return lookup


def _clean_plate(
    input_path: str,
    shot: Shot,
    params: MatteParams,
    options: RunOptions,
    model: MattingModel,
    to_do: set[int],
    notes: list[str],
) -> cleanplate.CleanPlate | None:
    """A trimap-free run's clean plate (:mod:`vfxmatte.cleanplate`), gathered from frames spread
    over the whole input (so every chunk of a shot gathers the same), each with its prior's
    subjects left out, and tracked where the camera moves; None, with a note saying why, where
    the shot gives none."""
    if params.clean_plate == "off" or params.prior == "none" or params.guide or not to_do:
        return None
    settings = cleanplate.SETTINGS
    ordered = shot.ordered or shot.frames
    if len(ordered) < settings.min_seen:  # a still or a very short clip: nothing to gather, nothing to say
        return None
    frames = cleanplate.sample_frames(ordered, settings.samples)
    key = _plate_key(input_path, frames, params, options, model, settings)
    with _PLATES_LOCK:
        known = _PLATES.get(key)
        if known is not None:
            _PLATES.move_to_end(key)
    if known is None:
        known = _gather_plate(input_path, params, options, model, frames, settings)
        with _PLATES_LOCK:
            _PLATES[key] = known
            while len(_PLATES) > _PLATES_KEPT:
                _PLATES.popitem(last=False)
    if isinstance(known, str):
        notes.append(f"no clean plate: {known}")
        return None
    notes.append(known.describe())
    return known


#: The clean plates this process gathered, newest last: the chunks of a flow run one after another
#: in one worker process, and each would otherwise read and look at the same samples again (8–9 s
#: a chunk at 1920×1080 on the CPU).  Keyed by everything the plate depends on, the sample files'
#: sizes and times included, so a changed input gathers afresh.
_PLATES: OrderedDict[str, cleanplate.CleanPlate | str] = OrderedDict()
_PLATES_KEPT = 2
_PLATES_LOCK = threading.Lock()


def _plate_key(
    input_path: str,
    frames: list[int],
    params: MatteParams,
    options: RunOptions,
    model: MattingModel,
    settings: cleanplate.CleanPlateSettings,
) -> str:
    """What a shot's clean plate depends on, as one string."""
    paths = open_shot(input_path, frames, params, options).input_paths  # the samples, in the chunk or not
    sources = []
    for path in sorted({paths.get(frame, input_path) for frame in frames}):
        try:
            stat = os.stat(path)
            sources.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            sources.append((os.path.abspath(path), -1, -1))
    return json.dumps(
        {
            "input": os.path.abspath(input_path), "frames": frames, "sources": sources, "params": asdict(params),
            "start_frame": options.start_frame, "max_pixels": options.max_pixels, "model": model.sha256,
            "size_multiple": model.size_multiple, "prior": PRIOR_SHA256, "settings": repr(settings),
        },
        sort_keys=True,
        default=str,
    )  # fmt: skip


def _gather_plate(
    input_path: str,
    params: MatteParams,
    options: RunOptions,
    model: MattingModel,
    frames: list[int],
    settings: cleanplate.CleanPlateSettings,
) -> cleanplate.CleanPlate | str:
    """The clean plate of ``frames`` of the input (:func:`_clean_plate`), or why there is none."""
    read: list[tuple[int, np.ndarray, int, int]] = []
    for item in _plate_reader(input_path, params, options)(frames):
        if isinstance(item, int):
            continue
        read.append((item.frame, *_display_view(item, params, model)))
    moving = cleanplate.camera_moves([display for _, display, _, _ in read], settings)
    if moving is not None and not settings.track:  # no prior spent on frames that cannot give a plate
        return moving

    def samples() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for frame, display, lr_h, lr_w in read:
            mask, _ = _run_prior(params.prior, display, lr_h, lr_w, zoom=False, complete=False)
            yield frame, display, mask

    return cleanplate.gather(samples(), settings, moving=moving is not None)


def _plate_reader(
    input_path: str, params: MatteParams, options: RunOptions
) -> Callable[[list[int]], Iterator[Plate | int]]:
    """Read chosen frames of the input in order (for the keyframe carry); an unreadable frame
    comes back as its number."""

    def read(frames: list[int]) -> Iterator[Plate | int]:
        if not frames:
            return
        shot = open_shot(input_path, frames, params, options)
        for item in shot.plates(set()):
            if isinstance(item, FrameError):
                if item.frame is not None:
                    yield item.frame
                continue
            yield item

    return read


def _plan_movie_output(input_path: str, output: str, options: RunOptions) -> bool:
    """True when ``output`` names a movie; refuses bad combinations before any work."""
    from vfxmatte.io.movie import is_movie

    if not is_movie(output) or os.path.isdir(output):
        if options.preview:
            raise UsageError(f"{output}: --preview writes a movie; name a .mov, .mp4 or .mkv output")
        return False
    ext = os.path.splitext(output)[1].lower()
    allowed = (".mov", ".mp4", ".mkv", ".m4v") if options.preview else (".mov",)
    if ext not in allowed:
        what = "an H.264 preview" if options.preview else "ProRes 4444 with alpha (or --preview for H.264)"
        raise UsageError(f"{output}: {ext} cannot hold {what}; use {' or '.join(allowed)}")
    if os.path.realpath(output) == os.path.realpath(input_path):
        raise OutputError(f"{output}: output would overwrite the input; choose another output")
    if os.path.exists(output) and not options.overwrite:
        raise OutputError(f"{output}: already exists; pass --overwrite to replace it")
    return True


def _write_movie_frame(writer: MovieWriter, matte: Matte) -> None:
    display = color.to_network(matte.foreground, matte.colorspace)
    if writer.kind == "preview":
        writer.write(preview_picture(display, matte.alpha, matte.uncertainty))
    else:
        writer.write(display, matte.alpha)


def write_matte(
    path: str, plate: Plate, matte: Matte, model: MattingModel, params: MatteParams, params_json: str
) -> None:
    """Write the output EXR of DESIGN §5 (premultiplied RGBA + ``uncertainty.Y``)."""
    premultiplied = matte.premultiplied
    channels = {
        "R": premultiplied[..., 0],
        "G": premultiplied[..., 1],
        "B": premultiplied[..., 2],
        "A": matte.alpha,
        "uncertainty.Y": matte.uncertainty,
    }
    if matte.trimap is not None:
        channels["trimap.Y"] = matte.trimap
    attributes: dict[str, str | float | int] = {
        "vfxmatte:version": __version__,
        "vfxmatte:model": describe_run(model, params),
        "vfxmatte:params": params_json,
        "vfxmatte:seed": params.seed,
        "vfxmatte:uncertainty": float(matte.score),
        "vfxmatte:colorspace": matte.colorspace,
        "vfxmatte:source": os.path.basename(plate.path),
    }
    if matte.keyframe_doubt is not None:
        attributes["vfxmatte:keyframe_doubt"] = float(matte.keyframe_doubt)
    if matte.clean_plate is not None:
        attributes["vfxmatte:clean_plate"] = float(matte.clean_plate)
    if matte.clean_plate_subject is not None:
        attributes["vfxmatte:clean_plate_subject"] = float(matte.clean_plate_subject)
    if matte.clean_plate_missed is not None:
        attributes["vfxmatte:clean_plate_missed"] = float(matte.clean_plate_missed)
    if matte.picture is not None:
        # The picture inside the black bars, as an EXR box: xMin yMin xMax yMax (inclusive), in
        # the file's pixel coordinates.
        top, bottom, left, right = matte.picture
        x, y = plate.data_window.x, plate.data_window.y
        attributes["vfxmatte:picture"] = f"{x + left} {y + top} {x + right - 1} {y + bottom - 1}"
    write_exr(path, plate, channels, attributes)
