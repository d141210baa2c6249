"""Mattes written as one movie with PyAV: ProRes 4444 with alpha, or an H.264 review preview.

* ``prores`` (any ``-o name.mov``): Apple ProRes 4444 (``prores_ks``, profile 4444,
  ``yuva444p10le``): the foreground *unpremultiplied* (straight alpha, as QuickTime
  expects) and the matte as the alpha channel, display-referred sRGB-encoded Rec.709.
* ``preview`` (``--preview``): H.264 (``libx264``, ``yuv420p``, CRF 18) of the comp over
  a grey checkerboard with the uncertainty as a heat overlay (yellow → red where the
  seed ensemble disagrees).  Odd frame sizes are padded by one edge pixel (4:2:0).

The movie is constant rate: the input's average rate (a variable-rate input's pictures are
written one per frame number at that rate), 24 fps for image sequences without a rate.
Writes are atomic: a hidden temp file in the target directory, renamed on :meth:`close`.
"""

from __future__ import annotations

import os
import uuid
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np

from vfxmatte.errors import OutputError

MovieKind = Literal["prores", "preview"]
#: Uncertainty (std of the ensemble's alphas) shown at full heat in the preview.
HEAT_FULL = 0.2
_CHECKER = 16  # checkerboard square, pixels


def checkerboard(height: int, width: int, size: int = _CHECKER) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    light = ((ys // size + xs // size) % 2).astype(np.float32)
    return np.repeat((0.4 + 0.2 * light)[..., None], 3, axis=2)


def preview_picture(foreground: np.ndarray, alpha: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """Display-referred comp over a checkerboard with the uncertainty as heat, (H, W, 3) in [0, 1]."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    comp = foreground * a + checkerboard(*alpha.shape) * (1.0 - a)
    heat = np.clip(uncertainty / HEAT_FULL, 0.0, 1.0)[..., None]
    colour = np.concatenate([np.ones_like(heat), 1.0 - heat, np.zeros_like(heat)], axis=2)  # yellow → red
    return np.clip(comp * (1.0 - 0.7 * heat) + colour * 0.7 * heat, 0.0, 1.0)


class MovieWriter:
    """Encode frames in order; :meth:`close` renames the temp file onto ``path``."""

    def __init__(
        self, path: str, kind: MovieKind, fps: Fraction | None = None, timecode: str | None = None
    ) -> None:
        self.path, self.kind = path, kind
        self.fps = fps if fps and fps > 0 else Fraction(24)
        self.timecode = timecode
        directory = os.path.dirname(os.path.abspath(path))
        name, ext = os.path.splitext(os.path.basename(path))
        self.tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp{ext}")
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def _open(self, height: int, width: int) -> None:
        try:
            os.makedirs(os.path.dirname(self.tmp), exist_ok=True)
            container = av.open(self.tmp, mode="w", format="mov" if self.kind == "prores" else None)
        except Exception as exc:
            raise OutputError(f"{self.path}: cannot create the movie: {exc}") from exc
        if self.timecode:
            container.metadata["timecode"] = self.timecode
        if self.kind == "prores":
            stream = container.add_stream("prores_ks", rate=self.fps, options={"profile": "4444"})
            stream.pix_fmt = "yuva444p10le"
            stream.codec_context.codec_tag = "ap4h"
        else:
            stream = container.add_stream("libx264", rate=self.fps, options={"crf": "18", "preset": "medium"})
            stream.pix_fmt = "yuv420p"
            height, width = height + height % 2, width + width % 2
        stream.width, stream.height = width, height
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 13, 1  # BT.709, sRGB curve, tv
        self._container, self._stream, self._size = container, stream, (height, width)

    def write(self, picture: np.ndarray, alpha: np.ndarray | None = None) -> None:
        """One display-referred frame (H, W, 3) in [0, 1]; ``alpha`` (H, W) for ProRes 4444."""
        if self._container is None:
            self._open(*picture.shape[:2])
        assert self._size is not None
        height, width = self._size
        if self.kind == "preview":
            pad = ((0, height - picture.shape[0]), (0, width - picture.shape[1]), (0, 0))
            picture = np.pad(picture, pad, mode="edge")
            pixels = (np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        else:
            a = np.ones(picture.shape[:2], np.float32) if alpha is None else alpha
            rgba = np.concatenate([picture, a[..., None]], axis=2)
            pixels = (np.clip(rgba, 0, 1) * 65535 + 0.5).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgba64le")
        frame = frame.reformat(format=self._stream.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except Exception as exc:
            raise OutputError(f"{self.path}: encoding frame {self.frames + 1} failed: {exc}") from exc
        self.frames += 1

    def close(self) -> None:
        """Flush and move the finished movie into place; nothing is left when no frame was written."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.replace(self.tmp, self.path)
        except Exception as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot finish the movie: {exc}") from exc
        finally:
            self._container = None

    def abort(self) -> None:
        """Drop the half-written temp file (Ctrl-C, or nothing to write)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
