"""Procedural composites for training the matting model.

Every sample is built from numpy/scipy primitives only and drawn from one
``numpy.random.Generator``, so a composite is reproducible from its seed.  A
composite holds a display-referred image, the subject's matte, the unpremultiplied
foreground colour and the background such that::

    image == clip(foreground * alpha + background * (1 - alpha) + noise, 0, 1)

where ``|noise| <= Composite.noise_bound`` (mild sensor noise, added last).

What the generator draws:

* subjects: head-and-shoulders portraits with hair, furry creatures (unions of
  ellipses with noisy contours), organic blobs, products (polygons, stars, rounded
  rectangles, discs) and glass objects;
* fine structure: hair strands (curves with bends, waves, random-walk wiggle and
  clumping, 0.3–2 px wide, rasterised with exact partial coverage), short dense
  fur, soft or defocused edges and motion blur (premultiplied colour and alpha
  blurred together), semi-transparent veils and glass;
* backgrounds: fractal colour noise, skies with clouds and hills, bokeh, perspective
  stripes and checkers, interiors, studio and keying screens, with blurred
  low-contrast distractor shapes and, now and then, colours close to the subject's;
* multi-object scenes: two to four named objects ("the red star", "the object on
  the left") of which one is the subject.

Signed distances are in pixels, negative inside; pixel centres sit on integer
coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from vfxmatte.errors import UsageError

__all__ = ["Composite", "CompositeDataset", "SceneObject", "contact_sheet", "make_composite"]

_F32 = np.float32
_SdfFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SceneObject:
    """One named object of a scene.

    ``alpha`` is this object's own matte, float32 (H, W); ``bbox`` is
    ``(x0, y0, x1, y1)``, half-open pixel bounds of ``alpha > 0.01``;
    ``captions`` lists every referring expression that picks out this object alone
    (``caption`` is one of them).
    """

    name: str
    caption: str
    alpha: np.ndarray
    bbox: tuple[int, int, int, int]
    captions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Composite:
    """One training sample: ``image ≈ foreground * alpha + background * (1 - alpha)``.

    ``image``, ``foreground`` and ``background`` are float32 (H, W, 3) in [0, 1],
    display-referred; ``alpha`` is float32 (H, W) in [0, 1], the subject's matte.
    ``image`` differs from the composite equation by the sensor noise only, never by
    more than ``noise_bound`` per channel.
    """

    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    background: np.ndarray
    objects: tuple[SceneObject, ...]
    caption: str
    noise_bound: float = 0.0


# --------------------------------------------------------------------------- colour helpers


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) as float32 RGB."""
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - math.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=_F32)


def _rgb_to_hsv(c: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(x) for x in c)
    mx, mn = max(r, g, b), min(r, g, b)
    d = mx - mn
    if d <= 1e-6:
        h = 0.0
    elif mx == r:
        h = ((g - b) / d) % 6.0
    elif mx == g:
        h = (b - r) / d + 2.0
    else:
        h = (r - g) / d + 4.0
    return h / 6.0, (d / mx if mx > 1e-6 else 0.0), mx


def _colour_name(c: np.ndarray) -> str:
    """A plain English name for an RGB colour."""
    h, s, v = _rgb_to_hsv(c)
    if v < 0.18:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else "grey"
    deg = h * 360.0
    if 12 <= deg < 45 and v < 0.6:
        return "brown"
    for limit, name in ((12, "red"), (40, "orange"), (68, "yellow"), (160, "green"), (200, "cyan"),
                        (255, "blue"), (290, "purple"), (340, "pink")):
        if deg < limit:
            return name
    return "red"


def _rand_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 1.0),
                 val: tuple[float, float] = (0.1, 1.0)) -> np.ndarray:
    return _hsv(float(rng.random()), float(rng.uniform(*sat)), float(rng.uniform(*val)))


def _jitter(rng: np.random.Generator, c: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(c + rng.normal(0.0, amount, 3), 0.0, 1.0).astype(_F32)


_SKIN = (np.array([0.98, 0.85, 0.74], _F32), np.array([0.30, 0.17, 0.10], _F32))
_HAIR = [
    np.array(c, _F32)
    for c in ((0.05, 0.04, 0.035), (0.22, 0.13, 0.07), (0.42, 0.27, 0.14), (0.86, 0.72, 0.48),
              (0.62, 0.24, 0.09), (0.72, 0.71, 0.70), (0.95, 0.93, 0.88))
]
_NAMED = {
    "red": (0.86, 0.09, 0.09), "green": (0.10, 0.68, 0.18), "blue": (0.10, 0.25, 0.92),
    "yellow": (0.97, 0.86, 0.08), "orange": (1.00, 0.50, 0.04), "purple": (0.52, 0.14, 0.74),
    "pink": (1.00, 0.46, 0.72), "cyan": (0.08, 0.80, 0.86), "white": (0.96, 0.96, 0.95),
    "black": (0.04, 0.04, 0.05),
}


# --------------------------------------------------------------------------- noise and resampling


@lru_cache(maxsize=2048)
def _interp_plan(n_out: int, n_in: int, smooth: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice index, weight and per-index run length resampling ``n_in`` samples to ``n_out``.

    ``smooth`` spans the lattice nodes over the output with smoothstep weights (value
    noise); otherwise linear weights between low-resolution pixel centres.
    """
    n_in = max(n_in, 2)
    i = np.arange(n_out, dtype=np.float64)
    if smooth:
        p = (i + 0.5) / n_out * (n_in - 1)
    else:
        p = np.clip((i + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    k = np.minimum(np.floor(p).astype(np.int64), n_in - 2)
    f = p - k
    if smooth:
        f = f * f * (3.0 - 2.0 * f)
    counts = np.bincount(k, minlength=n_in - 1)
    for arr in (k, f, counts):
        arr.flags.writeable = False
    return k, f.astype(_F32), counts


def _resample(grid: np.ndarray, h: int, w: int, smooth: bool) -> np.ndarray:
    """Resample (C, gh, gw) to (C, h, w) with separable interpolation (gh, gw >= 2).

    Gathers and repeats only: no BLAS, so it stays fast beside other busy threads.
    """
    ky, fy, _ = _interp_plan(h, grid.shape[1], smooth)
    _, fx, cx = _interp_plan(w, grid.shape[2], smooth)
    rows = grid[:, ky, :] * (1.0 - fy)[:, None] + grid[:, ky + 1, :] * fy[:, None]
    out = np.repeat(rows[:, :, :-1], cx, axis=2)
    out += np.repeat(np.diff(rows, axis=2), cx, axis=2) * fx
    return np.asarray(out, dtype=_F32)


def _fbm(rng: np.random.Generator, h: int, w: int, cells: float = 3.0, octaves: int = 5,
         persistence: float = 0.5, channels: int = 1, aspect: float = 1.0) -> np.ndarray:
    """Multi-octave value noise, (channels, h, w), normalised to [0, 1] per channel.

    ``cells`` is the lattice count of the first octave along the longer side;
    ``aspect`` > 1 stretches features horizontally (< 1 vertically).
    """
    total = np.zeros((channels, h, w), _F32)
    amp = 1.0
    long_side = max(h, w)
    c = cells
    for o in range(octaves):
        if o:  # irregular lacunarity keeps the octaves' lattices from lining up
            c *= float(rng.uniform(1.8, 2.2))
        if c > long_side / 3:
            break
        gy = max(2, int(round(c * h / long_side * min(aspect, 1.0))) + 1)
        gx = max(2, int(round(c * w / long_side / max(aspect, 1.0))) + 1)
        grid = rng.random((channels, gy, gx), dtype=_F32)
        total += amp * _resample(grid, h, w, True)
        amp *= persistence
    lo = total.min(axis=(1, 2), keepdims=True)
    hi = total.max(axis=(1, 2), keepdims=True)
    return np.asarray((total - lo) / np.maximum(hi - lo, 1e-6), dtype=_F32)


def _palette_map(t: np.ndarray, stops: Sequence[np.ndarray]) -> np.ndarray:
    """Map a scalar field in [0, 1] through evenly spaced colour stops -> (H, W, 3)."""
    xs = np.linspace(0.0, 1.0, len(stops))
    out = np.empty(t.shape + (3,), _F32)
    for ch in range(3):
        out[..., ch] = np.interp(t, xs, [float(s[ch]) for s in stops])
    return out


def _blur(img: np.ndarray, sigma: float, motion: float = 0.0, angle: float = 0.0) -> np.ndarray:
    """Gaussian (``sigma``) and linear motion (``motion`` px along ``angle``) blur of (H, W, C).

    Done in the frequency domain with analytic transfer functions; the frame is
    padded by edge replication so nothing wraps round.
    """
    if sigma <= 0.05 and motion <= 0.5:
        return img
    h, w = img.shape[:2]
    pad = int(math.ceil(3.0 * sigma + 0.5 * motion)) + 2
    ph = sfft.next_fast_len(h + 2 * pad, real=True)
    pw = sfft.next_fast_len(w + 2 * pad, real=True)
    padded = np.pad(img, ((pad, ph - h - pad), (pad, pw - w - pad), (0, 0)), mode="edge")
    spec = sfft.rfft2(padded, axes=(0, 1), workers=1)
    fy = sfft.fftfreq(ph).astype(_F32)[:, None]
    fx = sfft.rfftfreq(pw).astype(_F32)[None, :]
    tf = np.ones((ph, pw // 2 + 1), _F32)
    if sigma > 0.05:
        tf *= np.exp(-2.0 * math.pi**2 * sigma**2 * (fx * fx + fy * fy))
    if motion > 0.5:
        tf *= np.sinc(motion * (fx * math.cos(angle) + fy * math.sin(angle))).astype(_F32)
    spec *= tf[:, :, None]
    out = sfft.irfft2(spec, s=(ph, pw), axes=(0, 1), workers=1)
    return np.ascontiguousarray(out[pad:pad + h, pad:pad + w], dtype=_F32)


def _soft_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (H, W, C); wide blurs run on a box-downsampled copy and are upsampled."""
    f = min(4, int(sigma / 1.5))
    if f < 2:
        return _blur(img, sigma)
    h, w, c = img.shape
    h2, w2 = -(-h // f), -(-w // f)
    padded = np.pad(img, ((0, h2 * f - h), (0, w2 * f - w), (0, 0)), mode="edge")
    low = padded.reshape(h2, f, w2, f, c).mean(axis=(1, 3))
    low = _blur(low, math.sqrt(max(sigma * sigma - (f * f - 1) / 12.0, 0.25)) / f)
    up = _resample(np.ascontiguousarray(low.transpose(2, 0, 1)), h2 * f, w2 * f, False)
    return np.ascontiguousarray(up.transpose(1, 2, 0)[:h, :w])


# --------------------------------------------------------------------------- signed distances


def _rot(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    return c * dx + s * dy, -s * dx + c * dy


def _sdf_ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> _SdfFn:
    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _rot(x, y, cx, cy, angle)
        k0 = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        k1 = np.sqrt((u / (rx * rx)) ** 2 + (v / (ry * ry)) ** 2)
        out = k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)
        return np.asarray(np.where(k1 < 1e-6, -min(rx, ry), out), dtype=_F32)

    return f


def _sdf_round_rect(cx: float, cy: float, hx: float, hy: float, r: float, angle: float = 0.0) -> _SdfFn:
    r = min(r, hx, hy)

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _rot(x, y, cx, cy, angle)
        qx = np.abs(u) - hx + r
        qy = np.abs(v) - hy + r
        out = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
        return np.asarray(out + np.minimum(np.maximum(qx, qy), 0.0) - r, dtype=_F32)

    return f


def _sdf_polygon(verts: np.ndarray) -> _SdfFn:
    """Exact signed distance to a simple polygon (any winding), even-odd inside test."""
    vs = [(float(a), float(b)) for a, b in verts]

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(x.shape, y.shape)
        d2 = np.full(shape, np.inf, _F32)
        inside = np.zeros(shape, bool)
        n = len(vs)
        for i in range(n):
            ax, ay = vs[i]
            bx, by = vs[i - 1]
            ex, ey = bx - ax, by - ay
            wx, wy = x - ax, y - ay
            t = np.clip((wx * ex + wy * ey) * (1.0 / max(ex * ex + ey * ey, 1e-9)), 0.0, 1.0)
            qx, qy = wx - ex * t, wy - ey * t
            np.minimum(d2, qx * qx + qy * qy, out=d2)
            c1 = y >= ay
            c2 = y < by
            c3 = ex * wy > ey * wx
            inside ^= (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        return np.asarray(np.where(inside, -np.sqrt(d2), np.sqrt(d2)), dtype=_F32)

    return f


def _sdf_polar(cx: float, cy: float, r: float, amps: np.ndarray, phases: np.ndarray,
               angle: float = 0.0, aspect: float = 1.0) -> _SdfFn:
    """A star-shaped blob: radius r * (1 + sum a_k cos(k theta + phi_k)), k = 2, 3, ..."""

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _rot(x, y, cx, cy, angle)
        u = u / aspect
        rho = np.sqrt(u * u + v * v)
        th = np.arctan2(v, u)
        rad = np.ones_like(rho)
        for k, (a, p) in enumerate(zip(amps, phases, strict=True)):
            rad += float(a) * np.cos((k + 2) * th + float(p))
        return np.asarray((rho - r * rad) * min(aspect, 1.0) * 0.92, dtype=_F32)

    return f


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union of two distance fields)."""
    hh = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return np.asarray(b + (a - b) * hh - k * hh * (1.0 - hh), dtype=_F32)


def _regular_polygon(cx: float, cy: float, r: float, n: int, angle: float,
                     inner: float | None = None) -> np.ndarray:
    """Vertices of a regular polygon, or of a star when ``inner`` (radius ratio) is given."""
    if inner is None:
        th = angle + np.arange(n) * 2.0 * np.pi / n
        rr = np.full(n, r)
    else:
        th = angle + np.arange(2 * n) * np.pi / n
        rr = np.where(np.arange(2 * n) % 2 == 0, r, r * inner)
    return np.stack([cx + rr * np.cos(th), cy + rr * np.sin(th)], axis=1)


@dataclass
class _Shape:
    """A signed-distance shape with a bounding box (x0, y0, x1, y1) in pixels."""

    noun: str
    sdf: _SdfFn
    box: tuple[float, float, float, float]

    def window(self, h: int, w: int, margin: float) -> tuple[slice, slice]:
        """Row and column slices of the box grown by ``margin``, clipped to the frame."""
        x0 = min(max(0, int(math.floor(self.box[0] - margin))), w)
        y0 = min(max(0, int(math.floor(self.box[1] - margin))), h)
        x1 = max(min(w, int(math.ceil(self.box[2] + margin)) + 1), x0)
        y1 = max(min(h, int(math.ceil(self.box[3] + margin)) + 1), y0)
        return slice(y0, y1), slice(x0, x1)

    def evaluate(self, h: int, w: int, margin: float, far: float | None = None) -> np.ndarray:
        """Full-frame distance field; outside box+margin it holds ``far`` (default margin)."""
        out = np.full((h, w), margin if far is None else far, _F32)
        ys, xs = self.window(h, w, margin)
        if ys.stop > ys.start and xs.stop > xs.start:
            out[ys, xs] = self.local(ys, xs)
        return out

    def local(self, ys: slice, xs: slice) -> np.ndarray:
        """The distance field over a window only."""
        gx = np.arange(xs.start, xs.stop, dtype=_F32)[None, :]
        gy = np.arange(ys.start, ys.stop, dtype=_F32)[:, None]
        return self.sdf(gx, gy)


def _coverage(sdf: np.ndarray, softness: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage of the inside of a distance field (ramp ``softness`` px wide)."""
    return np.asarray(np.clip(0.5 - sdf * (1.0 / max(softness, 1e-3)), 0.0, 1.0), dtype=_F32)


def _random_shape(rng: np.random.Generator, noun: str, cx: float, cy: float, r: float) -> _Shape:
    """A shape of the named kind, roughly ``r`` in radius, centred at (cx, cy)."""
    ang = float(rng.uniform(0, 2 * np.pi))
    box = (cx - r * 1.05, cy - r * 1.05, cx + r * 1.05, cy + r * 1.05)
    if noun == "circle":
        return _Shape(noun, _sdf_ellipse(cx, cy, r, r), box)
    if noun == "oval":
        return _Shape(noun, _sdf_ellipse(cx, cy, r, r * float(rng.uniform(0.5, 0.75)), ang), box)
    if noun == "square":
        hx = r * 0.78
        return _Shape(noun, _sdf_round_rect(cx, cy, hx, hx, hx * float(rng.uniform(0.0, 0.15)),
                                            float(rng.uniform(-0.5, 0.5))), box)
    if noun in ("box", "rectangle", "card"):
        hx, hy = r * float(rng.uniform(0.55, 0.95)), r * float(rng.uniform(0.35, 0.8))
        rr = min(hx, hy) * float(rng.uniform(0.0, 0.6))
        return _Shape(noun, _sdf_round_rect(cx, cy, hx, hy, rr, float(rng.uniform(-0.6, 0.6))), box)
    if noun == "star":
        n = int(rng.integers(5, 8)) if rng.random() < 0.4 else 5
        verts = _regular_polygon(cx, cy, r, n, -np.pi / 2 + float(rng.uniform(-0.4, 0.4)),
                                 float(rng.uniform(0.38, 0.55)))
        return _Shape(noun, _sdf_polygon(verts), box)
    if noun in ("triangle", "pentagon", "hexagon", "diamond"):
        n = {"triangle": 3, "pentagon": 5, "hexagon": 6, "diamond": 4}[noun]
        base = -np.pi / 2 if noun != "hexagon" else 0.0
        verts = _regular_polygon(cx, cy, r, n, base + float(rng.uniform(-0.25, 0.25)))
        if noun == "diamond":
            verts[:, 0] = cx + (verts[:, 0] - cx) * 0.7
        return _Shape(noun, _sdf_polygon(verts), box)
    if noun == "polygon":
        n = int(rng.integers(4, 9))
        th = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = r * rng.uniform(0.75, 1.0, n)
        verts = np.stack([cx + radii * np.cos(th), cy + radii * np.sin(th)], axis=1)
        return _Shape(noun, _sdf_polygon(verts), box)
    if noun == "cross":
        a, b = r, r * float(rng.uniform(0.28, 0.4))
        arm1 = _sdf_round_rect(cx, cy, a, b, b * 0.15, ang)
        arm2 = _sdf_round_rect(cx, cy, b, a, b * 0.15, ang)
        return _Shape(noun, lambda x, y: np.minimum(arm1(x, y), arm2(x, y)), box)
    if noun == "ring":
        outer = _sdf_ellipse(cx, cy, r, r)
        hole = r * float(rng.uniform(0.4, 0.65))
        return _Shape(noun, lambda x, y: np.maximum(outer(x, y), hole - (outer(x, y) + r)), box)
    # "blob": organic, smooth random contour
    nh = int(rng.integers(2, 6))
    amps = rng.uniform(0.0, 0.22, nh) / np.arange(1, nh + 1) ** 0.7
    aspect = float(rng.uniform(0.75, 1.3))
    rr = r / (1.0 + amps.sum()) / max(aspect, 1.0)
    return _Shape("blob", _sdf_polar(cx, cy, rr, amps, rng.uniform(0, 2 * np.pi, nh), ang, aspect), box)


# --------------------------------------------------------------------------- strands (hair, fur)


@dataclass
class _Strands:
    """Per-strand parameters of a set of curves; arrays of length N."""

    roots: np.ndarray      # (N, 2) x, y
    dirs: np.ndarray       # (N,) initial direction angle
    length: np.ndarray     # (N,) px
    width: np.ndarray      # (N,) px at the root
    bend: np.ndarray       # (N,) quadratic perpendicular offset, fraction of length
    bend3: np.ndarray      # (N,) cubic perpendicular offset
    wave_amp: np.ndarray   # (N,) fraction of length
    wave_freq: np.ndarray  # (N,) periods along the strand
    wave_phase: np.ndarray
    gravity: np.ndarray    # (N,) fraction of length pulled along +y at the tip
    wiggle: np.ndarray     # (N,) random-walk amplitude (fraction of length)
    opacity: np.ndarray    # (N,)
    taper: np.ndarray      # (N,) width lost from root to tip, fraction
    root_colour: np.ndarray  # (N, 3)
    tip_colour: np.ndarray   # (N, 3)
    clump: np.ndarray | None = None    # (N,) clump id
    clumping: float = 0.0


_SAMPLES_PER_PX = 1.5


def _arc_estimate(s: _Strands) -> np.ndarray:
    """An upper estimate of every strand's arc length in pixels."""
    return np.asarray(s.length * (1.0 + 2 * np.abs(s.bend) + 3 * np.abs(s.bend3) + s.gravity
                                  + 2 * np.pi * s.wave_amp * s.wave_freq + 3 * s.wiggle))


def _strand_samples(rng: np.random.Generator, s: _Strands) -> tuple[np.ndarray, ...]:
    """Dense points along every strand: x, y, deposit weight, colour (M, 3)."""
    ns = np.maximum(np.ceil(_arc_estimate(s) * _SAMPLES_PER_PX).astype(np.int64), 3)
    starts = np.cumsum(ns) - ns
    total = int(ns.sum())

    def rep(a: np.ndarray) -> np.ndarray:  # one value per strand -> one per sample
        return np.repeat(np.asarray(a, _F32), ns, axis=0)

    t = np.arange(total, dtype=_F32)
    t -= rep(starts)
    t *= rep(1.0 / (ns - 1))
    t2 = t * t
    length = s.length.astype(np.float64)
    ldx, ldy = length * np.cos(s.dirs), length * np.sin(s.dirs)
    # perpendicular offset (fraction of length): bends, a wave and a random walk
    perp = rep(s.bend) * t2 + rep(s.bend3) * (t2 * t)
    if float(np.abs(s.wave_amp).max(initial=0.0)) > 0:
        perp += rep(s.wave_amp) * t * np.sin(rep(2 * np.pi * s.wave_freq) * t + rep(s.wave_phase))
    if float(s.wiggle.max(initial=0.0)) > 0:
        # a random walk of the curvature (noise integrated twice): smooth, wandering strands
        steps = rng.standard_normal(total, dtype=_F32) * rep(1.0 / ns**1.5)
        slope = np.cumsum(steps)
        slope -= np.repeat(slope[starts], ns)
        walk = np.cumsum(slope)
        walk -= np.repeat(walk[starts], ns)
        perp += rep(2.0 * s.wiggle) * walk
    x = rep(s.roots[:, 0]) + rep(ldx) * t - rep(ldy) * perp
    y = rep(s.roots[:, 1]) + rep(ldy) * t + rep(ldx) * perp + rep(length * s.gravity) * t2
    if s.clump is not None and s.clumping > 0:
        last = starts + ns - 1
        tips_x, tips_y = x[last], y[last]
        nc = int(s.clump.max()) + 1
        cnt = np.maximum(np.bincount(s.clump, minlength=nc), 1)
        cx = np.bincount(s.clump, tips_x, minlength=nc) / cnt
        cy = np.bincount(s.clump, tips_y, minlength=nc) / cnt
        pull = s.clumping * t * np.sqrt(t)
        x += pull * rep(cx[s.clump] - tips_x)
        y += pull * rep(cy[s.clump] - tips_y)
    # arc-length element per sample (half the distance to each neighbour)
    seg = np.hypot(np.diff(x), np.diff(y))
    seg[starts[1:] - 1] = 0.0
    seg *= 0.5
    ds = np.zeros(total, _F32)
    ds[:-1] += seg
    ds[1:] += seg
    width = rep(s.width) * (1.0 - rep(s.taper) * t)
    weight = width * ds * rep(s.opacity)
    colour = rep(s.root_colour) + rep(s.tip_colour - s.root_colour) * t[:, None]
    # strands wider than a pixel: two parallel lines half a width apart
    thick = np.flatnonzero(width > 1.0)
    if len(thick):
        tx = x[np.minimum(thick + 1, total - 1)] - x[np.maximum(thick - 1, 0)]
        ty = y[np.minimum(thick + 1, total - 1)] - y[np.maximum(thick - 1, 0)]
        scale = 0.25 * width[thick] / np.maximum(np.hypot(tx, ty), 1e-6)
        ox, oy = -ty * scale, tx * scale
        weight[thick] *= 0.5
        x2, y2 = x[thick] + ox, y[thick] + oy
        x[thick] -= ox
        y[thick] -= oy
        x = np.concatenate([x, x2])
        y = np.concatenate([y, y2])
        weight = np.concatenate([weight, weight[thick]])
        colour = np.concatenate([colour, colour[thick]])
    return x, y, weight, colour


def _splat(h: int, w: int, x: np.ndarray, y: np.ndarray, weight: np.ndarray,
           colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splat weighted samples: coverage density (H, W) and mean colour (H, W, 3).

    Density is tent-filtered (bilinear weights): a thin line of width ``wd``
    deposits ``wd`` per pixel of length, so the density is the line's pixel
    coverage.  Colour is binned to the nearest pixel and spread over 3x3 by a
    normalised box filter so that every pixel the density reaches has a colour.
    """
    dens = np.zeros((h, w), _F32)
    mean = np.zeros((h, w, 3), _F32)
    if len(x) == 0:
        return dens, mean
    # shift by one pixel and clamp: samples off the frame land on a border ring that is cut away
    xs = np.clip(x + 1.0, 0.0, w + 1.0)
    ys = np.clip(y + 1.0, 0.0, h + 1.0)
    x0 = xs.astype(np.intp)
    y0 = ys.astype(np.intp)
    fx = xs - x0
    fy = ys - y0
    bx0, by0 = int(x0.min()), int(y0.min())
    bw, bh = int(x0.max()) + 2 - bx0, int(y0.max()) + 2 - by0
    base = (y0 - by0) * bw + (x0 - bx0)
    idx = (base[None, :] + np.array([0, 1, bw, bw + 1], np.intp)[:, None]).ravel()
    gx, gy = 1.0 - fx, 1.0 - fy
    wts = (np.stack([gx * gy, fx * gy, gx * fy, fx * fy]) * weight).ravel()
    # accumulator pixel (i, j) is frame pixel (by0 + i - 1, bx0 + j - 1)
    sy = slice(max(1 - by0, 0), min(h + 1 - by0, bh))
    sx = slice(max(1 - bx0, 0), min(w + 1 - bx0, bw))
    if sy.stop <= sy.start or sx.stop <= sx.start:
        return dens, mean
    dst = (slice(by0 + sy.start - 1, by0 + sy.stop - 1), slice(bx0 + sx.start - 1, bx0 + sx.stop - 1))
    dens[dst] = np.bincount(idx, wts, minlength=bh * bw).reshape(bh, bw)[sy, sx]
    near = ((ys + 0.5).astype(np.intp) - by0) * bw + ((xs + 0.5).astype(np.intp) - bx0)
    stack = np.empty((bh, bw, 4), _F32)
    stack[..., 3] = np.bincount(near, weight, minlength=bh * bw).reshape(bh, bw)
    for ch in range(3):
        stack[..., ch] = np.bincount(near, weight * colour[:, ch], minlength=bh * bw).reshape(bh, bw)
    stack = ndimage.uniform_filter(stack, size=(3, 3, 1), mode="constant")
    mean[dst] = (stack[..., :3] / np.maximum(stack[..., 3:], 1e-8))[sy, sx]
    return dens, mean


def _strand_layer(rng: np.random.Generator, h: int, w: int, sets: Sequence[_Strands],
                  budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise strand sets into a premultiplied layer: colour (H, W, 3), alpha (H, W).

    When the curves would need more than ``budget`` samples, a random subset of the
    strands of every set is drawn instead (a sparser, equally varied coat).
    """
    expected = sum(float(np.sum(_arc_estimate(st))) * _SAMPLES_PER_PX for st in sets)
    if expected > budget:
        frac = budget / expected
        sets = [_subset(st, rng.random(len(st.length)) < frac) for st in sets]
    parts = [_strand_samples(rng, st) for st in sets if len(st.length)]
    if not parts:
        return np.zeros((h, w, 3), _F32), np.zeros((h, w), _F32)
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    wt = np.concatenate([p[2] for p in parts])
    col = np.concatenate([p[3] for p in parts])
    dens, mean = _splat(h, w, x, y, wt, col)
    alpha = np.minimum(dens, 1.0)
    prem = mean * alpha[:, :, None]
    return np.asarray(prem, _F32), np.asarray(alpha, _F32)


def _subset(st: _Strands, keep: np.ndarray) -> _Strands:
    """The strands where ``keep`` is true."""
    fields = {name: getattr(st, name) for name in st.__dataclass_fields__}
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            fields[name] = value[keep]
    return _Strands(**fields)


def _boundary_roots(rng: np.random.Generator, sdf: np.ndarray, n: int, centre: tuple[float, float],
                    sector: tuple[float, float] | None = None, depth: tuple[float, float] = (-2.0, -0.3),
                    exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Up to n random points just inside a shape's contour and their outward normal angles.

    ``sector`` (start, span) in radians restricts the roots by their angle around
    ``centre``; ``exclude`` is a boolean mask of pixels where no root may sit.
    """
    band = (sdf > depth[0]) & (sdf < depth[1])
    if exclude is not None:
        band &= ~exclude
    ys, xs = np.nonzero(band)
    if len(xs) == 0 or n <= 0:
        return np.zeros((0, 2), _F32), np.zeros(0, _F32)
    if sector is not None:
        ang = np.arctan2(ys - centre[1], xs - centre[0])
        rel = (ang - sector[0]) % (2 * np.pi)
        sel = rel <= sector[1]
        xs, ys = xs[sel], ys[sel]
        if len(xs) == 0:
            return np.zeros((0, 2), _F32), np.zeros(0, _F32)
    pick = rng.integers(0, len(xs), n)
    px, py = xs[pick], ys[pick]
    h, w = sdf.shape
    gx = sdf[py, np.minimum(px + 1, w - 1)] - sdf[py, np.maximum(px - 1, 0)]
    gy = sdf[np.minimum(py + 1, h - 1), px] - sdf[np.maximum(py - 1, 0), px]
    normal = np.arctan2(gy, gx).astype(_F32)
    roots = np.stack([px + rng.uniform(-0.5, 0.5, n), py + rng.uniform(-0.5, 0.5, n)], axis=1)
    return roots.astype(_F32), normal


def _clumps(roots: np.ndarray, centre: tuple[float, float], size: float) -> np.ndarray:
    """Clump ids grouping roots that are neighbours along the contour."""
    n = len(roots)
    if n == 0:
        return np.zeros(0, np.int64)
    ang = np.arctan2(roots[:, 1] - centre[1], roots[:, 0] - centre[0])
    order = np.argsort(ang)
    ids = np.empty(n, np.int64)
    ids[order] = np.arange(n) // max(int(size), 1)
    return ids


def _make_strands(rng: np.random.Generator, roots: np.ndarray, normals: np.ndarray, *,
                  length: tuple[float, float], width: tuple[float, float], spread: float,
                  flow: float | np.ndarray, bend: float, wave: float, gravity: float, wiggle: float,
                  root_colour: np.ndarray, tip_colour: np.ndarray, colour_jitter: float,
                  opacity: tuple[float, float] = (0.7, 1.0), clump: np.ndarray | None = None,
                  clumping: float = 0.0, wave_freq: tuple[float, float] = (0.8, 3.0)) -> _Strands:
    n = len(roots)
    lens = np.exp(rng.uniform(math.log(length[0]), math.log(length[1]), n)).astype(_F32)
    shade = rng.uniform(1.0 - colour_jitter, 1.0 + colour_jitter, (n, 1)).astype(_F32)
    rc = np.clip(np.broadcast_to(root_colour, (n, 3)) * shade, 0, 1).astype(_F32)
    tc = np.clip(np.broadcast_to(tip_colour, (n, 3)) * shade, 0, 1).astype(_F32)
    wave_on = rng.random(n) < 0.5
    return _Strands(
        roots=roots.astype(_F32),
        dirs=(normals + flow + rng.normal(0.0, spread, n)).astype(_F32),
        length=lens,
        width=rng.uniform(width[0], width[1], n).astype(_F32),
        bend=rng.normal(0.0, bend, n).astype(_F32),
        bend3=rng.normal(0.0, bend * 0.5, n).astype(_F32),
        wave_amp=(wave * wave_on * rng.uniform(0.2, 1.0, n)).astype(_F32),
        wave_freq=rng.uniform(wave_freq[0], wave_freq[1], n).astype(_F32),
        wave_phase=rng.uniform(0, 2 * np.pi, n).astype(_F32),
        gravity=(gravity * rng.uniform(0.5, 1.5, n)).astype(_F32),
        wiggle=(wiggle * rng.uniform(0.0, 1.0, n)).astype(_F32),
        opacity=rng.uniform(opacity[0], opacity[1], n).astype(_F32),
        taper=rng.uniform(0.3, 0.9, n).astype(_F32),
        root_colour=rc,
        tip_colour=tc,
        clump=clump,
        clumping=clumping,
    )


# --------------------------------------------------------------------------- textures and shading


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, kind: str | None = None) -> np.ndarray:
    """A foreground colour field (H, W, 3) around ``base``: solid, gradient, noise, stripes, spots."""
    kind = kind or str(rng.choice(["solid", "gradient", "radial", "noise", "stripes", "spots"],
                                  p=[0.2, 0.2, 0.1, 0.25, 0.12, 0.13]))
    second = _jitter(rng, base, 0.25) if rng.random() < 0.6 else _rand_colour(rng)
    ys = np.arange(h, dtype=_F32)[:, None]
    xs = np.arange(w, dtype=_F32)[None, :]
    if kind == "solid":
        f = np.broadcast_to(base, (h, w, 3)).copy()
        f *= (0.9 + 0.2 * _fbm(rng, h, w, 4.0, 3)[0])[:, :, None]
    elif kind in ("gradient", "radial"):
        if kind == "gradient":
            a = float(rng.uniform(0, 2 * np.pi))
            t = (math.cos(a) * xs + math.sin(a) * ys) / max(h, w) + 0.5
        else:
            cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
            t = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / max(h, w)
        t = np.clip(t, 0, 1)[:, :, None]
        f = base * (1 - t) + second * t
    elif kind == "noise":
        t = _fbm(rng, h, w, float(rng.uniform(2, 8)), 5, float(rng.uniform(0.4, 0.7)))[0]
        f = _palette_map(t, [base * 0.6, base, second])
    elif kind == "stripes":
        a = float(rng.uniform(0, np.pi))
        period = float(rng.uniform(6, 30)) * max(h, w) / 256
        u = (math.cos(a) * xs + math.sin(a) * ys) / period
        cov = np.clip(0.5 + np.sin(2 * np.pi * u) * period / (2 * np.pi), 0, 1)[:, :, None]
        f = base * (1 - cov) + second * cov
    else:  # spots
        t = _fbm(rng, h, w, float(rng.uniform(4, 10)), 3)[0]
        cov = np.clip((t - 0.55) * 12.0, 0, 1)[:, :, None]
        f = base * (1 - cov) + second * cov
    return np.asarray(np.clip(f, 0, 1), dtype=_F32)


def _shading(rng: np.random.Generator, sdf: np.ndarray, radius: float, strength: float,
             window: tuple[slice, slice] | None = None) -> np.ndarray:
    """Fake volume lighting of a silhouette from its distance field: (H, W) multiplier.

    The height field is the silhouette blurred by about ``radius`` (computed at low
    resolution), lit by a random directional light.  Only ``window`` (which must
    hold the whole inside) is lit; elsewhere the surface is flat.
    """
    la = float(rng.uniform(0, 2 * np.pi))
    lz = float(rng.uniform(0.4, 1.0))
    lx, ly = math.cos(la) * math.sqrt(1 - lz * lz), math.sin(la) * math.sqrt(1 - lz * lz)
    flat = 1.0 - strength + strength * (0.35 + 0.75 * lz)
    out = np.full(sdf.shape, flat, _F32)
    ys, xs = window if window is not None else (slice(0, sdf.shape[0]), slice(0, sdf.shape[1]))
    part = sdf[ys, xs]
    f = max(1, int(radius / 8))
    if part.shape[0] < 2 * f or part.shape[1] < 2 * f:
        return out
    low = np.clip(0.5 - part[::f, ::f] / f, 0.0, 1.0)
    low = ndimage.gaussian_filter(low, max(radius / (2.0 * f), 0.5), mode="nearest")
    z = _resample(low[None], part.shape[0], part.shape[1], False)[0] * (1.5 * radius)
    gy, gx = np.gradient(z)
    lam = np.clip((-gx * lx - gy * ly + lz) / np.sqrt(gx * gx + gy * gy + 1.0), 0.0, 1.0)
    out[ys, xs] = 1.0 - strength + strength * (0.35 + 0.75 * lam)
    return out


# --------------------------------------------------------------------------- backgrounds


def _bg_noise(rng: np.random.Generator, h: int, w: int, palette: list[np.ndarray]) -> np.ndarray:
    t = _fbm(rng, h, w, float(rng.uniform(1.5, 6)), 6, float(rng.uniform(0.45, 0.65)))[0]
    img = _palette_map(t, palette)
    if rng.random() < 0.6:  # second layer: brightness variation at another scale
        m = _fbm(rng, h, w, float(rng.uniform(3, 12)), 4)[0]
        img *= (0.75 + 0.5 * m)[:, :, None]
    return img


def _bg_sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = int(rng.integers(0, 3))
    if kind == 0:
        top, bottom = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.4, 0.8), rng.uniform(0.5, 0.9)), \
            _hsv(rng.uniform(0.52, 0.6), rng.uniform(0.05, 0.3), rng.uniform(0.85, 1.0))
    elif kind == 1:
        top, bottom = _hsv(rng.uniform(0.65, 0.8), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.5)), \
            _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.4, 0.9), rng.uniform(0.8, 1.0))
    else:
        g = float(rng.uniform(0.45, 0.85))
        top, bottom = np.array([g * 0.9, g * 0.92, g], _F32), np.array([g, g, g], _F32) * 1.1
    ys = np.arange(h, dtype=_F32)[:, None, None] / h
    xs = np.arange(w, dtype=_F32)[None, :, None] / w
    t = np.clip(ys + float(rng.uniform(-0.2, 0.2)) * (xs - 0.5), 0, 1)
    img = top * (1 - t) + bottom * t
    if rng.random() < 0.8:
        clouds = _fbm(rng, h, w, float(rng.uniform(2, 5)), 6, 0.55, aspect=float(rng.uniform(1.0, 3.0)))[0]
        thr = float(rng.uniform(0.4, 0.65))
        cov = np.clip((clouds - thr) * float(rng.uniform(2, 6)), 0, 1)[:, :, None]
        cloud_col = np.array([1.0, 1.0, 1.0], _F32) * float(rng.uniform(0.8, 1.0))
        img = img * (1 - 0.9 * cov) + cloud_col * (0.9 * cov) * (0.85 + 0.15 * (1 - ys))
    if rng.random() < 0.6:  # hills / ground
        horizon = float(rng.uniform(0.45, 0.85)) * h
        ridge = _resample(rng.random((1, 2, int(rng.integers(4, 12))), dtype=_F32), 1, w, True)[0, 0]
        ridge = horizon + (ridge - 0.5) * float(rng.uniform(0.05, 0.35)) * h
        gy = np.arange(h, dtype=_F32)[:, None]
        cov = np.clip(gy - ridge[None, :] + 0.5, 0, 1)[:, :, None]
        ground = _bg_noise(rng, h, w, [_rand_colour(rng, (0.2, 0.7), (0.1, 0.5)) for _ in range(3)])
        haze = np.clip(1.0 - (gy - ridge[None, :]) / (0.3 * h), 0, 1)[:, :, None] * 0.5
        ground = ground * (1 - haze) + bottom * haze
        img = img * (1 - cov) + ground * cov
    return np.asarray(img, _F32)


def _bg_bokeh(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    f = 4
    lh, lw = max(h // f, 8), max(w // f, 8)
    base = _bg_noise(rng, lh, lw, [_rand_colour(rng, (0.2, 0.8), (0.02, 0.35)) for _ in range(3)])
    img = base.copy()
    ys = np.arange(lh, dtype=_F32)[:, None]
    xs = np.arange(lw, dtype=_F32)[None, :]
    hue0 = float(rng.random())
    blades = int(rng.choice([0, 5, 6, 8]))
    for _ in range(int(rng.integers(8, 40))):
        r = float(np.exp(rng.uniform(math.log(1.0), math.log(max(lh, lw) / 5))))
        cx, cy = float(rng.uniform(-r, lw + r)), float(rng.uniform(-r, lh + r))
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 4), lw)
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 4), lh)
        if x1 <= x0 or y1 <= y0:
            continue
        dx, dy = xs[:, x0:x1] - cx, ys[y0:y1] - cy
        if blades:
            th = np.arctan2(dy, dx)
            sector = 2 * np.pi / blades
            dist = np.sqrt(dx * dx + dy * dy) * np.cos((th % sector) - sector / 2) / math.cos(sector / 2) - r
        else:
            dist = np.sqrt(dx * dx + dy * dy) - r
        cov = np.clip(0.5 - dist / float(rng.uniform(0.6, 2.0)), 0, 1)[:, :, None]
        col = _hsv(hue0 + float(rng.normal(0, 0.12)), float(rng.uniform(0.2, 0.9)), 1.0)
        inten = float(rng.uniform(0.15, 0.8))
        rim = 1.0 + 0.3 * np.clip(1 + dist / max(r, 1), 0, 1)[:, :, None]  # brighter rim
        patch = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = 1.0 - (1.0 - patch) * (1.0 - np.clip(col * cov * inten * rim, 0, 1))
    up = _resample(np.ascontiguousarray(img.transpose(2, 0, 1)), h, w, False)
    return np.ascontiguousarray(up.transpose(1, 2, 0))


def _bg_pattern(rng: np.random.Generator, h: int, w: int, palette: list[np.ndarray]) -> np.ndarray:
    s = max(h, w)
    ys = np.arange(h, dtype=_F32)[:, None] / s - 0.5
    xs = np.arange(w, dtype=_F32)[None, :] / s - 0.5
    a = float(rng.uniform(0, np.pi))
    period = float(rng.uniform(0.025, 0.15))
    gx, gy = (float(v) for v in rng.normal(0, 0.8, 2))
    den = 1.0 + gx * xs + gy * ys
    den = np.where(np.abs(den) < 0.15, 0.15, den)
    u = (math.cos(a) * xs + math.sin(a) * ys) / den / period
    v = (-math.sin(a) * xs + math.cos(a) * ys) / den / period

    def square(q: np.ndarray) -> np.ndarray:
        dqy, dqx = np.gradient(q)
        fw = np.sqrt(dqx * dqx + dqy * dqy) + 1e-4
        cov = np.clip(0.5 + np.sin(2 * np.pi * q) / (2 * np.pi * fw), 0, 1)
        fade = np.clip((fw - 0.15) / 0.25, 0, 1)
        return cov * (1 - fade) + 0.5 * fade

    kind = int(rng.integers(0, 3))
    cu = square(u)
    if kind == 0:  # stripes
        t = cu
    elif kind == 1:  # checker
        cv = square(v)
        t = cu + cv - 2 * cu * cv
    else:  # planks: stripes with per-plank brightness
        idx = np.floor(u)
        t = cu * (0.6 + 0.4 * np.abs(np.sin(idx * 12.9898) * 43758.5453 % 1.0))
    c0, c1 = palette[0], palette[-1]
    img = c0 * (1 - t[:, :, None]) + c1 * t[:, :, None]
    light = _fbm(rng, h, w, 2.0, 3)[0]
    return np.asarray(img * (0.7 + 0.5 * light)[:, :, None], _F32)


def _bg_interior(rng: np.random.Generator, h: int, w: int, palette: list[np.ndarray]) -> np.ndarray:
    wall = _texture(rng, h, w, palette[0], str(rng.choice(["gradient", "noise", "solid"])))
    img = wall.copy()
    floor_y = float(rng.uniform(0.55, 0.95)) * h
    ys = np.arange(h, dtype=_F32)[:, None]
    cov = np.clip(ys - floor_y + 0.5, 0, 1)[:, :, None]
    floor = _texture(rng, h, w, palette[-1], str(rng.choice(["noise", "stripes", "gradient"])))
    img = img * (1 - cov) + floor * cov * 0.85
    for _ in range(int(rng.integers(1, 6))):
        hx, hy = float(rng.uniform(0.04, 0.25)) * w, float(rng.uniform(0.05, 0.4)) * h
        cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, floor_y))
        shp = _Shape("rect", _sdf_round_rect(cx, cy, hx, hy, float(rng.uniform(0, 4)),
                                             float(rng.normal(0, 0.03))), (cx - hx, cy - hy, cx + hx, cy + hy))
        a = _coverage(shp.evaluate(h, w, 3.0), 1.0)[:, :, None]
        col = palette[int(rng.integers(0, len(palette)))] if rng.random() < 0.6 else _rand_colour(rng)
        if rng.random() < 0.3:  # window: bright
            col = np.clip(col * 0.3 + 0.75, 0, 1)
        img = img * (1 - a) + _jitter(rng, col, 0.08) * a
    return np.asarray(img, _F32)


def _bg_studio(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    choice = int(rng.integers(0, 5))
    if choice == 0:
        col = _hsv(rng.uniform(0.3, 0.38), rng.uniform(0.6, 0.9), rng.uniform(0.5, 0.8))  # green screen
    elif choice == 1:
        col = _hsv(rng.uniform(0.58, 0.64), rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.8))  # blue screen
    else:
        col = _rand_colour(rng, (0.0, 0.4), (0.1, 0.95))
    ys = np.arange(h, dtype=_F32)[:, None] / max(h, w)
    xs = np.arange(w, dtype=_F32)[None, :] / max(h, w)
    cx, cy = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.1, 0.7))
    fall = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / float(rng.uniform(0.08, 0.6)))
    uneven = _fbm(rng, h, w, 2.0, 3)[0]
    light = 0.55 + 0.45 * fall + 0.15 * (uneven - 0.5)
    return np.asarray(col * light[:, :, None], _F32)


def _palette(rng: np.random.Generator, n: int, near: np.ndarray | None = None,
             muted: bool = False) -> list[np.ndarray]:
    if near is not None:
        return [_jitter(rng, near, 0.08) for _ in range(n)]
    if rng.random() < 0.5:  # harmonious: one hue family
        hue = float(rng.random())
        return [_hsv(hue + float(rng.normal(0, 0.06)), float(rng.uniform(0.1, 0.3 if muted else 0.8)),
                     float(rng.uniform(0.1, 0.95))) for _ in range(n)]
    return [_rand_colour(rng, (0.0, 0.3 if muted else 0.9), (0.05, 0.95)) for _ in range(n)]


def _background(rng: np.random.Generator, h: int, w: int, near: np.ndarray | None,
                muted: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A photographic-looking background and the palette it used."""
    pal = _palette(rng, int(rng.integers(2, 5)), near, muted)
    kind = str(rng.choice(["noise", "sky", "bokeh", "pattern", "interior", "studio"],
                          p=[0.26, 0.16, 0.16, 0.14, 0.16, 0.12]))
    if near is not None and kind in ("sky", "bokeh", "studio"):
        kind = "noise"
    if kind == "noise":
        img = _bg_noise(rng, h, w, pal)
    elif kind == "sky":
        img = _bg_sky(rng, h, w)
    elif kind == "bokeh":
        img = _bg_bokeh(rng, h, w)
    elif kind == "pattern":
        img = _bg_pattern(rng, h, w, pal)
    elif kind == "interior":
        img = _bg_interior(rng, h, w, pal)
    else:
        img = _bg_studio(rng, h, w)
    if muted:
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * 0.5
    return np.asarray(img, _F32), pal


def _add_distractors(rng: np.random.Generator, bg: np.ndarray, count: int, scale: float) -> np.ndarray:
    """Blurred, low-contrast shapes that are part of the background, not the subject."""
    h, w = bg.shape[:2]
    mean = bg.reshape(-1, 3).mean(axis=0)
    for _ in range(count):
        r = float(rng.uniform(0.05, 0.25)) * min(h, w)
        cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        noun = str(rng.choice(["blob", "circle", "box", "polygon", "oval", "star"]))
        shp = _random_shape(rng, noun, cx, cy, r)
        soft = float(rng.uniform(2.0, 10.0)) * scale
        ys, xs = shp.window(h, w, soft + 2)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        a = (_coverage(shp.local(ys, xs), soft) * float(rng.uniform(0.4, 0.9)))[:, :, None]
        col = _rand_colour(rng, (0.0, 0.8), (0.1, 0.95))
        mix = float(rng.uniform(0.3, 0.7))
        col = col * (1 - mix) + mean * mix
        bg[ys, xs] = bg[ys, xs] * (1 - a) + col * a
    return np.asarray(bg, _F32)


def _finish_background(rng: np.random.Generator, bg: np.ndarray, scale: float) -> np.ndarray:
    h, w = bg.shape[:2]
    if rng.random() < 0.55:
        bg = _soft_blur(bg, float(rng.uniform(0.5, 4.0)) * scale)
    if rng.random() < 0.5:  # vignette
        ys = np.linspace(-1, 1, h, dtype=_F32)[:, None]
        xs = np.linspace(-1, 1, w, dtype=_F32)[None, :]
        bg = bg * (1.0 - float(rng.uniform(0.1, 0.45)) * ((xs * xs + ys * ys) / 2))[:, :, None]
    if rng.random() < 0.5:  # grade: contrast and per-channel gain
        c = float(rng.uniform(0.8, 1.25))
        gain = rng.uniform(0.9, 1.1, 3).astype(_F32)
        bg = (bg - 0.5) * c + 0.5
        bg = bg * gain
    return np.asarray(np.clip(bg, 0, 1), _F32)


# --------------------------------------------------------------------------- subjects


@dataclass
class _Layer:
    """A premultiplied foreground layer plus the colour used where alpha is zero."""

    prem: np.ndarray   # (H, W, 3)
    alpha: np.ndarray  # (H, W)
    fill: np.ndarray   # (H, W, 3)
    noun: str
    colour: np.ndarray  # representative colour, for captions


def _over(top_prem: np.ndarray, top_a: np.ndarray, prem: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inv = 1.0 - top_a
    return np.asarray(top_prem + prem * inv[:, :, None], _F32), np.asarray(top_a + a * inv, _F32)


def _portrait(rng: np.random.Generator, h: int, w: int, s: float) -> tuple[_Layer, list[_Strands], np.ndarray]:
    m = min(h, w)
    ry = float(rng.uniform(0.11, 0.19)) * m
    rx = ry * float(rng.uniform(0.72, 0.88))
    cx = w * 0.5 + float(rng.uniform(-0.15, 0.15)) * w
    top = float(rng.uniform(0.06, 0.3)) * h
    cy = top + ry
    tilt = float(rng.normal(0, 0.12))
    head = _sdf_ellipse(cx, cy, rx, ry, tilt)
    sh_y = cy + ry * float(rng.uniform(1.25, 1.7))
    sh_hx = rx * float(rng.uniform(2.0, 3.4))
    sh_cx = cx + float(rng.normal(0, 0.15)) * rx
    torso = _sdf_round_rect(sh_cx, sh_y + h, sh_hx, h, rx * float(rng.uniform(0.8, 1.6)), float(rng.normal(0, 0.04)))
    neck = _sdf_round_rect(cx, (cy + sh_y) / 2 + ry * 0.3, rx * 0.42, (sh_y - cy) / 2 + ry * 0.2, rx * 0.2)
    k = ry * 0.35

    def body_fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _smin(_smin(head(x, y), neck(x, y), k * 0.6), torso(x, y), k)

    body = _Shape("person", body_fn, (0.0, top - 2, float(w), float(h)))
    sdf = body.evaluate(h, w, 4 * s + 4, far=float(m))
    skin = _SKIN[0] * (1 - (t := float(rng.random()))) + _SKIN[1] * t
    clothes = _rand_colour(rng, (0.0, 0.9), (0.08, 0.95))
    cloth_tex = _texture(rng, h, w, clothes)
    torso_sdf = _Shape("t", torso, (0.0, sh_y - h, float(w), float(h))).evaluate(h, w, 4.0, far=float(m))
    tmask = _coverage(torso_sdf - ry * 0.3, 2.0 * s)[:, :, None]
    fill = skin * (1 - tmask) + cloth_tex * tmask
    fill *= _shading(rng, sdf, rx * 0.8, float(rng.uniform(0.3, 0.7)))[:, :, None]
    alpha = _coverage(sdf)
    prem = fill * alpha[:, :, None]

    # hair mass: the head grown outwards with a noisy contour, the face cut out
    hair_col = _HAIR[int(rng.integers(0, len(_HAIR)))]
    if rng.random() < 0.12:
        hair_col = _rand_colour(rng, (0.5, 1.0), (0.3, 0.9))
    hair_col = _jitter(rng, hair_col, 0.03)
    tip_col = np.clip(hair_col * float(rng.uniform(0.9, 1.5)) + 0.03, 0, 1)
    thick = ry * float(rng.uniform(0.08, 0.45))
    length_down = ry * float(rng.uniform(-0.3, 2.2))
    hmar = int(thick + 6)
    x0, x1 = max(int(cx - rx - thick - hmar), 0), min(int(cx + rx + thick + hmar), w)
    y0, y1 = max(int(top - thick - hmar), 0), min(int(cy + length_down + hmar), h)
    strands: list[_Strands] = []
    if x1 > x0 and y1 > y0:
        xs = np.arange(x0, x1, dtype=_F32)[None, :]
        ys = np.arange(y0, y1, dtype=_F32)[:, None]
        wob = _fbm(rng, y1 - y0, x1 - x0, 4.0, 3)[0]
        hsdf = head(xs, ys) - thick * (0.6 + 0.8 * wob)
        drape = _sdf_round_rect(cx, cy + length_down / 2, rx + thick * 0.8, ry * 0.5 + length_down / 2 + 1,
                                rx * 0.6, tilt)(xs, ys)
        hsdf = _smin(hsdf, drape + thick * 0.2 * (wob - 0.5), thick * 0.5 + 1)
        face = _sdf_ellipse(cx - math.sin(tilt) * ry * 0.2, cy + ry * float(rng.uniform(0.15, 0.35)),
                            rx * 0.82, ry * 0.82, tilt)(xs, ys)
        full_h = np.full((h, w), float(m), _F32)
        full_h[y0:y1, x0:x1] = np.maximum(hsdf, -np.maximum(face, head(xs, ys)))
        hair_a = _coverage(full_h, 1.0)
        streak = _fbm(rng, h, w, 6.0, 4, aspect=0.15)[0]
        hair_fill = (hair_col * (0.75 + 0.45 * streak)[:, :, None]).astype(_F32)
        prem, alpha = _over(hair_fill * hair_a[:, :, None], hair_a, prem, alpha)
        fill = fill * (1 - hair_a[:, :, None]) + hair_fill * hair_a[:, :, None]

        # strands from the hair mass contour, away from the face
        face_full = np.full((h, w), float(m), _F32)
        face_full[y0:y1, x0:x1] = face
        style = str(rng.choice(["straight", "wavy", "curly", "short", "frizzy"], p=[0.3, 0.2, 0.15, 0.15, 0.2]))
        per = float(rng.uniform(1.0, 4.0))
        n_roots = int(per * 2.5 * (rx + ry + thick) * 2)
        roots, normals = _boundary_roots(rng, full_h, n_roots, (cx, cy), None,
                                         (-max(3.0, 0.5 * thick), -0.3), exclude=face_full < 4.0)
        if len(roots):
            # hair lies along the head and falls: turn each strand towards the downward tangent
            down = np.where(np.sin(normals + np.pi / 2) > np.sin(normals - np.pi / 2), 1.0, -1.0)
            lie = {"straight": (0.7, 1.3), "wavy": (0.5, 1.2), "curly": (0.2, 0.9), "short": (0.3, 1.0),
                   "frizzy": (0.0, 0.5)}[style]
            flow = down * rng.uniform(lie[0], lie[1], len(roots))
            long = {"straight": (0.4, 1.6), "wavy": (0.4, 1.4), "curly": (0.3, 0.8), "short": (0.08, 0.3),
                    "frizzy": (0.2, 0.7)}[style]
            strands.append(_make_strands(
                rng, roots, normals, length=(ry * long[0] * 0.4, ry * float(rng.uniform(*long))),
                width=(0.35, float(rng.uniform(0.7, 1.6))), spread=0.25 if style != "frizzy" else 0.5,
                flow=flow, bend=0.2,
                wave={"wavy": 0.08, "curly": 0.18}.get(style, 0.02) * float(rng.uniform(0.5, 1.5)),
                gravity={"straight": 0.5, "wavy": 0.4, "curly": 0.15, "short": 0.05, "frizzy": 0.05}[style]
                * float(rng.uniform(0.5, 1.5)),
                wiggle={"frizzy": 0.15, "curly": 0.08}.get(style, 0.02),
                root_colour=hair_col, tip_colour=tip_col, colour_jitter=0.25,
                clump=_clumps(roots, (cx, cy), float(rng.uniform(3, 25))), clumping=float(rng.uniform(0.0, 0.7)),
                wave_freq=(2.0, 5.0) if style == "curly" else (0.5, 2.0)))
            # flyaways: a few long, thin, loose strands
            nf = int(rng.integers(0, 40) * s)
            fr, fn = _boundary_roots(rng, full_h, nf, (cx, cy), (-np.pi, np.pi), (-4.0, -1.0),
                                     exclude=face_full < 4.0)
            if len(fr):
                strands.append(_make_strands(
                    rng, fr, fn, length=(ry * 0.4, ry * 1.3), width=(0.25, 0.6), spread=0.6, flow=0.0,
                    bend=0.5, wave=0.05, gravity=0.1, wiggle=0.15, root_colour=hair_col,
                    tip_colour=tip_col, colour_jitter=0.2, opacity=(0.4, 0.9)))
    layer = _Layer(prem, alpha, fill, "person", clothes)
    return layer, strands, sdf


def _creature(rng: np.random.Generator, h: int, w: int, s: float) -> tuple[_Layer, list[_Strands], np.ndarray]:
    m = min(h, w)
    cx = w * 0.5 + float(rng.uniform(-0.12, 0.12)) * w
    cy = h * 0.5 + float(rng.uniform(-0.12, 0.12)) * h
    r = float(rng.uniform(0.2, 0.34)) * m
    parts: list[_SdfFn] = []
    body_a = float(rng.uniform(0, np.pi))
    parts.append(_sdf_ellipse(cx, cy, r, r * float(rng.uniform(0.55, 0.9)), body_a))
    for _ in range(int(rng.integers(1, 5))):
        a = float(rng.uniform(0, 2 * np.pi))
        d = r * float(rng.uniform(0.5, 1.0))
        pr = r * float(rng.uniform(0.2, 0.55))
        parts.append(_sdf_ellipse(cx + d * math.cos(a), cy + d * math.sin(a), pr,
                                  pr * float(rng.uniform(0.5, 1.0)), float(rng.uniform(0, np.pi))))
    k = r * float(rng.uniform(0.1, 0.3))
    wob_amp = r * float(rng.uniform(0.0, 0.08))
    ext = r * 2.1

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = parts[0](x, y)
        for p in parts[1:]:
            out = _smin(out, p(x, y), k)
        return out

    shape = _Shape("animal", fn, (cx - ext, cy - ext, cx + ext, cy + ext))
    sdf = shape.evaluate(h, w, 4.0, far=float(m))
    if wob_amp > 0:
        sdf = sdf + wob_amp * (_fbm(rng, h, w, 5.0, 3)[0] - 0.5) * 2
    base = _rand_colour(rng, (0.1, 0.8), (0.15, 0.95))
    if rng.random() < 0.5:
        base = _HAIR[int(rng.integers(0, len(_HAIR)))].copy()
    fill = _texture(rng, h, w, base, str(rng.choice(["noise", "spots", "solid", "gradient"])))
    fill *= _shading(rng, sdf, r * 0.6, float(rng.uniform(0.2, 0.6)), shape.window(h, w, 4.0))[:, :, None]
    alpha = _coverage(sdf)
    prem = fill * alpha[:, :, None]
    per = float(rng.uniform(1.0, 4.0))
    n = int(per * 2 * np.pi * r * 1.5)
    roots, normals = _boundary_roots(rng, sdf, n, (cx, cy), None, (-3.0, -0.3))
    strands: list[_Strands] = []
    if len(roots):
        ri = np.clip(roots.astype(np.int64), 0, [w - 1, h - 1])
        rc = fill[ri[:, 1], ri[:, 0]]
        flen = float(rng.uniform(2.0, 12.0)) * s
        strands.append(_make_strands(
            rng, roots, normals, length=(flen * 0.4, flen), width=(0.35, float(rng.uniform(0.6, 1.3))),
            spread=float(rng.uniform(0.15, 0.5)), flow=float(rng.normal(0, 0.4)), bend=0.3,
            wave=0.0, gravity=float(rng.uniform(0.0, 0.3)), wiggle=0.05, root_colour=rc * 0.85,
            tip_colour=np.clip(rc * float(rng.uniform(0.9, 1.4)), 0, 1), colour_jitter=0.15,
            clump=_clumps(roots, (cx, cy), float(rng.uniform(1, 8))), clumping=float(rng.uniform(0, 0.5))))
        if rng.random() < 0.5:  # longer tufts on part of the contour
            tr, tn = _boundary_roots(rng, sdf, int(n * 0.3), (cx, cy),
                                     (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.5, 2.5))))
            if len(tr):
                ti = np.clip(tr.astype(np.int64), 0, [w - 1, h - 1])
                tc = fill[ti[:, 1], ti[:, 0]]
                strands.append(_make_strands(
                    rng, tr, tn, length=(flen, flen * float(rng.uniform(2, 5))), width=(0.3, 0.9),
                    spread=0.3, flow=float(rng.normal(0, 0.3)), bend=0.3, wave=0.05, gravity=0.3,
                    wiggle=0.1, root_colour=tc, tip_colour=np.clip(tc * 1.2, 0, 1), colour_jitter=0.2,
                    clump=_clumps(tr, (cx, cy), 6), clumping=0.5))
    return _Layer(prem, alpha, fill, str(rng.choice(["animal", "creature", "furry animal"])), base), strands, sdf


def _object_subject(rng: np.random.Generator, h: int, w: int, s: float,
                    glass: bool) -> tuple[_Layer, list[_Strands], np.ndarray]:
    m = min(h, w)
    cx = w * 0.5 + float(rng.uniform(-0.15, 0.15)) * w
    cy = h * 0.5 + float(rng.uniform(-0.15, 0.15)) * h
    r = float(np.sqrt(rng.uniform(0.18, 0.55) * h * w / np.pi))
    if glass:
        r *= 1.35
        noun = str(rng.choice(["bottle", "sphere", "vase"]))
        r = min(r, 0.55 * m)
        if noun == "sphere":
            shape = _Shape(noun, _sdf_ellipse(cx, cy, r * 0.8, r * 0.8), (cx - r, cy - r, cx + r, cy + r))
        else:
            bw = r * float(rng.uniform(0.3, 0.5))
            body = _sdf_round_rect(cx, cy + r * 0.25, bw, r * 0.65, bw * float(rng.uniform(0.3, 0.9)))
            neckw = bw * float(rng.uniform(0.25, 0.5)) if noun == "bottle" else bw * 0.7
            neck = _sdf_round_rect(cx, cy - r * 0.55, neckw, r * 0.4, neckw * 0.3)
            shape = _Shape(noun, lambda x, y: _smin(body(x, y), neck(x, y), bw * 0.5),
                           (cx - r, cy - r * 1.1, cx + r, cy + r * 1.1))
    else:
        noun = str(rng.choice(["blob", "blob", "box", "star", "polygon", "circle", "oval", "hexagon",
                               "triangle", "ring", "cross"]))
        if noun in ("star", "triangle", "polygon", "oval"):  # these fill less of their circle
            r *= 1.2
        shape = _random_shape(rng, noun, cx, cy, min(r, 0.62 * m))
    soft = 1.0 if rng.random() < 0.8 else float(rng.uniform(1.5, 5.0)) * s
    sdf = shape.evaluate(h, w, soft + 4.0, far=float(m))
    if noun == "blob" and rng.random() < 0.5:
        sdf = sdf + r * 0.06 * (_fbm(rng, h, w, 4.0, 3)[0] - 0.5) * 2
    cov = _coverage(sdf, soft)
    base = _rand_colour(rng, (0.0, 1.0), (0.1, 1.0))
    strands: list[_Strands] = []
    if glass:
        tint = np.clip(_rand_colour(rng, (0.0, 0.5), (0.6, 1.0)), 0, 1)
        inner = float(rng.uniform(0.08, 0.4))
        rim_w = r * float(rng.uniform(0.03, 0.15))
        a = cov * (inner + (1 - inner) * np.exp(np.minimum(sdf, 0.0) / rim_w))
        fill = np.broadcast_to(tint, (h, w, 3)).copy()
        fill *= (0.6 + 0.4 * _fbm(rng, h, w, 3.0, 3)[0])[:, :, None]
        prem = fill * a[:, :, None]
        for _ in range(int(rng.integers(1, 4))):  # specular highlights
            hx = cx + float(rng.uniform(-0.4, 0.4)) * r
            hy = cy + float(rng.uniform(-0.5, 0.3)) * r
            hl = _Shape("hl", _sdf_ellipse(hx, hy, r * float(rng.uniform(0.03, 0.1)),
                                           r * float(rng.uniform(0.1, 0.35)), float(rng.normal(0, 0.3))),
                        (hx - r * 0.4, hy - r * 0.4, hx + r * 0.4, hy + r * 0.4))
            ha = _coverage(hl.evaluate(h, w, 6.0), float(rng.uniform(1.0, 4.0) * s)) * float(rng.uniform(0.6, 1.0))
            ha *= cov
            white = np.ones((h, w, 3), _F32) * float(rng.uniform(0.9, 1.0))
            prem, a = _over(white * ha[:, :, None], ha, prem, a)
            fill = fill * (1 - ha[:, :, None]) + white * ha[:, :, None]
        return _Layer(np.asarray(prem, _F32), np.asarray(a, _F32), fill, "glass " + noun, tint), strands, sdf
    fill = _texture(rng, h, w, base)
    if rng.random() < 0.75:
        fill *= _shading(rng, sdf, r * float(rng.uniform(0.2, 0.7)), float(rng.uniform(0.2, 0.6)),
                         shape.window(h, w, soft + 4.0))[:, :, None]
    prem = fill * cov[:, :, None]
    if noun == "blob" and rng.random() < 0.45:  # hairy blob: strands on a sector of the contour
        n = int(float(rng.uniform(1.0, 5.0)) * r * float(rng.uniform(1.0, 6.0)))
        roots, normals = _boundary_roots(rng, sdf, n, (cx, cy),
                                         (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(1.0, 2 * np.pi))))
        if len(roots):
            hc = _HAIR[int(rng.integers(0, len(_HAIR)))] if rng.random() < 0.6 else _rand_colour(rng)
            strands.append(_make_strands(
                rng, roots, normals, length=(r * 0.08, r * float(rng.uniform(0.2, 0.8))),
                width=(0.3, float(rng.uniform(0.6, 1.8))), spread=0.4, flow=float(rng.normal(0, 0.4)),
                bend=0.3, wave=float(rng.uniform(0, 0.1)), gravity=float(rng.uniform(0, 0.4)),
                wiggle=float(rng.uniform(0, 0.1)), root_colour=hc, tip_colour=np.clip(hc * 1.3, 0, 1),
                colour_jitter=0.25, clump=_clumps(roots, (cx, cy), float(rng.uniform(1, 15))),
                clumping=float(rng.uniform(0, 0.7))))
    return _Layer(np.asarray(prem, _F32), cov, fill, noun, base), strands, sdf


def _add_veil(rng: np.random.Generator, layer: _Layer, sdf: np.ndarray, s: float) -> None:
    """A semi-transparent veil (alpha 0.2-0.8, smoothly varying) in front of the subject's edge."""
    h, w = layer.alpha.shape
    ys, xs = np.nonzero((sdf > -2) & (sdf < 0))
    if len(xs) == 0:
        return
    i = int(rng.integers(0, len(xs)))
    cx, cy = float(xs[i]), float(ys[i])
    r = float(rng.uniform(0.12, 0.3)) * min(h, w)
    shp = _random_shape(rng, str(rng.choice(["blob", "oval", "box"])), cx, cy, r)
    soft = float(rng.uniform(1.0, 3.0)) * s if rng.random() < 0.5 else 1.0
    cov = _coverage(shp.evaluate(h, w, soft + 3), soft)
    level = float(rng.uniform(0.2, 0.8))
    var = _fbm(rng, h, w, float(rng.uniform(2, 6)), 4)[0] - 0.5
    a = float(rng.uniform(0, np.pi))
    yy = np.arange(h, dtype=_F32)[:, None]
    xx = np.arange(w, dtype=_F32)[None, :]
    folds = np.sin((math.cos(a) * xx + math.sin(a) * yy) / (float(rng.uniform(4, 20)) * s))
    va = cov * np.clip(level + float(rng.uniform(0, 0.3)) * var + float(rng.uniform(0, 0.15)) * folds, 0.05, 0.95)
    col = np.clip(_rand_colour(rng, (0.0, 0.6), (0.5, 1.0)), 0, 1)
    vfill = np.broadcast_to(col, (h, w, 3)) * (0.85 + 0.15 * folds)[:, :, None]
    prem, alpha = _over(vfill * va[:, :, None], va, layer.prem, layer.alpha)
    layer.prem, layer.alpha = prem, alpha
    layer.fill = np.asarray(layer.fill * (1 - va[:, :, None]) + vfill * va[:, :, None], _F32)


def _single_subject(rng: np.random.Generator, h: int, w: int, s: float) -> _Layer:
    kind = str(rng.choice(["portrait", "creature", "object", "glass"], p=[0.35, 0.25, 0.3, 0.1]))
    if kind == "portrait":
        layer, strands, sdf = _portrait(rng, h, w, s)
    elif kind == "creature":
        layer, strands, sdf = _creature(rng, h, w, s)
    else:
        layer, strands, sdf = _object_subject(rng, h, w, s, kind == "glass")
    if strands:
        sp, sa = _strand_layer(rng, h, w, strands, int(95_000 * s**1.7))
        layer.prem, layer.alpha = _over(sp, sa, layer.prem, layer.alpha)
        hair_col = sp / np.maximum(sa, 1e-6)[:, :, None]
        layer.fill = np.asarray(layer.fill * (1 - sa[:, :, None]) + hair_col * sa[:, :, None], _F32)
    if kind != "glass" and rng.random() < 0.2:
        _add_veil(rng, layer, sdf, s)
    u = rng.random()
    if u < 0.15:  # motion blur
        _blur_layer(layer, 0.0, float(rng.uniform(3, 25)) * s, float(rng.uniform(0, np.pi)))
    elif u < 0.3:  # defocus
        _blur_layer(layer, float(rng.uniform(0.6, 3.5)) * s, 0.0, 0.0)
    return layer


def _blur_layer(layer: _Layer, sigma: float, motion: float, angle: float) -> None:
    """Blur premultiplied colour and alpha together; unpremultiply against the old colour."""
    stack = np.concatenate([layer.prem, layer.alpha[:, :, None]], axis=2)
    out = _blur(stack, sigma, motion, angle)
    layer.prem = np.clip(out[:, :, :3], 0, 1)
    layer.alpha = np.clip(out[:, :, 3], 0, 1)


def _unpremultiply(layer: _Layer) -> np.ndarray:
    eps = 1e-3
    a = layer.alpha[:, :, None]
    fg = (layer.prem + eps * layer.fill) / (a + eps)
    return np.asarray(np.clip(fg, 0, 1), _F32)


# --------------------------------------------------------------------------- scenes


def _bbox(alpha: np.ndarray) -> tuple[int, int, int, int]:
    mask = alpha > 0.01
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0, 0, 0, 0)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _single_scene(rng: np.random.Generator, h: int, w: int, s: float) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, tuple[SceneObject, ...], str]:
    layer = _single_subject(rng, h, w, s)
    fg = _unpremultiply(layer)
    near = None
    if rng.random() < 0.1:  # hard case: background colours close to the subject's
        wsum = float(layer.alpha.sum())
        near = (fg * layer.alpha[:, :, None]).reshape(-1, 3).sum(axis=0) / max(wsum, 1.0)
    bg, _ = _background(rng, h, w, near, False)
    bg = _add_distractors(rng, bg, int(rng.choice([0, 1, 2, 3, 4], p=[0.3, 0.3, 0.2, 0.1, 0.1])), s)
    bg = _finish_background(rng, bg, s)
    alpha = np.clip(layer.alpha, 0, 1).astype(_F32)
    cname = _colour_name(layer.colour)
    noun = layer.noun
    described = f"the {noun} in {cname}" if noun == "person" else f"the {cname} {noun}"
    options = ["the foreground subject", "the subject", "the main subject", f"the {noun}",
               described, f"the foreground {noun}"]
    caption = options[int(rng.integers(0, len(options)))]
    obj = SceneObject(noun, caption, alpha, _bbox(alpha), tuple(options))
    return fg, alpha, bg, (obj,), caption


_SHAPES = ["circle", "square", "triangle", "star", "hexagon", "pentagon", "diamond", "cross", "ring", "oval"]


def _multi_scene(rng: np.random.Generator, h: int, w: int, s: float) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, tuple[SceneObject, ...], str]:
    n = int(rng.integers(2, 5))
    layout = "row" if n == 4 and rng.random() < 0.5 else ("grid" if n == 4 else str(rng.choice(["row", "column"])))
    if layout == "row":
        cells = [((k + 0.5) / n, 0.5) for k in range(n)]
        cw, ch = w / n, h * 0.8
    elif layout == "column":
        cells = [(0.5, (k + 0.5) / n) for k in range(n)]
        cw, ch = w * 0.8, h / n
    else:
        cells = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
        cw, ch = w / 2, h / 2
    colours = [str(c) for c in rng.choice(list(_NAMED), n, replace=False)]
    shapes = [str(c) for c in rng.choice(_SHAPES, n, replace=False)]
    bg, _ = _background(rng, h, w, None, True)
    bg = _add_distractors(rng, bg, int(rng.integers(0, 3)), s)
    bg = _finish_background(rng, bg, s)
    alphas: list[np.ndarray] = []
    fills: list[tuple[np.ndarray, tuple[slice, slice]]] = []
    for k in range(n):
        rmax = 0.5 * min(cw, ch)
        r = rmax * float(rng.uniform(0.55, 0.85))
        slack = rmax - r
        cx = cells[k][0] * w + float(rng.uniform(-slack, slack)) * 0.8
        cy = cells[k][1] * h + float(rng.uniform(-slack, slack)) * 0.8
        shp = _random_shape(rng, shapes[k], cx, cy, r)
        soft = 1.0 if rng.random() < 0.8 else float(rng.uniform(1.0, 2.5)) * s
        win = shp.window(h, w, soft + 3.0)
        sdf = shp.local(*win)
        a = np.zeros((h, w), _F32)
        a[win] = _coverage(sdf, soft)
        col = _jitter(rng, np.array(_NAMED[colours[k]], _F32), 0.03)
        shade = _shading(rng, sdf, r * 0.5, float(rng.uniform(0.0, 0.35)))
        fills.append((np.clip(col * shade[:, :, None], 0, 1).astype(_F32), win))
        alphas.append(a)
    pos = _positions(layout, [_centroid(a) for a in alphas])
    subject = int(rng.integers(0, n))
    objects = []
    for k in range(n):
        caps = [f"the {colours[k]} {shapes[k]}", f"the {shapes[k]}", f"the {colours[k]} object",
                f"the {colours[k]} one", *pos[k]]
        cap = caps[int(rng.integers(0, len(caps)))]
        objects.append(SceneObject(f"{colours[k]} {shapes[k]}", cap, alphas[k], _bbox(alphas[k]), tuple(caps)))
    for k in range(n):  # the other objects are part of the background
        if k != subject:
            fill, win = fills[k]
            a = alphas[k][win][:, :, None]
            bg[win] = bg[win] * (1 - a) + fill * a
    fill, win = fills[subject]
    fg = np.empty((h, w, 3), _F32)
    fg[...] = fill[fill.shape[0] // 2, fill.shape[1] // 2]
    fg[win] = fill
    return fg, alphas[subject], np.asarray(np.clip(bg, 0, 1), _F32), tuple(objects), objects[subject].caption


def _centroid(alpha: np.ndarray) -> tuple[float, float]:
    tot = max(float(alpha.sum()), 1e-6)
    cx = float(alpha.sum(axis=0) @ np.arange(alpha.shape[1], dtype=_F32)) / tot
    cy = float(alpha.sum(axis=1) @ np.arange(alpha.shape[0], dtype=_F32)) / tot
    return cx, cy


def _positions(layout: str, centroids: list[tuple[float, float]]) -> list[list[str]]:
    """Positional referring expressions per object, derived from the centroids."""
    n = len(centroids)
    out: list[list[str]] = [[] for _ in range(n)]
    if layout == "grid":
        xs = sorted(range(n), key=lambda i: centroids[i][0])
        ys = sorted(range(n), key=lambda i: centroids[i][1])
        for i in range(n):
            v = "top" if ys.index(i) < 2 else "bottom"
            hz = "left" if xs.index(i) < 2 else "right"
            out[i] += [f"the object at the {v} {hz}", f"the {v} {hz} object"]
        return out
    axis = 0 if layout == "row" else 1
    order = sorted(range(n), key=lambda i: centroids[i][axis])
    first, last = ("left", "right") if axis == 0 else ("top", "bottom")
    if axis == 0:
        out[order[0]] += ["the object on the left", "the leftmost object"]
        out[order[-1]] += ["the object on the right", "the rightmost object"]
    else:
        out[order[0]] += ["the object at the top", "the topmost object"]
        out[order[-1]] += ["the object at the bottom", "the bottom object"]
    if n == 3:
        out[order[1]] += ["the object in the middle"]
    elif n == 4:
        out[order[1]] += [f"the second object from the {first}"]
        out[order[2]] += [f"the second object from the {last}"]
    return out


def make_composite(rng: np.random.Generator, size: int | tuple[int, int] = 256, *,
                   multi_object: bool = False) -> Composite:
    """Draw one composite from ``rng``; ``size`` is a side or (height, width).

    With ``multi_object`` the scene holds two to four named objects and one of them,
    named by ``caption``, is the subject; the others belong to the background.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if not (16 <= h <= 4096 and 16 <= w <= 4096):
        raise UsageError(f"Composite size must be between 16 and 4096 pixels a side, not {h}x{w}.")
    s = min(h, w) / 256.0
    if multi_object:
        fg, alpha, bg, objects, caption = _multi_scene(rng, h, w, s)
    else:
        fg, alpha, bg, objects, caption = _single_scene(rng, h, w, s)
    clean = fg * alpha[:, :, None] + bg * (1.0 - alpha[:, :, None])
    # mild sensor noise: per-channel plus luminance, each a triangular (bounded) distribution
    sigma = float(rng.uniform(0.0, 0.02))
    amp_rgb, amp_lum = 2.449 * 0.8 * sigma, 2.449 * 0.6 * sigma
    bound = amp_rgb + amp_lum
    raw = np.frombuffer(rng.bytes(h * w * 8), np.uint8)
    noise = raw[: h * w * 3].astype(_F32)
    noise += raw[h * w * 3: h * w * 6]
    noise -= 255.0
    noise *= amp_rgb / 255.0
    noise = noise.reshape(h, w, 3)
    lum = raw[h * w * 6: h * w * 7].astype(_F32)
    lum += raw[h * w * 7:]
    lum -= 255.0
    lum *= amp_lum / 255.0
    noise += lum.reshape(h, w, 1)
    image = np.clip(clean + noise, 0.0, 1.0).astype(_F32)
    return Composite(image, alpha, fg, bg, objects, caption, bound)


class CompositeDataset:
    """A deterministic, torch-free dataset of procedural composites.

    Composite ``i`` depends only on ``(seed, i)`` (and ``size`` and
    ``multi_object_fraction``), never on which composites were drawn before.
    """

    def __init__(self, length: int, size: int = 256, seed: int = 0, multi_object_fraction: float = 0.0) -> None:
        if length < 0:
            raise UsageError(f"Dataset length must not be negative, not {length}.")
        if not 0.0 <= multi_object_fraction <= 1.0:
            raise UsageError(f"multi_object_fraction must be between 0 and 1, not {multi_object_fraction}.")
        self.length = length
        self.size = size
        self.seed = seed
        self.multi_object_fraction = multi_object_fraction

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Composite:
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"composite index {i} out of range for a dataset of {self.length}")
        rng = np.random.default_rng([self.seed, i])
        multi = bool(rng.random() < self.multi_object_fraction)
        return make_composite(rng, self.size, multi_object=multi)

    def __iter__(self) -> Iterator[Composite]:
        for i in range(self.length):
            yield self[i]


def contact_sheet(composites: Sequence[Composite]) -> np.ndarray:
    """A uint8 (H, W, 3) grid, one row per composite: image | alpha | foreground over a checkerboard."""
    if not composites:
        return np.zeros((1, 1, 3), np.uint8)
    gap = 4
    th = max(c.image.shape[0] for c in composites)
    tw = max(c.image.shape[1] for c in composites)
    sheet = np.full((len(composites) * (th + gap) + gap, 3 * (tw + gap) + gap, 3), 0.12, _F32)
    for r, c in enumerate(composites):
        h, w = c.alpha.shape
        yy, xx = np.indices((h, w))
        checker = np.where(((yy // 8 + xx // 8) % 2) == 0, 0.8, 0.55).astype(_F32)[:, :, None]
        a = c.alpha[:, :, None]
        tiles = [c.image, np.repeat(a, 3, axis=2), c.foreground * a + checker * (1 - a)]
        y0 = gap + r * (th + gap)
        for k, tile in enumerate(tiles):
            x0 = gap + k * (tw + gap)
            sheet[y0:y0 + h, x0:x0 + w] = tile
    return np.asarray(np.round(np.clip(sheet, 0, 1) * 255), np.uint8)
