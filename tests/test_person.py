"""The person-segmentation network (vfxmatte.person) and the ``people`` prior that uses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vfxmatte import person
from vfxmatte.errors import ModelError
from vfxmatte.prior import PersonSettings, complete_people, load_prior

REFERENCE = Path(__file__).parent / "data" / "selfie_segmentation_chaplin1201.npz"


def _chaplin_frame(shared_data: Path, index: int) -> np.ndarray:
    import av

    path = shared_data / "video" / "chaplin.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {index}")


def test_the_graph_gives_what_mediapipe_gives(shared_data: Path) -> None:
    """The TensorFlow Lite graph run op by op in PyTorch against MediaPipe's own runtime: the
    reference is ``SelfieSegmentation(model_selection=0).process`` (mediapipe 0.10.14) on a
    256×256 crop of chaplin.mp4 frame 1201 (rows 0–255, columns 280–535), where its resizing
    is the identity, so the output is the network's own."""
    crop = _chaplin_frame(shared_data, 200)[0:256, 280:536]
    net = person.load_person().net
    import torch

    image = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255.0)[None]
    out = net(image)[0][0, 0].numpy()
    reference = np.load(REFERENCE)["mask"].astype(np.float32)
    assert out.shape == reference.shape == (256, 256)
    assert float(np.abs(out - reference).max()) < 2e-3  # the reference is stored as float16
    assert 0.2 < float(reference.mean()) < 0.6  # a person fills part of it: not a trivial output


def test_a_missing_or_altered_model_file_is_refused(tmp_path: Path) -> None:
    altered = tmp_path / "selfie_segmentation.tflite"
    shutil.copy(person.MODEL_FILE, altered)
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"selfie_segmentation\.tflite: checksum .* reinstall vfxmatte"):
        person.PersonPrior(altered)
    with pytest.raises(ModelError, match=r"missing\.tflite: the bundled model is missing"):
        person.PersonPrior(tmp_path / "missing.tflite")


def test_people_complete_the_subjects_they_overlap_and_add_no_one_else() -> None:
    mask = np.zeros((60, 80), np.float32)
    mask[30:60, 10:25] = 1.0  # a body without its head
    mask[20:60, 50:70] = 0.3  # someone the salient mask did not pick
    people = np.zeros_like(mask)
    people[18:60, 10:25] = 0.9  # the person network sees the same body with its head
    people[15:60, 50:70] = 0.95
    people[50:60, 25:30] = 0.9  # and, coarsely, a strip of ground beside the feet
    out = complete_people(mask, people, PersonSettings())
    assert float(out[20:28, 12:23].min()) == pytest.approx(0.9)  # the head joins its body
    assert np.array_equal(out[:, 25:], mask[:, 25:])  # nothing beside the body, nor the other person
    assert np.array_equal(out[30:], mask[30:])  # nothing below the subject's top
    assert np.array_equal(out, np.maximum(out, mask))  # nothing taken away
    both = complete_people(mask, people, PersonSettings(upward=False))  # the whole region
    assert float(both[52:60, 25:27].min()) == pytest.approx(0.9) and np.array_equal(both[:, 40:], mask[:, 40:])
    assert np.array_equal(complete_people(mask, people, PersonSettings(enabled=False)), mask)
    assert np.array_equal(complete_people(mask, None), mask)
    # A person region mostly outside the subject (under the overlap share) is not added.
    wide = np.zeros_like(mask)
    wide[0:60, 0:40] = 0.9
    assert np.array_equal(complete_people(mask, wide, PersonSettings(overlap=0.25)), mask)


def test_the_people_prior_finds_the_heads_the_salient_prior_loses(shared_data: Path) -> None:
    """chaplin.mp4 frame 1201: two men; against the dark trees U²-Netp holds 0.15 and 0.30 over
    their heads and hats, the people prior over 0.8.  The bodies are found by both."""
    image = _chaplin_frame(shared_data, 200).astype(np.float32) / 255.0
    heads = {"left": (slice(40, 100), slice(185, 225)), "right": (slice(15, 90), slice(345, 420))}
    bodies = {"left": (slice(150, 250), slice(160, 230)), "right": (slice(150, 250), slice(320, 400))}
    u2netp, people = load_prior("u2netp"), load_prior("people")
    assert u2netp is not None and people is not None and people.name == "people"
    plain, completed = u2netp.predict_subjects(image), people.predict_subjects(image)
    for name, box in heads.items():
        assert float(plain[box].mean()) < 0.4, name
        assert float(completed[box].mean()) > 0.8, name
    for name, box in bodies.items():
        assert float(plain[box].mean()) > 0.9 and float(completed[box].mean()) > 0.9, name
    assert np.array_equal(completed, np.maximum(completed, plain))
    assert not completed[:, :72].any() and not completed[:, -72:].any()  # the black bars stay out


def test_a_steadied_mask_is_completed_on_its_own_frame(shared_data: Path) -> None:
    """A sequence's steadied prior is made of U²-Netp's masks (a median over neighbouring frames)
    and each frame completes it with what the person network finds there: the same heads."""
    image = _chaplin_frame(shared_data, 200).astype(np.float32) / 255.0
    u2netp, people = load_prior("u2netp"), load_prior("people")
    assert u2netp is not None and people is not None
    size = (180, 320)  # the LR size: the mask's pixels are 2 × 2 of the frame's
    plain = u2netp.predict_subjects(image, size)
    assert u2netp.complete_subjects(image, plain) is plain  # the default prior completes nothing
    assert np.array_equal(people.predict_subjects(image, size, person=PersonSettings(enabled=False)), plain)
    completed = people.complete_subjects(image, plain)
    assert np.array_equal(completed, people.predict_subjects(image, size))
    for y, x in ((slice(20, 50), slice(92, 112)), (slice(8, 45), slice(172, 210))):  # the two heads
        assert float(plain[y, x].mean()) < 0.4 and float(completed[y, x].mean()) > 0.7
    assert not completed[:, :36].any() and not completed[:, -36:].any()
