"""Spatial guidance without retraining: trimaps, coarse masks and scribbles (DESIGN §1, Eq. 8).

Conventions of a guide image (one channel: an EXR's alpha or the channel ``--guide-channel``
names, else the luminance of a PNG/other image; 8/16-bit images are read as 0–1):

``trimap``
    0 background, 1 foreground, 0.5 unknown; values within ``TOLERANCE`` of 0 or 1 count as
    known, everything else as unknown (so 102/255 or 128/255 greys both work).
``mask``
    a coarse binary or soft mask of the subject.  Sampling starts from the salient-object
    prior kept inside the mask (:func:`prior_within_mask`); the full-resolution refine solves
    the trimap :func:`mask_trimap` makes of it (the edge sought in a band mostly inside the
    mask's edge); the mask's grown support then limits the final matte (a garbage matte: a
    mask that excludes an object removes it).
``scribble``
    white (≥ 1 − tolerance) foreground, black (≤ tolerance) background; mid-grey, or
    transparent where the image has an alpha, is unknown (unscribbled).
``auto``
    scribble when the image has transparent pixels, trimap when its values sit at 0/0.5/1
    with some grey, otherwise mask.

The start point is Eq. 8, ``z_T = sqrt((1-σ_T)/σ_T)·ε + (1-m_unknown)·c_S`` with ``c_S`` the
guide encoded by the model's VAE — :func:`vfxmatte.sampling.noised_start` with
``clean = (1-m_unknown)·c_S`` at strength 1.  Guides at another resolution or with another
data window are registered to the plate's display window, then cropped to its data window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vfxmatte.config import MatteParams
from vfxmatte.errors import InputError, UsageError
from vfxmatte.io.frames import Window
from vfxmatte.model.core import MattingModel
from vfxmatte.sampling import encode_image, resize

GUIDE_KINDS = ("trimap", "mask", "scribble", "auto")
TOLERANCE = 0.1


@dataclass
class Guide:
    """A guide registered to a plate's data window and interpreted."""

    kind: str  # trimap | mask | scribble (resolved)
    values: np.ndarray  # (H, W) in [0, 1]: c_S before encoding
    unknown: np.ndarray  # (H, W) bool: m_unknown
    warnings: list[str]

    @property
    def known(self) -> np.ndarray:
        return ~self.unknown


def read_guide_image(path: str, channel: str | None = None) -> tuple[np.ndarray, np.ndarray | None, Window, Window]:
    """One guide channel (H, W) in [0, 1], its opacity (or None), data and display window."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"{path}: cannot read the guide: {' '.join(oiio.geterror().split())[:200] or 'unreadable'}")
    try:
        spec = inp.spec()
        if spec.width <= 0 or spec.height <= 0 or spec.nchannels <= 0:
            raise InputError(f"{path}: the guide image is empty")
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None:
            raise InputError(f"{path}: cannot read the guide's pixels: {' '.join(inp.geterror().split())[:200]}")
        data = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
        names = list(spec.channelnames)
        alpha_name = next((n for n in ("A", "a", "alpha", "Alpha") if n in names), None)
        if channel is not None:
            if channel not in names:
                raise InputError(f"{path}: the guide has no channel {channel!r} (has {', '.join(names)})")
            values, opacity = data[..., names.index(channel)], None
        elif path.lower().endswith(".exr") and alpha_name is not None:
            values, opacity = data[..., names.index(alpha_name)], None  # a Roto render: its alpha is the guide
        else:
            colour = [i for i, n in enumerate(names) if n != alpha_name][:3]
            values = data[..., colour].mean(axis=2) if colour else data[..., 0]
            opacity = data[..., names.index(alpha_name)] if alpha_name is not None else None
        data_window = Window(spec.x, spec.y, spec.width, spec.height)
        display = Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    finally:
        inp.close()
    values = np.nan_to_num(np.clip(values, 0.0, 1.0)).astype(np.float32)
    return values, opacity, data_window, display


def register(
    values: np.ndarray, data: Window, display: Window, plate_data: Window, plate_display: Window
) -> np.ndarray:
    """Place a guide on the plate's data window via the two display windows.

    The guide's display window is scaled onto the plate's; pixels outside the guide's data
    window are 0 (background / unknown per the kind), as an EXR reader would show them.
    """
    full = np.zeros((display.height, display.width), dtype=np.float32)
    y0, x0 = data.y - display.y, data.x - display.x
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(display.height, y0 + data.height), min(display.width, x0 + data.width)
    if ye > ys and xe > xs:
        full[ys:ye, xs:xe] = values[ys - y0 : ye - y0, xs - x0 : xe - x0]
    if (display.width, display.height) != (plate_display.width, plate_display.height):
        full = _resize_nearest_safe(full, plate_display.height, plate_display.width)
    out = np.zeros((plate_data.height, plate_data.width), dtype=np.float32)
    oy, ox = plate_data.y - plate_display.y, plate_data.x - plate_display.x
    ys, xs = max(0, -oy), max(0, -ox)
    ye = min(plate_data.height, plate_display.height - oy)
    xe = min(plate_data.width, plate_display.width - ox)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = full[oy + ys : oy + ye, ox + xs : ox + xe]
    return out


def _resize_nearest_safe(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize: keeps trimap codes and scribble colours exact."""
    tensor = torch.from_numpy(np.ascontiguousarray(values))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="nearest-exact")[0, 0].numpy()


def guess_kind(values: np.ndarray, opacity: np.ndarray | None) -> str:
    if opacity is not None and bool((opacity < 0.5).any()):
        return "scribble"
    near = (values <= TOLERANCE) | (values >= 1 - TOLERANCE) | (np.abs(values - 0.5) <= TOLERANCE)
    grey = np.abs(values - 0.5) <= TOLERANCE
    if float(near.mean()) > 0.99 and bool(grey.any()) and bool((~grey).any()):
        return "trimap"
    return "mask"


def interpret(values: np.ndarray, kind: str, opacity: np.ndarray | None = None, source: str = "guide") -> Guide:
    """``m_unknown`` and ``c_S`` of a registered guide (conventions in the module docstring)."""
    if kind not in GUIDE_KINDS:
        raise UsageError(f"--guide-kind {kind}: choose one of {', '.join(GUIDE_KINDS)}")
    if kind == "auto":
        kind = guess_kind(values, opacity)
    warnings: list[str] = []
    if kind == "mask":
        return Guide("mask", values.copy(), np.ones(values.shape, dtype=bool), warnings)
    background, foreground = values <= TOLERANCE, values >= 1 - TOLERANCE
    if kind == "scribble" and opacity is not None:
        visible = opacity >= 0.5
        background, foreground = background & visible, foreground & visible
    unknown = ~(background | foreground)
    if kind == "trimap":
        if not unknown.any():
            raise UsageError(f"{source}: the trimap has no unknown (grey) pixels; nothing is left to matte")
        if unknown.all():
            warnings.append(f"{source}: the trimap is all unknown; matting as without a guide")
    elif not (background | foreground).any():
        warnings.append(f"{source}: the scribbles mark nothing (no white or black pixels); matting as without a guide")
    clean = np.where(foreground, 1.0, np.where(background, 0.0, 0.5)).astype(np.float32)
    return Guide(kind, clean, unknown, warnings)


def load_guide(
    path: str,
    kind: str,
    plate_data: Window,
    plate_display: Window,
    channel: str | None = None,
) -> Guide:
    """Read, register and interpret one guide image for a plate."""
    values, opacity, data, display = read_guide_image(path, channel)
    registered = register(values, data, display, plate_data, plate_display)
    opacity_registered = register(opacity, data, display, plate_data, plate_display) if opacity is not None else None
    return interpret(registered, kind, opacity_registered, source=path)


def guide_frames(pattern: str, frames: list[int]) -> dict[int, str]:
    """The guide file for each plate frame: one image for all, or a sequence covering them."""
    from vfxmatte.io.sequence import FrameSequence, format_ranges

    sequence = FrameSequence.parse(pattern)
    if sequence.is_single:
        on_disk = sequence.frames_on_disk()
        if not on_disk:
            raise InputError(f"{pattern}: guide file does not exist")
        return dict.fromkeys(frames, sequence.path(on_disk[0]))  # one image guides every frame
    present = set(sequence.frames_on_disk())
    missing = [f for f in frames if f not in present]
    if missing:
        raise InputError(f"{pattern}: the guide sequence does not cover frames {format_ranges(missing)} of the plate")
    return {f: sequence.path(f) for f in frames}


@torch.no_grad()
def guided_start(model: MattingModel, guide: Guide, lr_h: int, lr_w: int, seeds: int) -> torch.Tensor:
    """``(1 - m_unknown)·c_S`` at LR latent size for each ensemble member (Eq. 8's clean part).

    ``c_S`` is the guide's clean values encoded like an alpha matte (repeated to 3 channels);
    ``m_unknown`` is taken to the latent grid conservatively: a cell is known only where all
    of its pixels are.
    """
    values = resize(guide.values, lr_h, lr_w)
    pixels = torch.from_numpy(np.repeat(values[None], 3, axis=0))[None].float()
    c_s = encode_image(model, pixels).float().cpu()
    unknown = torch.from_numpy(guide.unknown.astype(np.float32))[None, None]
    cells = F.adaptive_max_pool2d(unknown, (c_s.shape[-2], c_s.shape[-1]))
    return ((1.0 - cells) * c_s).expand(seeds, -1, -1, -1).contiguous()


def _support(mask: np.ndarray, radius: int) -> np.ndarray:
    """Where a coarse mask is above the tolerance, grown by ``radius`` px."""
    from scipy import ndimage

    return np.asarray(ndimage.maximum_filter(mask, size=2 * radius + 1) > TOLERANCE)


def prior_within_mask(prior: np.ndarray, mask: np.ndarray, radius: int = 2, found: float = 0.1) -> np.ndarray:
    """The salient-object prior kept inside a coarse mask (grown by ``radius`` px), both at LR.

    The mask says which object, the prior its shape.  Where the prior finds less than ``found``
    of the mask's area inside it (it picked another object, or nothing), the mask itself.
    """
    inside = np.where(_support(mask, radius), prior, 0.0).astype(np.float32)
    area = int(np.count_nonzero(mask > 0.5))
    if area == 0 or np.count_nonzero(inside > 0.5) < found * area:
        return mask.astype(np.float32)
    return inside


#: A coarse mask's edge, as fractions of the frame's long side: the subject's edge is sought up to
#: MASK_INSIDE inside the mask's edge (a garbage matte or a loose roto is drawn around the hair,
#: not through it) and up to MASK_OUTSIDE outside it (a tight roto may clip soft edges).
MASK_INSIDE = MatteParams.mask_band  # 0.06, `--mask-band`
MASK_OUTSIDE = 0.01
MASK_MIN_PX = 4


def _band_px(fraction: float, shape: tuple[int, ...]) -> int:
    """``fraction`` of a frame's long side in px, at least ``MASK_MIN_PX``."""
    return max(MASK_MIN_PX, round(fraction * max(shape[:2])))


def mask_outside_radius(shape: tuple[int, ...]) -> int:
    """How far outside a coarse mask's edge its subject may reach, in px (``MASK_OUTSIDE``, ≥ 4 px)."""
    return _band_px(MASK_OUTSIDE, shape)


def mask_trimap(values: np.ndarray, inside: int | None = None, outside: int | None = None) -> np.ndarray:
    """A trimap (codes 0 / 0.5 / 1) made of a coarse mask (inside where > 0.5).

    Background beyond ``outside`` px of the mask's edge, foreground deeper than ``inside`` px
    inside it, unknown between: the band where the subject's edge is solved, as a drawn
    trimap's grey band is.  Defaults: ``MASK_INSIDE`` / ``MASK_OUTSIDE`` of the long side; the
    inside depth is capped at half the mask's own thickness so a small or thin mask keeps a
    foreground core.  An empty mask is all background; a mask covering the frame all unknown.
    """
    from scipy import ndimage

    inner = values > 0.5
    if inside is None:
        inside = _band_px(MASK_INSIDE, values.shape)
    if outside is None:
        outside = mask_outside_radius(values.shape)
    trimap = np.zeros(values.shape, dtype=np.float32)
    if not inner.any():
        return trimap
    if inner.all():
        trimap[:] = 0.5
        return trimap
    depth = ndimage.distance_transform_edt(inner)
    outer = ndimage.distance_transform_edt(~inner)
    trimap[outer <= outside] = 0.5
    trimap[inner] = 0.5
    trimap[depth > min(float(inside), 0.5 * float(depth.max()))] = 1.0
    return trimap


def refine_trimap(guide: Guide, mask_band: float) -> np.ndarray | None:
    """The trimap the full-resolution refine solves for ``guide``: a drawn trimap as it is, a
    coarse mask's :func:`mask_trimap` with its band reaching ``mask_band`` of the long side
    inside the edge (``--mask-band``); None for scribbles (they only pin their strokes)."""
    if guide.kind == "trimap":
        return np.where(guide.known, guide.values, 0.5).astype(np.float32)
    if guide.kind == "mask":
        return mask_trimap(guide.values, inside=_band_px(mask_band, guide.values.shape))
    return None


def apply_to_matte(alpha: np.ndarray, guide: Guide, clamp_known: bool) -> np.ndarray:
    """Final-matte rules: a mask limits the matte to its support grown by its outside band
    (:func:`mask_outside_radius`); ``--clamp-known`` forces a trimap's / scribble's known
    pixels to their value."""
    out = alpha.copy()
    if guide.kind == "mask":
        out[~_support(guide.values, mask_outside_radius(guide.values.shape))] = 0.0
    elif clamp_known:
        out[guide.known] = guide.values[guide.known]
    return out
