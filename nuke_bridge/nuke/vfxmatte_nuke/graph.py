"""The nodes vfxmatte puts into a script: the result Read and the uncertainty heat overlay.

::

    plate Read ─────────────────────────────┐ B
    result Read ─ Shuffle (uncertainty → rgba) ─ Grade (whitepoint) ─ Expression (heat ramp) ─ Merge2 over ─ Dot
                                                                                               A

The result Read holds the premultiplied RGBA and the ``uncertainty`` layer (one channel,
``uncertainty.Y``).  The overlay maps uncertainty 0 → transparent, ``whitepoint`` (the Grade,
``VFXMATTE_HEAT_MAX``, default 0.25 like the review page) → opaque white through black-red-yellow,
merged over the plate at ``mix`` 0.7, so the regions to clean up glow on the plate.
"""

from __future__ import annotations

import os
from typing import Any, cast

import nuke

from nuke_bridge.jobs import hashes, review_page

UNCERTAINTY_LAYER = "uncertainty"
UNCERTAINTY_CHANNEL = "uncertainty.Y"
DEFAULT_HEAT_MAX = 0.25
# Black → red → yellow → white over [0, 1]; premultiplied by the alpha (= the normalised uncertainty).
HEAT_EXPRESSIONS = (
    "clamp(3*r) * clamp(r)",
    "clamp(3*r-1) * clamp(r)",
    "clamp(3*r-2) * clamp(r)",
    "clamp(r)",
)
REVIEW_SCRIPT = "import vfxmatte_nuke.panel\nvfxmatte_nuke.panel.open_review(nuke.thisNode())"


def heat_max() -> float:
    try:
        return float(os.environ.get("VFXMATTE_HEAT_MAX", "") or DEFAULT_HEAT_MAX)
    except ValueError:
        return DEFAULT_HEAT_MAX


def _set(node: Any, **knobs: Any) -> Any:
    for name, value in knobs.items():
        node[name].setValue(value)
    return node


def _place(node: Any, x: int, y: int) -> Any:
    node.setXYpos(int(x), int(y))
    return node


def ensure_uncertainty_layer() -> None:
    """Declare the ``uncertainty`` layer so the Shuffle can name it before the first frame is read."""
    if UNCERTAINTY_LAYER not in nuke.layers():
        nuke.Layer(UNCERTAINTY_LAYER, [UNCERTAINTY_CHANNEL])


def create_result_read(
    plate: Any, output: str, first: int, last: int, colorspace: str | None, job_label: str
) -> Any:
    """A Read of the matte EXRs beside the plate: premultiplied, black where a frame has not landed yet."""
    read = nuke.nodes.Read()
    _set(read, file=hashes(output), first=first, last=last, origfirst=first, origlast=last)
    _set(read, premultiplied=True, on_error="black")
    if colorspace:
        _set(read, colorspace=colorspace)
    read["label"].setValue("vfxmatte matte")
    _place(read, plate.xpos() + 150, plate.ypos())
    read.addKnob(nuke.Tab_Knob("vfxmatte", "vfxmatte"))
    status = nuke.Text_Knob("vfxmatte_status", "status", f"{job_label}: submitted")
    read.addKnob(status)
    out_knob = nuke.String_Knob("vfxmatte_output", "output")
    read.addKnob(out_knob)
    out_knob.setValue(output)
    button = nuke.PyScript_Knob("vfxmatte_review", "Open review page", REVIEW_SCRIPT)
    read.addKnob(button)
    button.setEnabled(False)  # enabled once the review page exists (see ``set_status``)
    return read


def create_heat_overlay(plate: Any, result: Any) -> dict[str, Any]:
    """Shuffle → Grade → Expression → Merge2 (over the plate); returns the nodes by role."""
    ensure_uncertainty_layer()
    x, y = result.xpos(), result.ypos()
    shuffle = _place(nuke.nodes.Shuffle(), x, y + 100)
    _set(shuffle, **{"in": UNCERTAINTY_LAYER, "red": "red", "green": "red", "blue": "red", "alpha": "red"})
    shuffle["label"].setValue("uncertainty")
    shuffle.setInput(0, result)
    grade = _place(nuke.nodes.Grade(), x, y + 150)
    _set(grade, whitepoint=heat_max(), white_clamp=True)
    grade["label"].setValue("uncertainty range")
    grade.setInput(0, shuffle)
    heat = _place(nuke.nodes.Expression(), x, y + 200)
    for index, expression in enumerate(HEAT_EXPRESSIONS):
        heat[f"expr{index}"].setValue(expression)
    heat["label"].setValue("heat ramp")
    heat.setInput(0, grade)
    merge = _place(nuke.nodes.Merge2(), plate.xpos(), y + 250)
    _set(merge, operation="over", mix=0.7)
    merge["label"].setValue("uncertainty over plate")
    merge.setInput(0, plate)  # B
    merge.setInput(1, heat)  # A
    return {"shuffle": shuffle, "grade": grade, "heat": heat, "merge": merge}


def set_status(read_name: str, text: str) -> None:
    """Main thread only: the status line on the result Read's vfxmatte tab, and its review button."""
    node = nuke.toNode(read_name)
    if node is None or node.knob("vfxmatte_status") is None:
        return
    node["vfxmatte_status"].setValue(text)
    node["vfxmatte_review"].setEnabled(review_of(node) is not None)


def reload_read(read_name: str) -> bool:
    """Main thread only: re-read the result frames (the node may have been deleted meanwhile)."""
    node = nuke.toNode(read_name)
    if node is None:
        return False
    cast("nuke.Script_Knob", node["reload"]).execute()  # the Read's reload button
    return True


def review_of(node: Any) -> str | None:
    """The review page of a result Read, when the flow (or ``vfxmatte review``) has written it."""
    knob = node.knob("vfxmatte_output") if node is not None else None
    if knob is None:
        return None
    page = review_page(str(knob.value()))
    return page if os.path.isfile(page) else None
