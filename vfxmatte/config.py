"""Typed run parameters: one place for every default."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

#: ``--temporal`` modes (vfxmatte.temporal).
TEMPORAL_MODES = ("off", "shared")
#: Modes that existed once, with why they are gone: a stored command line or request may name them.
REMOVED_TEMPORAL_MODES = {
    "prev-latent": "removed: it made mattes worse than off on a moving shot (docs/VIDEO.md); use shared or off",
}
#: ``--clean-plate`` modes (vfxmatte.cleanplate): the CLI, ``vfxmatte flow run`` and the flows'
#: request offer these (the Nuke bridge, standard library only, lists them again).
CLEAN_PLATES = ("auto", "fill", "off")


@dataclass(frozen=True)
class MatteParams:
    """Everything that decides a matte's pixels (recorded in each output header)."""

    steps: int = 10
    seeds: int = 4
    lr_size: int = 512
    seed: int = 0
    layer: str | None = None
    view: str | None = None
    colorspace: str | None = None
    prompt: str | None = None
    temporal: str = "shared"  # off | shared (vfxmatte.temporal)
    hr: str = "auto"  # auto | diffusion | pymatting | off (vfxmatte.hr); matte_shot records the resolved one
    write_trimap: bool = False  # the HR auto-trimap as ``trimap.Y``
    guide: str | None = None  # guide image or sequence pattern (vfxmatte.guide)
    guide_kind: str = "auto"  # trimap | mask | scribble | auto
    guide_channel: str | None = None
    # A single guide image drawn on this frame: a keyframe carried through the shot (vfxmatte.carry).
    guide_frame: int | None = None
    # The keyframes a run carried its guide from (set by the pipeline from the guide files on disk,
    # so the header records them and a new keyframe changes the parameters).
    keyframes: tuple[int, ...] = ()
    clamp_known: bool = False
    # How far inside a mask guide's edge the subject's edge is sought, as a fraction of the
    # frame's long side (vfxmatte.guide.mask_trimap): loose rotos and garbage mattes 0.06, a
    # roto drawn on the edge less.
    mask_band: float = 0.06
    prior: str = "u2netp"  # u2netp | people | none (vfxmatte.prior): coarse-mask start for runs without a guide
    # Fraction of the DDIM schedule run from the noised prior mask.  0.3 rather than 0.8: on
    # alphamatting GT01–20 (trimap-free) MSE×1e3 50.8 vs 55.6 and SAD 30.0 vs 35.9, and faster.
    prior_strength: float = 0.3
    # With a temporal mode, a prior mask whose IoU with the previous frame's matte is below this
    # counts as a jump to another object: the previous matte is followed instead (0: never).  Off
    # by default: with the prior steadied over ±3 frames it never fired on the prior-switch shots
    # of either half, and on the 2-frame composite shots it followed a poor first matte (alpha MSE
    # 66.28 / 89.33 off against 175.12 / 251.36 at 0.5; docs/VIDEO.md).
    prior_jump_iou: float = 0.0
    # Trimap-free: each frame's prior is the per-pixel median of its own and this many frames'
    # on either side, moved onto it by optical flow (vfxmatte.steady; 0: each frame's own).
    # 3 was picked on the shots built from GT01–GT10 and from GT11–GT20 alike (docs/VIDEO.md).
    prior_window: int = 3
    # Trimap-free on a multi-frame shot: the background gathered where no subject stood
    # (vfxmatte.cleanplate; tracked where the camera pans, tilts or pushes in) is background
    # wherever a frame still shows it outside the prior's contour (auto); with fill, also what
    # differs from it where the prior sees a subject faintly outside its contour is subject; off:
    # not used.  Where the shot gives none (parallax, changing light, too few frames) the run says so.
    clean_plate: str = "auto"

    def __post_init__(self) -> None:
        from vfxmatte.errors import UsageError

        if not 1 <= self.steps <= 1000:
            raise UsageError(f"--steps {self.steps}: must be between 1 and 1000")
        if not 1 <= self.seeds <= 64:
            raise UsageError(f"--seeds {self.seeds}: must be between 1 and 64")
        if not 0 <= self.seed <= 2**31 - 1:  # the header stores it as a 32-bit int
            raise UsageError(f"--seed {self.seed}: must be between 0 and {2**31 - 1}")
        if not 64 <= self.lr_size <= 4096:
            raise UsageError(f"--lr-size {self.lr_size}: must be between 64 and 4096")
        if self.prompt is not None and len(self.prompt) > 500:
            raise UsageError("--prompt: at most 500 characters")
        if self.guide_kind not in ("trimap", "mask", "scribble", "auto"):
            raise UsageError(f"--guide-kind {self.guide_kind}: choose trimap, mask, scribble or auto")
        if self.guide_frame is not None and not self.guide:
            raise UsageError("--guide-frame: needs --guide (the keyframe's guide image)")
        if self.hr not in ("auto", "diffusion", "pymatting", "off"):
            raise UsageError(f"--hr {self.hr}: choose auto, diffusion, pymatting or off")
        if self.temporal in REMOVED_TEMPORAL_MODES:
            raise UsageError(f"--temporal {self.temporal}: {REMOVED_TEMPORAL_MODES[self.temporal]}")
        if self.temporal not in TEMPORAL_MODES:
            raise UsageError(f"--temporal {self.temporal}: choose {' or '.join(TEMPORAL_MODES)}")
        if not 0.0 < self.mask_band <= 0.5:
            raise UsageError(f"--mask-band {self.mask_band}: must be in (0, 0.5]")
        if self.prior not in ("u2netp", "people", "none"):
            raise UsageError(f"--prior {self.prior}: choose u2netp, people or none")
        if not 0.0 < self.prior_strength <= 1.0:
            raise UsageError(f"--prior-strength {self.prior_strength}: must be in (0, 1]")
        if not 0.0 <= self.prior_jump_iou < 1.0:
            raise UsageError(f"--prior-jump-iou {self.prior_jump_iou}: must be in [0, 1)")
        if self.clean_plate not in CLEAN_PLATES:
            modes = f"{', '.join(CLEAN_PLATES[:-1])} or {CLEAN_PLATES[-1]}"
            raise UsageError(f"--clean-plate {self.clean_plate}: choose {modes}")
        if not 0 <= self.prior_window <= 12:
            raise UsageError(f"--prior-window {self.prior_window}: must be between 0 and 12 frames")

    @property
    def uses_prior(self) -> bool:
        """The salient-object prior runs without a guide and, kept inside it, with a coarse mask
        (``auto`` counts: it may resolve to a mask); trimaps and scribbles replace it."""
        return self.prior != "none" and (not self.guide or self.guide_kind in ("mask", "auto"))

    def header_json(self, model: str) -> str:
        """Canonical JSON of the pixel-affecting parameters plus the model identity and the
        code's build (:func:`code_build`): a resumed run skips only frames this exact code wrote."""
        record = asdict(self)
        record["model"] = model
        record["build"] = code_build()
        return json.dumps(record, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=1)
def code_build() -> str:
    """``<version>+<digest>``: the package version and a digest of the package's own source.

    A default tuned anew or an algorithm fixed changes the pixels without changing
    :class:`MatteParams`; frames written by another build of the code must not be skipped as
    done by a resumed run (or a farm worker on an older install), or a shot would mix both.
    """
    from vfxmatte import __version__

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


# Quality presets (CLI ``--preset``, the flows' ``preset`` parameter): MatteParams overrides.
# "standard" is the defaults; explicit flags still win over a preset.
PRESETS: dict[str, dict[str, int]] = {
    "draft": {"steps": 4, "seeds": 2, "lr_size": 256},
    "standard": {},
    "final": {"steps": 20, "seeds": 8, "lr_size": 1024},
}


def preset_params(preset: str = "standard", **overrides: object) -> MatteParams:
    """MatteParams for ``preset`` with ``overrides`` (None values ignored) applied on top."""
    from vfxmatte.errors import UsageError

    if preset not in PRESETS:
        raise UsageError(f"--preset {preset}: choose one of {', '.join(PRESETS)}")
    fields: dict[str, object] = dict(PRESETS[preset])
    fields.update({key: value for key, value in overrides.items() if value is not None})
    return MatteParams(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves, without changing pixels."""

    device: str = "auto"
    overwrite: bool = False
    start_frame: int = 1001
    max_pixels: int = 48_000_000
    batch_size: int | None = None
    preview: bool = False  # movie output: H.264 review comp instead of ProRes 4444 with alpha
    # How long a frame waits for another run that holds its output's lock (vfxmatte.io.locks).
    lock_timeout: float = 900.0
