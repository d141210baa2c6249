"""The ``matte-new-shots`` flow: scheduled batch matting of new footage.

Finds shots in a drop folder (every image sequence and movie under it) or in a manifest JSON
(``{"shots": [{"input": …, "output": …, "frames": …, "preset": …}, …]}``), skips those whose
output is already complete, and runs the ``matte-shot`` flow for each of the rest as a subflow.
A shot that fails does not stop the others; the run fails if any shot failed.  Deployed as
``matte-new-shots/nightly`` with a cron schedule (flows/deploy.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.matte_shot import matte_shot
from flows.params import Preset
from vfxmatte.errors import FrameError, InputError, UsageError
from vfxmatte.io.discover import find_shots, is_complete, output_for
from vfxmatte.security import MAX_PATH_LENGTH, confine

BATCH_KEY = "vfxmatte-batch"
#: A manifest is read only up to this size and this many shots.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_SHOTS = 10_000
PathText = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH)]


class ManifestShot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: PathText
    output: PathText
    frames: str | None = Field(None, max_length=1000)
    preset: Preset | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shots: list[ManifestShot] = Field(default_factory=list, max_length=MAX_MANIFEST_SHOTS)


def load_manifest(path: str) -> list[ManifestShot]:
    try:
        with open(confine(path, "manifest"), encoding="utf-8") as handle:
            text = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(text) > MAX_MANIFEST_BYTES:
            raise InputError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB")
        return Manifest.model_validate(json.loads(text)).shots
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a valid shot manifest: {first}") from exc


def pending_shots(drop: str | None, manifest: str | None, output_root: str | None) -> list[dict[str, Any]]:
    """The shots to do: ``{"name", "input", "output", "frames", "preset"}`` for each incomplete one."""
    if (drop is None) == (manifest is None):
        raise UsageError("matte-new-shots: give exactly one of drop or manifest")
    if manifest is not None:
        return [
            {
                "name": shot.input,
                "input": shot.input,
                "output": shot.output,
                "frames": shot.frames,
                "preset": shot.preset,
            }
            for shot in load_manifest(manifest)
        ]
    if drop is None or output_root is None:
        raise UsageError("matte-new-shots: a drop folder needs an output_root")
    found = find_shots(confine(drop, "drop"))
    output_root = confine(output_root, "output_root")
    todo = []
    for shot in found:
        output = output_for(shot, output_root)
        try:  # a symlink in the drop or under the output root that leads out is not followed here
            confine(shot.input, "input")
            done = is_complete(shot, confine(output, "output"))
        except UsageError:
            done = False  # queued all the same: its matte-shot run refuses it and the batch says why
        if not done:
            todo.append({"name": shot.name, "input": shot.input, "output": output, "frames": None, "preset": None})
    return todo


@flow(name="matte-new-shots", validate_parameters=True)
def matte_new_shots(
    drop: PathText | None = None,
    manifest: PathText | None = None,
    output_root: PathText | None = None,
    preset: Preset = "standard",
    chunk_size: Annotated[int, Field(ge=1, le=10_000)] = 24,
    review: bool = True,
) -> dict[str, Any]:
    """Matte every shot in ``drop`` (or ``manifest``) that has no complete output yet."""
    logger = get_run_logger()
    todo = pending_shots(drop, manifest, output_root)
    logger.info("%d shot(s) to matte", len(todo))
    outcome: dict[str, Any] = {"done": [], "failed": {}}
    for shot in todo:
        state = matte_shot(
            shot["input"],
            shot["output"],
            frames=shot["frames"],
            preset=shot["preset"] or preset,
            chunk_size=chunk_size,
            review=review,
            return_state=True,
        )
        if state.is_completed():
            outcome["done"].append(shot["output"])
        else:
            outcome["failed"][shot["output"]] = state.message or state.type.value
    lines = ["# New shots", "", f"{len(outcome['done'])} matted, {len(outcome['failed'])} failed.", ""]
    lines += [f"- done: `{path}`" for path in outcome["done"]]
    lines += [f"- **failed**: `{path}`: {why}" for path, why in outcome["failed"].items()]
    create_markdown_artifact("\n".join(lines), key=BATCH_KEY, description="matte-new-shots batch")
    if outcome["failed"]:
        raise FrameError(f"{len(outcome['failed'])} of {len(todo)} shot(s) failed: {', '.join(outcome['failed'])}")
    return outcome
