"""Untrusted parameters (issue 12 item 4): every refusal on a real file tree, and a scan of the sources.

Requests from the Prefect API and from Nuke name paths, frame ranges, chunk sizes, prompts; the
workers' environment names the model.  Each test builds the tree it needs in tmp_path (real
folders, real symlinks, real safetensors and pickle files) and checks that the escape is refused
with a one-line message before anything is read or written.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from vfxmatte.errors import InputError, ModelError, UsageError
from vfxmatte.io.sequence import MAX_FRAMES, parse_frame_range
from vfxmatte.security import BUNDLED_MODEL_DIR, MAX_PATH_LENGTH, confine, confine_model, local_paths

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("vfxmatte", "flows", "nuke_bridge", "scripts")


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ (the allowed root) with a plate sequence, and outside/ with a secret frame and folder."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "shots").mkdir(parents=True)
    (outside / "secret").mkdir(parents=True)
    for frame in (1001, 1002):
        (root / "shots" / f"plate.{frame}.exr").write_bytes(b"inside")
    (outside / "secret" / "plate.1001.exr").write_bytes(b"secret")
    return {"root": root, "outside": outside}


def refused(path: str, roots: list[str], match: str, what: str = "input") -> str:
    with pytest.raises(UsageError, match=match) as info:
        confine(path, what, roots)
    message = str(info.value)
    assert "\n" not in message and message.startswith(what)
    return message


# -- paths --------------------------------------------------------------------------------


def test_paths_inside_the_root_are_accepted(tree: dict[str, Path]) -> None:
    root = tree["root"]
    (root / "link_inside").symlink_to(root / "shots")  # a symlink that stays inside is fine
    roots = [str(root)]
    for path in ("shots/plate.####.exr", "shots/plate.1001.exr", "link_inside/plate.%04d.exr", "new/out/"):
        assert confine(str(root / path), "input", roots).startswith(str(root))
    assert confine(str(root / "new" / "out") + "/", "output", roots).endswith(os.sep)


def test_dotdot_and_outside_paths_are_refused(tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    roots = [str(root)]
    refused(f"{root}/shots/../../outside/secret/plate.####.exr", roots, "'..' components")
    refused(f"{root}/shots/..", roots, "'..' components")
    refused(str(outside / "secret" / "plate.####.exr"), roots, "outside the allowed roots")
    refused(str(root) + "-sibling/plate.####.exr", roots, "outside the allowed roots")  # a prefix is not a parent
    refused("/etc/passwd", roots, "outside the allowed roots")


def test_local_command_line_paths_are_the_users_own(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside local_paths() (``vfxmatte flow run``) any path is accepted; outside it the fence is back."""
    from flows.params import MatteShotRequest

    root, outside = tree["root"], tree["outside"]
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    monkeypatch.chdir(outside / "secret")
    secret = str(outside / "secret" / "plate.####.exr")
    with local_paths():
        assert confine(secret, "input") == secret
        assert confine("../secret/out/", "output") == str(outside / "secret" / "out") + os.sep
        request = MatteShotRequest(input=secret, output=str(outside / "m.####.exr"))
        assert request.input == secret
        with pytest.raises(UsageError, match="control character"):  # the text checks still hold
            confine("plate\x00.exr", "input")
    message = refused(secret, [str(root)], "outside the allowed roots")
    assert message == f"input {secret}: outside the allowed roots ({root}); set VFXMATTE_ROOTS"
    with pytest.raises(UsageError, match="outside the allowed roots"):
        MatteShotRequest(input=secret, output=str(root / "m.####.exr"))


def test_symlinked_directory_escape_is_refused(tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    (root / "shots" / "escape").symlink_to(outside / "secret")  # an intermediate folder that leads out
    roots = [str(root)]
    refused(str(root / "shots" / "escape" / "plate.####.exr"), roots, "outside the allowed roots")
    refused(str(root / "shots" / "escape" / "new" / "m.####.exr"), roots, "outside the allowed roots", "output")
    refused(str(root / "shots" / "escape") + "/", roots, "outside the allowed roots", "output")
    # …and a chain of links through the root still ends outside.
    (root / "hop").symlink_to(root / "shots" / "escape")
    refused(str(root / "hop" / "plate.1001.exr"), roots, "outside the allowed roots")


def test_symlinked_file_escape_is_refused(tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    roots = [str(root)]
    secret = outside / "secret" / "plate.1001.exr"
    (root / "one").mkdir()
    (root / "one" / "plate.1001.exr").symlink_to(secret)  # the final component leads out
    refused(str(root / "one" / "plate.1001.exr"), roots, "outside the allowed roots")
    # A pattern: one frame of the sequence on disk is a link out, the others are real files.
    (root / "shots" / "plate.1003.exr").symlink_to(secret)
    for pattern in ("plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr"):
        message = refused(str(root / "shots" / pattern), roots, "symlink to a file outside")
        assert "plate.1003.exr" in message
    # A dangling link whose target would be outside is refused too (a write would follow it).
    (root / "dangling.exr").symlink_to(outside / "not-yet.exr")
    refused(str(root / "dangling.exr"), roots, "outside the allowed roots", "output")


def test_nul_control_characters_and_long_paths_are_refused(tree: dict[str, Path]) -> None:
    roots = [str(tree["root"])]
    refused(str(tree["root"] / "a\x00b.exr"), roots, "NUL or another control character")
    refused(str(tree["root"] / "a\nb.exr"), roots, "NUL or another control character")
    refused("", roots, "empty")
    refused(str(tree["root"] / ("x" * MAX_PATH_LENGTH)), roots, f"longer than {MAX_PATH_LENGTH}")


def test_roots_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    from vfxmatte.security import configured_roots

    monkeypatch.setenv("VFXMATTE_ROOTS", "relative/shows")
    with pytest.raises(UsageError, match="VFXMATTE_ROOTS: root 'relative/shows' is not an absolute path"):
        configured_roots()


# -- sizes ---------------------------------------------------------------------------------


def test_huge_frame_ranges_are_refused_before_expanding() -> None:
    started = time.perf_counter()
    with pytest.raises(UsageError, match=f"more than {MAX_FRAMES} frames"):
        parse_frame_range("1-100000000")
    # Many items, each under the bound, that together would be millions of frames.
    with pytest.raises(UsageError, match=f"more than {MAX_FRAMES} frames"):
        parse_frame_range(",".join(f"{i * 900_000}-{i * 900_000 + 899_999}" for i in range(10)))
    with pytest.raises(UsageError, match="cannot read"):
        parse_frame_range("1-" + "9" * 5000)  # would exceed Python's int conversion limit
    with pytest.raises(UsageError, match="longer than"):
        parse_frame_range("1," * 20_000 + "1")
    assert time.perf_counter() - started < 2.0, "a refusal must not expand the range first"


def test_request_sizes_are_bounded(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from flows.params import MAX_CHUNKS, MAX_FRAMES_PER_RUN, MatteShotRequest

    root = tree["root"]
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    base = {"input": str(root / "shots" / "plate.####.exr"), "output": str(root / "out" / "m.####.exr")}
    assert MatteShotRequest(**base, frames="1001-1002", prompt="-a prompt").frame_list() == [1001, 1002]
    with pytest.raises(UsageError, match=f"more than {MAX_FRAMES_PER_RUN} in one run"):
        MatteShotRequest(**base, frames="1-200000")
    with pytest.raises(UsageError, match=f"more than {MAX_FRAMES} frames"):
        MatteShotRequest(**base, frames="1-999999,1000000-1999999")
    with pytest.raises(UsageError, match=f"at most {MAX_CHUNKS}"):
        MatteShotRequest(**base, frames="1-20000", chunk_size=1)
    for field, value in (("prompt", "p" * 501), ("frames", "1," * 600), ("colorspace", "c" * 300),
                         ("chunk_size", 0), ("chunk_size", 10_001), ("seed", -1), ("seed", 2**31)):
        with pytest.raises(ValidationError, match=field):
            MatteShotRequest(**base, **{field: value})
    with pytest.raises(UsageError, match="colorspace.*control character"):
        MatteShotRequest(**base, colorspace="ACEScg\x00")
    (root / "guides").symlink_to(tree["outside"] / "secret")
    with pytest.raises(UsageError, match="guide .*outside the allowed roots"):
        MatteShotRequest(**base, guide=str(root / "guides" / "plate.####.exr"))


def test_flow_checks_a_directory_outputs_frames_and_the_review_folder(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.matte_shot import make_review_page
    from flows.params import MatteShotRequest

    root, outside = tree["root"], tree["outside"]
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    (root / "out").mkdir()
    (root / "out" / "review").symlink_to(outside)  # the page would be written outside
    request = MatteShotRequest(input=str(root / "shots" / "plate.####.exr"), output=str(root / "out") + "/")
    page, note = make_review_page(request, str(root / "out" / "plate.####.exr"), 0.1)
    assert page is None and "review page folder" in note and "outside the allowed roots" in note
    assert not (outside / "index.html").exists()
    # The output directory's own frames are checked once the pattern is known (run_shot does this).
    (root / "out" / "plate.1001.exr").symlink_to(outside / "secret" / "plate.1001.exr")
    refused(str(root / "out" / "plate.####.exr"), [str(root)], "symlink to a file outside", "output")


def test_drop_folder_symlinks_out_are_queued_then_refused(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.new_shots import pending_shots
    from flows.params import MatteShotRequest

    root, outside = tree["root"], tree["outside"]
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    drop = root / "drop"
    (drop / "sq010").mkdir(parents=True)
    (drop / "sq010" / "plate.1001.exr").symlink_to(outside / "secret" / "plate.1001.exr")
    (drop / "escape").symlink_to(outside / "secret")  # os.walk does not descend into it
    todo = pending_shots(str(drop), None, str(root / "mattes"))
    assert [shot["name"] for shot in todo] == ["sq010_plate"]
    with pytest.raises(UsageError, match="outside the allowed roots"):
        MatteShotRequest(input=todo[0]["input"], output=todo[0]["output"])
    with pytest.raises(UsageError, match="drop .*outside the allowed roots"):
        pending_shots(str(drop / "escape"), None, str(root / "mattes"))


def test_manifest_size_is_bounded(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.new_shots import MAX_MANIFEST_SHOTS, load_manifest

    root = tree["root"]
    monkeypatch.setenv("VFXMATTE_ROOTS", str(root))
    manifest = root / "shots.json"
    shot = {"input": str(root / "shots" / "plate.####.exr"), "output": str(root / "o" / "m.####.exr")}
    manifest.write_text(json.dumps({"shots": [shot] * (MAX_MANIFEST_SHOTS + 1)}))
    with pytest.raises(InputError, match="not a valid shot manifest"):
        load_manifest(str(manifest))
    manifest.write_text(json.dumps({"shots": [dict(shot, input="x" * (MAX_PATH_LENGTH + 1))]}))
    with pytest.raises(InputError, match="not a valid shot manifest"):
        load_manifest(str(manifest))
    with open(manifest, "wb") as handle:  # sparse: 17 MiB without writing them
        handle.truncate(17 * 1024 * 1024)
    with pytest.raises(InputError, match="larger than 16 MiB"):
        load_manifest(str(manifest))


# -- the Nuke bridge ---------------------------------------------------------------------------


def test_nuke_requests_are_bounded_and_arguments_cannot_become_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuke_bridge.client import BridgeError
    from nuke_bridge.jobs import MAX_FRAMES as BRIDGE_MAX_FRAMES
    from nuke_bridge.jobs import ShotRequest
    from nuke_bridge.local import matte_arguments
    from vfxmatte.cli import build_parser

    with pytest.raises(BridgeError, match=f"more than {BRIDGE_MAX_FRAMES} frames") as info:
        ShotRequest(input="/s/a.####.exr", output="/o/a.####.exr", first=1, last=10**9)
    assert info.value.kind == "usage"
    for field, value in (("input", "/s/a\x00.####.exr"), ("prompt", "x" * 501), ("guide", "/g/\n.exr")):
        with pytest.raises(BridgeError):
            ShotRequest(**{"input": "/s/a.####.exr", "output": "/o/a.####.exr", "first": 1, "last": 2, field: value})
    with pytest.raises(BridgeError, match="seed"):
        ShotRequest(input="/s/a.####.exr", output="/o/a.####.exr", first=1, last=2, seed=-1)

    # Local mode: values that look like options stay values for the real CLI parser.
    request = ShotRequest(input="-o=/etc/x.####.exr", output="--overwrite.####.exr", first=1, last=2,
                          prompt="--model=/elsewhere", colorspace="-x")
    monkeypatch.chdir(tmp_path)
    argv = matte_arguments(request, ["vfxmatte"], {})
    args = build_parser().parse_args(argv[1:])
    assert args.input == os.path.join(os.getcwd(), "-o=/etc/x.####.exr")
    assert (args.output, args.prompt, args.colorspace, args.overwrite) == (
        "--overwrite.####.exr", "--model=/elsewhere", "-x", False)
    assert args.model is None


# -- models --------------------------------------------------------------------------------


def copy_model(tiny_model_dir: Path, where: Path) -> Path:
    shutil.copytree(tiny_model_dir, where)
    return where


def test_model_outside_the_allowed_folders_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.settings import FlowSettings
    from vfxmatte.model.core import DEFAULT_MODEL_DIR, load_model

    assert BUNDLED_MODEL_DIR == DEFAULT_MODEL_DIR
    allowed, other = tmp_path / "models", tmp_path / "elsewhere"
    model = copy_model(tiny_model_dir, allowed / "tiny")
    rogue = copy_model(tiny_model_dir, other / "tiny")
    monkeypatch.setenv("VFXMATTE_MODEL_ROOTS", str(allowed))
    assert confine_model(model) == str(model)
    assert confine_model(BUNDLED_MODEL_DIR) == str(BUNDLED_MODEL_DIR)  # always allowed
    with pytest.raises(UsageError, match="outside the allowed model folders"):
        confine_model(rogue)
    with pytest.raises(UsageError, match="'..' components"):
        confine_model(f"{allowed}/../elsewhere/tiny")
    (allowed / "via-link").symlink_to(rogue)  # a link in the allowed folder to a model elsewhere
    with pytest.raises(UsageError, match="outside the allowed model folders"):
        confine_model(allowed / "via-link")
    linked = copy_model(tiny_model_dir, allowed / "linked")
    shutil.rmtree(linked / "unet")
    (linked / "unet").symlink_to(rogue / "unet")  # one part of an allowed folder leads out
    with pytest.raises(UsageError, match="unet is a symlink outside"):
        confine_model(linked)

    # The flows: VFXMATTE_MODEL must be allowed; unset VFXMATTE_MODEL_ROOTS leaves only the bundled model.
    monkeypatch.setenv("VFXMATTE_MODEL", str(rogue))
    with pytest.raises(UsageError, match="VFXMATTE_MODEL .*outside the allowed model folders"):
        FlowSettings.from_env()
    monkeypatch.setenv("VFXMATTE_MODEL", str(model))
    assert FlowSettings.from_env().model == str(model)
    monkeypatch.delenv("VFXMATTE_MODEL_ROOTS")
    with pytest.raises(UsageError, match="outside the allowed model folders"):
        FlowSettings.from_env()
    # The library (CLI, Nuke local mode) checks when VFXMATTE_MODEL_ROOTS is set.
    assert load_model(rogue).name == "tiny-test"
    monkeypatch.setenv("VFXMATTE_MODEL_ROOTS", str(allowed))
    with pytest.raises(UsageError, match="outside the allowed model folders"):
        load_model(rogue)
    assert load_model(model).name == "tiny-test"


@pytest.fixture()
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail loudly if anything reaches torch.load or the pickle loaders while the test runs."""
    import torch

    calls: list[str] = []

    def forbidden(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called: weights must come from safetensors only")

        return call

    monkeypatch.setattr(torch, "load", forbidden("torch.load"))
    monkeypatch.setattr(pickle, "load", forbidden("pickle.load"))
    monkeypatch.setattr(pickle, "loads", forbidden("pickle.loads"))
    return calls


def test_pickled_weights_are_never_unpickled(tiny_model_dir: Path, tmp_path: Path, no_unpickling: list[str]) -> None:
    import torch
    from safetensors.torch import load_file

    from vfxmatte.model.core import load_model

    model = copy_model(tiny_model_dir, tmp_path / "pickled")
    weights = next((model / "unet").glob("*.safetensors"))
    marker = tmp_path / "unpickled"
    # A real pickle whose loading would run code (create the marker file) and the real weights.
    payload = {"state": load_file(str(weights)), "payload": _Payload(str(marker))}
    torch.save(payload, model / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelError, match=r"unet: holds pickled weights \(diffusion_pytorch_model\.bin\)"):
        load_model(model)
    assert no_unpickling == [] and not marker.exists()

    # Safetensors beside a pickled file: the safetensors are used, the pickle is never opened.
    both = copy_model(tiny_model_dir, tmp_path / "both")
    shutil.copy(model / "unet" / "diffusion_pytorch_model.bin", both / "unet")
    assert load_model(both).unet.conv_in.in_channels == 8
    assert no_unpickling == [] and not marker.exists()


class _Payload:
    """Unpickling this object creates a file: proof that a loader ran code from a weights file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_shard_index_cannot_point_outside_the_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    from vfxmatte.model.core import load_model

    model = copy_model(tiny_model_dir, tmp_path / "sharded")
    index = model / "vae" / "diffusion_pytorch_model.safetensors.index.json"
    for shard in ("/elsewhere/evil.bin", "../unet/diffusion_pytorch_model.safetensors", "weights.bin"):
        index.write_text(json.dumps({"metadata": {}, "weight_map": {"encoder.conv_in.weight": shard}}))
        with pytest.raises(ModelError, match="is not a .safetensors file in vae/"):
            load_model(model)


def test_model_config_cannot_import_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A config naming a custom class, an auto_map or a custom pipeline imports nothing from the folder."""
    from vfxmatte.model.core import load_model

    model = copy_model(tiny_model_dir, tmp_path / "custom")
    marker = tmp_path / "imported"
    for part in ("unet", "vae"):
        (model / part / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
        config = json.loads((model / part / "config.json").read_text())
        config.update(_class_name="Evil", auto_map={"AutoModel": "evil.Evil"}, custom_pipeline="evil",
                      trust_remote_code=True)
        (model / part / "config.json").write_text(json.dumps(config))
    info = json.loads((model / "vfxmatte.json").read_text())
    (model / "vfxmatte.json").write_text(json.dumps(dict(info, custom_pipeline="evil", _class_name="Evil")))
    (model / "model_index.json").write_text(json.dumps({"_class_name": "Evil", "unet": ["evil", "Evil"]}))
    loaded = load_model(model)
    assert type(loaded.unet).__name__ == "UNet2DConditionModel" and not marker.exists()


# -- the sources -------------------------------------------------------------------------------

FORBIDDEN = {
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.system\s*\("),
    "os.popen": re.compile(r"\bos\.popen\s*\("),
    "torch.load": re.compile(r"\btorch\.load\s*\("),
    "pickle loading": re.compile(r"\b(?:c?pickle|cloudpickle|dill|joblib)\.(?:load|loads|Unpickler)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "custom_pipeline": re.compile(r"\bcustom_pipeline\s*="),
    "yaml.load": re.compile(r"\byaml\.(?:load|unsafe_load)\s*\("),
    "eval/exec": re.compile(r"(?<![\w.])(?:eval|exec)\s*\("),
}


def source_files() -> list[Path]:
    files = [p for folder in SOURCES for p in sorted((REPO / folder).rglob("*")) if p.suffix in (".py", ".sh")]
    assert len(files) > 30, "the scan found too few sources: wrong REPO?"
    return files


def test_sources_use_no_shell_no_pickle_no_remote_code() -> None:
    found = []
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix == ".py" else line
            for name, pattern in FORBIDDEN.items():
                if pattern.search(code):
                    found.append(f"{path.relative_to(REPO)}:{number}: {name}: {line.strip()}")
    assert not found, "\n".join(found)


def test_every_weight_load_asks_for_safetensors() -> None:
    """Each ``from_pretrained`` of a model passes ``use_safetensors=True`` (tokenizers hold no weights)."""
    calls = 0
    for path in source_files():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr not in ("from_pretrained", "from_single_file"):
                    continue
                owner = ast.unparse(node.func.value)
                if "Tokenizer" in owner:
                    continue
                calls += 1
                keywords = {k.arg: k.value for k in node.keywords}
                value = keywords.get("use_safetensors")
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                assert isinstance(value, ast.Constant) and value.value is True, f"{where}: no use_safetensors=True"
                assert None not in keywords, f"{where}: **kwargs could override use_safetensors"
    assert calls >= 3, "the scan found too few from_pretrained calls: wrong sources?"
