"""The review's outputs: the HTML page, the score plot, the contact sheet and the score files."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from vfxmatte.errors import OutputError
from vfxmatte.io.sequence import format_ranges
from vfxmatte.review.images import colormap_lut
from vfxmatte.review.records import FrameReview, ReviewResult, ReviewSettings


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from exc


def write_scores(result: ReviewResult) -> None:
    """``scores.csv`` (frame, score, flagged, path) and ``scores.json`` (that plus the threshold)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "uncertainty", "flagged", "path", "keyframe_doubt", "clean_plate_missed"])
    for f in result.frames:
        doubt = "" if f.keyframe_doubt is None else repr(f.keyframe_doubt)
        missed = "" if f.plate_missed is None else repr(f.plate_missed)
        writer.writerow([f.frame, repr(f.score), int(f.flagged), f.path, doubt, missed])
    write_text(result.scores_csv, buffer.getvalue())
    write_text(result.scores_json, json.dumps(result.as_dict(), indent=2) + "\n")


def write_plot(result: ReviewResult, path: Path) -> dict[str, float]:
    """The per-frame score plot with the threshold; returns the axes' place in the image.

    The returned fractions (``left``/``right`` of the image width) and frame limits let the
    page turn a click on the plot into a frame.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frames = [f.frame for f in result.frames]
    scores = [f.score for f in result.frames]
    fig = Figure(figsize=(10, 2.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(frames, scores, color="#3b6ea5", linewidth=1.2, marker="o" if len(frames) <= 200 else None, markersize=3)
    flagged = [(f.frame, f.score) for f in result.frames if f.flagged]
    if flagged:
        ax.scatter([x for x, _ in flagged], [y for _, y in flagged], color="#d62728", s=22, zorder=3, label="flagged")
    ax.axhline(result.threshold, color="#d62728", linestyle="--", linewidth=1, label="threshold")
    ax.axhline(result.median, color="#7f7f7f", linestyle=":", linewidth=1, label="median")
    pad = 0.5 if len(frames) < 2 else 0.0
    ax.set_xlim(frames[0] - pad - 0.5, frames[-1] + pad + 0.5)
    ax.set_ylim(bottom=0.0, top=max(max(scores), result.threshold) * 1.15 or 1.0)
    ax.set_xlabel("frame")
    ax.set_ylabel("estimated alpha error")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", frameon=False, ncols=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, format="png")
    box = ax.get_position()
    xmin, xmax = ax.get_xlim()
    return {"left": float(box.x0), "right": float(box.x1), "xmin": float(xmin), "xmax": float(xmax)}


def write_contact_sheet(result: ReviewResult, path: Path, settings: ReviewSettings, max_width: int = 4096) -> None:
    """Every frame's comp and heat thumbnails side by side, labelled, flagged frames outlined red."""
    from PIL import Image, ImageDraw, ImageOps

    count = len(result.frames)
    first = result.frames[0]
    aspect = first.height / max(1, first.width)
    columns = max(1, min(count, math.ceil(math.sqrt(count * 1.5))))
    tile_w = max(48, min(settings.thumb_size, (max_width // columns - 12) // 2))
    tile_h = max(1, round(tile_w * aspect))
    label_h, pad = 16, 6
    cell_w, cell_h = 2 * tile_w + 2 * pad, tile_h + label_h + 2 * pad
    rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, f in enumerate(result.frames):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        for offset, key in ((0, "comp"), (tile_w, "heat")):
            with Image.open(result.directory / f.images[key]) as tile:
                fitted = ImageOps.pad(tile.convert("RGB"), (tile_w, tile_h), color=(24, 24, 24))
            sheet.paste(fitted, (x + pad + offset, y + pad))
        if f.flagged:
            draw.rectangle([x + 2, y + 2, x + cell_w - 3, y + cell_h - 3], outline=(214, 39, 40), width=3)
        text_colour = (255, 120, 120) if f.flagged else (220, 220, 220)
        draw.text((x + pad, y + pad + tile_h + 2), f"{f.frame}  {f.score:.4f}", fill=text_colour)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=3)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def _gradient_css() -> str:
    lut = colormap_lut()
    stops = ", ".join(f"rgb({r},{g},{b}) {i / 15 * 100:.0f}%" for i, (r, g, b) in enumerate(lut[:: 255 // 15][:16]))
    return f"linear-gradient(to right, {stops})"


def render_html(result: ReviewResult, axes: dict[str, float], settings: ReviewSettings) -> str:
    """The page: header, plot, flagged frames with crops, every frame's thumbnails, a viewer."""
    esc = html.escape
    data = {
        "axes": axes,
        "frames": [
            {
                "frame": f.frame,
                "score": f.score,
                "flagged": f.flagged,
                "path": os.path.basename(f.path),
                "size": [f.width, f.height],
                "images": f.images,
                "crops": f.crops,
            }
            for f in result.frames
        ],
    }
    payload = json.dumps(data).replace("</", "<\\/")
    flagged = sorted((f for f in result.frames if f.flagged), key=lambda f: -f.score)

    def card(f: FrameReview) -> str:
        imgs = "".join(
            f'<img loading="lazy" src="{esc(f.images[k])}" alt="{k} {f.frame}" width="{settings.thumb_size}">'
            for k in ("comp", "alpha", "heat")
        )
        cls = "card flagged" if f.flagged else "card"
        return (
            f'<figure class="{cls}" id="frame-{f.frame}" data-frame="{f.frame}" tabindex="0">'
            f'<div class="thumbs">{imgs}</div>'
            f"<figcaption><b>{f.frame}</b> <span>{f.score:.5f}</span>{' ⚑ flagged' if f.flagged else ''}"
            "</figcaption></figure>"
        )

    def flagged_row(f: FrameReview) -> str:
        crops = "".join(
            f'<img loading="lazy" class="crop" src="{esc(c["image"])}" '
            f'title="region (data window) x={c["x"]} y={c["y"]} size {c["size"]} px, mean uncertainty {c["mean"]:.4f}" '
            f'alt="crop {f.frame}">'
            for c in f.crops
        )
        return (
            f'<div class="flag-row" data-frame="{f.frame}" tabindex="0">'
            f'<div class="flag-head"><b>{f.frame}</b><span>{f.score:.5f}</span></div>'
            f'<img loading="lazy" src="{esc(f.images["comp"])}" alt="comp {f.frame}" width="{settings.thumb_size}">'
            f"{crops or '<i>no uncertain region</i>'}</div>"
        )

    by_frame = {f.frame: f for f in result.frames}

    def frame_row(f: FrameReview, kind: str, label: str, images: tuple[str, str]) -> str:
        """A listed frame (next keyframe, missed subject): its number, ``label`` and two thumbnails."""
        thumbs = "".join(
            f'<img loading="lazy" src="{esc(f.images[image])}" alt="{image} {f.frame}" width="{settings.thumb_size}">'
            for image in images
        )
        return (
            f'<div class="{kind}" data-frame="{f.frame}" tabindex="0">'
            f'<div class="flag-head"><b>{f.frame}</b><span>{label}</span></div>{thumbs}</div>'
        )

    def listing(
        frames: list[int],
        value: Callable[[FrameReview], float | None],
        row: Callable[[FrameReview, float], str],
        none: str,
        absent: str,
    ) -> str:
        """The rows of ``frames`` (each with its ``value``); without any, ``none`` where the run
        measured ``value`` on some frame, else ``absent`` (the run had no such check)."""
        if frames:
            return "".join(row(by_frame[frame], value(by_frame[frame]) or 0.0) for frame in frames)
        return f"<p>{none if any(value(f) is not None for f in result.frames) else absent}</p>"

    keyframes_html = listing(
        result.next_keyframes,
        lambda f: f.keyframe_doubt,
        lambda f, doubt: frame_row(f, "key-row", f"keyframe doubt {doubt:.4f}", ("comp", "heat")),
        "The carried guide holds on every frame: no new keyframe suggested.",
        "This run had no carried guide (no <code>vfxmatte:keyframe_doubt</code>).",
    )
    missed_html = listing(
        result.missed,
        lambda f: f.plate_missed,
        lambda f, share: frame_row(f, "miss-row", f"{share:.2%} of the frame", ("comp", "alpha")),
        "The clean plate sees no subject the matte leaves out.",
        "No clean plate's check on this run (no <code>vfxmatte:clean_plate_missed</code>: a guided run, "
        "a still, <code>--clean-plate fill</code> or <code>off</code>).",
    )
    notes = []
    if result.missing:
        notes.append(f"missing on disk: frames {format_ranges(result.missing)}")
    notes.extend(result.errors)
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    flagged_html = "".join(flagged_row(f) for f in flagged) or "<p>No frame is above the threshold.</p>"
    return _PAGE.format(
        title=esc(os.path.basename(result.pattern)),
        pattern=esc(result.pattern),
        count=len(result.frames),
        first=result.frames[0].frame,
        last=result.frames[-1].frame,
        flagged_count=len(flagged),
        threshold=f"{result.threshold:.5f}",
        rule=esc(result.threshold_rule),
        heat_max=f"{settings.heat_max:g}",
        gradient=_gradient_css(),
        notes=f'<ul class="notes">{notes_html}</ul>' if notes else "",
        flagged_html=flagged_html,
        keyframes_html=keyframes_html,
        keyframe_count=len(result.next_keyframes),
        missed_html=missed_html,
        missed_count=len(result.missed),
        cards="".join(card(f) for f in result.frames),
        payload=payload,
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vfxmatte review — {title}</title>
<style>
body {{ margin: 0; padding: 16px 24px; background: #1b1b1b; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }}
a {{ color: #8cb4ff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 8px; }}
.meta span {{ margin-right: 18px; }}
#plot {{ max-width: 100%; background: #fff; cursor: pointer; display: block; }}
.legend {{ display: inline-flex; align-items: center; gap: 6px; }}
.legend i {{ display: inline-block; width: 160px; height: 10px; background: {gradient}; }}
.flag-row {{ display: flex; align-items: flex-start; gap: 8px; padding: 6px; margin-bottom: 6px;
  background: #2a2020; border-left: 4px solid #d62728; cursor: pointer; overflow-x: auto; }}
.key-row {{ display: flex; align-items: flex-start; gap: 8px; padding: 6px; margin-bottom: 6px;
  background: #20262a; border-left: 4px solid #8cb4ff; cursor: pointer; }}
.key-row img {{ height: 120px; width: auto; }}
.miss-row {{ display: flex; align-items: flex-start; gap: 8px; padding: 6px; margin-bottom: 6px; }}
.miss-row img {{ height: 120px; width: auto; }}
.flag-head {{ display: flex; flex-direction: column; min-width: 90px; }}
.flag-row img {{ height: 120px; width: auto; }}
#grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
.card {{ margin: 0; padding: 6px; background: #262626; border: 2px solid transparent; cursor: pointer; }}
.card.flagged {{ border-color: #d62728; }}
.card:hover, .card:focus, .flag-row:hover {{ outline: 2px solid #8cb4ff; }}
.thumbs {{ display: flex; gap: 3px; }}
.thumbs img {{ width: 120px; height: auto; background: #111; }}
figcaption span {{ color: #aaa; margin-left: 6px; }}
.card.flagged figcaption {{ color: #ff7878; }}
.notes {{ color: #ffb45a; }}
#viewer {{ position: fixed; inset: 0; background: rgba(16,16,16,.97); display: none; flex-direction: column;
  padding: 16px; overflow: auto; z-index: 10; }}
#viewer.open {{ display: flex; }}
#viewer .bar {{ display: flex; gap: 12px; align-items: center; margin-bottom: 10px; }}
#viewer button {{ background: #333; color: #eee; border: 1px solid #555; padding: 4px 10px; cursor: pointer; }}
#viewer button.on {{ background: #8cb4ff; color: #111; }}
#large {{ height: 70vh; max-width: 100%; object-fit: contain; object-position: left top; background: #111; }}
#viewer .crops img {{ margin: 8px 8px 0 0; height: 160px; width: auto; }}
</style>
</head>
<body>
<h1>Uncertainty review — {title}</h1>
<div class="meta"><span>{pattern}</span><span>{count} frames ({first}–{last})</span>
<span><b>{flagged_count}</b> flagged: score &gt; {threshold} ({rule})</span></div>
<div class="meta"><a href="contact_sheet.png">contact sheet</a> · <a href="scores.csv">scores.csv</a> ·
<a href="scores.json">scores.json</a> ·
<span class="legend">heat map 0 <i></i> {heat_max}+ (estimated alpha error)</span></div>
{notes}
<h2>Estimated alpha error per frame (header vfxmatte:uncertainty)</h2>
<img id="plot" src="plot.png" alt="per-frame uncertainty score with the flag threshold">
<h2>Flagged frames ({flagged_count}) — most uncertain regions: comp | alpha | heat</h2>
<div id="flagged">{flagged_html}</div>
<h2>Next keyframe ({keyframe_count}) — where a new roto would help most</h2>
<div id="next-keyframes">{keyframes_html}</div>
<h2>Missed subject ({missed_count}) — the clean plate sees a subject the matte leaves out (a head or hat
lost against its own colour?): comp | alpha</h2>
<div id="missed">{missed_html}</div>
<h2>All frames — comp over checkerboard | alpha | uncertainty</h2>
<div id="grid">{cards}</div>
<div id="viewer" role="dialog" aria-modal="true">
<div class="bar"><button id="prev">◀ prev</button><button id="next">next ▶</button>
<button id="close">close ✕</button><b id="viewer-title"></b>
<span>view (keys 1 2 3):</span><button class="kind" data-kind="comp">comp</button>
<button class="kind" data-kind="alpha">alpha</button><button class="kind" data-kind="heat">uncertainty</button></div>
<div><img id="large" alt="large view"></div>
<div class="crops" id="viewer-crops"></div>
</div>
<script id="review-data" type="application/json">{payload}</script>
<script>{script}</script>
</body>
</html>
"""

_SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const frames = data.frames;
  const byFrame = new Map(frames.map((f, i) => [f.frame, i]));
  const viewer = document.getElementById("viewer");
  let current = -1;
  let kind = "comp";

  function show(index) {
    if (index < 0 || index >= frames.length) return;
    current = index;
    const f = frames[index];
    setKind(kind);
    document.getElementById("viewer-title").textContent =
      "frame " + f.frame + " — score " + f.score.toFixed(5) + (f.flagged ? " — flagged" : "") +
      " — " + f.path + " (" + f.size[0] + "×" + f.size[1] + ")";
    const crops = document.getElementById("viewer-crops");
    crops.replaceChildren(...f.crops.map((c) => {
      const img = document.createElement("img");
      img.src = c.image;
      img.title = "region (data window) x=" + c.x + " y=" + c.y + " size " + c.size + " px, mean " + c.mean.toFixed(4);
      return img;
    }));
    viewer.classList.add("open");
    if (location.hash !== "#" + f.frame) history.replaceState(null, "", "#" + f.frame);
  }
  function setKind(name) {
    kind = name;
    if (current < 0) return;
    const large = document.getElementById("large");
    large.src = frames[current].images[kind + "_large"];
    large.dataset.kind = kind;
    document.querySelectorAll("#viewer .kind").forEach((b) => b.classList.toggle("on", b.dataset.kind === kind));
  }
  function close() {
    viewer.classList.remove("open");
    current = -1;
    history.replaceState(null, "", location.pathname);
  }
  function openFrame(frame) {
    const index = byFrame.get(frame);
    if (index !== undefined) show(index);
  }
  document.querySelectorAll("[data-frame]").forEach((el) => {
    el.addEventListener("click", () => openFrame(Number(el.dataset.frame)));
    el.addEventListener("keydown", (e) => { if (e.key === "Enter") openFrame(Number(el.dataset.frame)); });
  });
  document.getElementById("plot").addEventListener("click", (e) => {
    const rect = e.currentTarget.getBoundingClientRect();
    const a = data.axes;
    const fx = (e.clientX - rect.left) / rect.width;
    const value = a.xmin + (fx - a.left) / (a.right - a.left) * (a.xmax - a.xmin);
    let best = 0;
    frames.forEach((f, i) => { if (Math.abs(f.frame - value) < Math.abs(frames[best].frame - value)) best = i; });
    show(best);
  });
  document.getElementById("close").addEventListener("click", close);
  document.querySelectorAll("#viewer .kind").forEach((b) => b.addEventListener("click", () => setKind(b.dataset.kind)));
  document.getElementById("prev").addEventListener("click", () => show(current - 1));
  document.getElementById("next").addEventListener("click", () => show(current + 1));
  viewer.addEventListener("click", (e) => { if (e.target === viewer) close(); });
  document.addEventListener("keydown", (e) => {
    if (current < 0) return;
    if (e.key === "Escape") close();
    else if (e.key === "ArrowLeft") show(current - 1);
    else if (e.key === "ArrowRight") show(current + 1);
    else if (["1", "2", "3"].includes(e.key)) setKind(["comp", "alpha", "heat"][Number(e.key) - 1]);
  });
  const initial = Number(location.hash.slice(1));
  if (location.hash.length > 1 && byFrame.has(initial)) openFrame(initial);
})();
"""
