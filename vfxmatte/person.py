"""A person-segmentation prior: MediaPipe's selfie segmentation network, run by PyTorch.

U²-Netp (:mod:`vfxmatte.prior`) finds *salient objects*; on film plates it loses a dark hat
or head against dark trees and keeps the coat below it (``chaplin.mp4``: both men's heads
missing or see-through on most frames).  MediaPipe's selfie segmentation model (Google,
"MediaPipe Selfie Segmentation", model card 2021; Apache-2.0) is trained to find people,
heads and hair included.  The ``people`` prior (``--prior people``,
:meth:`vfxmatte.prior.SalientPrior.complete_subjects`) uses it to *complete* the subjects
U²-Netp found: the part of a person region that lies above a subject it overlaps is added, so a
head joins its body; a person U²-Netp did not pick is not added (the prior's choice of subject
stays U²-Netp's).

The weights are the unmodified ``selfie_segmentation.tflite`` (256×256 general model, as
shipped in the ``mediapipe`` 0.10 wheels under ``mediapipe/modules/selfie_segmentation/``),
bundled with this package (``vfxmatte/model/person/``, 250 kB, sha256 checked at every load).
The file is a TensorFlow Lite flatbuffer; it is read with the ``tflite`` schema package and
its graph (11 operator kinds: convolutions, depthwise convolutions, squeeze-and-excitation
pools, hard-swish, bilinear upsampling and MediaPipe's ``Convolution2DTransposeBias``) is
executed op by op with PyTorch on the CPU.  Nothing is downloaded and ``mediapipe`` itself is
not needed.  Pre- and post-processing follow MediaPipe's graph: the display-referred RGB
image resized to 256×256 (bilinear, no aspect kept), values in [0, 1]; the sigmoid output
resized back bilinearly.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vfxmatte.errors import ModelError

MODEL_DIR = Path(__file__).resolve().parent / "model" / "person"
MODEL_FILE = MODEL_DIR / "selfie_segmentation.tflite"
SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
SIZE = 256
NAME = "mediapipe-selfie-segmentation"

# TensorFlow Lite enums (schema.fbs).
_FLOAT32, _FLOAT16, _INT32 = 0, 1, 2
_SAME, _VALID = 0, 1
_ACT_NONE, _ACT_RELU, _ACT_RELU6 = 0, 1, 3


def _load_graph(path: Path, sha256: str) -> tuple[list[dict[str, Any]], dict[int, np.ndarray], int, list[int]]:
    """The model's operators (in order), its constant tensors, and its input and output tensor ids."""
    try:
        import tflite  # the TensorFlow Lite flatbuffer schema, pure Python
    except ImportError:
        raise ModelError("the person prior needs the package tflite; install it with `pip install tflite`") from None
    from vfxmatte.prior import file_sha256

    if not path.is_file():
        raise ModelError(f"{path}: the bundled model is missing; reinstall vfxmatte")
    digest = file_sha256(path)
    if digest != sha256:
        raise ModelError(
            f"{path}: checksum {digest[:12]}… is not the bundled model's {sha256[:12]}…; reinstall vfxmatte"
        )
    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {value: key for key, value in vars(tflite.BuiltinOperator).items() if not key.startswith("_")}
    constants: dict[int, np.ndarray] = {}
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            dtype = {_FLOAT32: np.float32, _FLOAT16: np.float16, _INT32: np.int32}[tensor.Type()]
            shape = tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            if tensor.Sparsity() is not None:
                raise ModelError(f"{path}: unsupported sparse tensor")
            constants[index] = np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape)
    ops: list[dict[str, Any]] = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        entry: dict[str, Any] = {
            "kind": kind,
            "inputs": [int(i) for i in op.InputsAsNumpy()],
            "outputs": [int(i) for i in op.OutputsAsNumpy()],
        }
        table = op.BuiltinOptions()
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            options: Any = tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions()
            options.Init(table.Bytes, table.Pos)
            entry.update(padding=options.Padding(), stride=(options.StrideH(), options.StrideW()),
                         dilation=(options.DilationHFactor(), options.DilationWFactor()),
                         act=options.FusedActivationFunction())  # fmt: skip
        elif kind == "AVERAGE_POOL_2D":
            options = tflite.Pool2DOptions()
            options.Init(table.Bytes, table.Pos)
            entry.update(padding=options.Padding(), stride=(options.StrideH(), options.StrideW()),
                         size=(options.FilterHeight(), options.FilterWidth()),
                         act=options.FusedActivationFunction())  # fmt: skip
        elif kind in ("ADD", "MUL"):
            options = tflite.AddOptions() if kind == "ADD" else tflite.MulOptions()
            options.Init(table.Bytes, table.Pos)
            entry["act"] = options.FusedActivationFunction()
        elif kind == "RESIZE_BILINEAR":
            options = tflite.ResizeBilinearOptions()
            options.Init(table.Bytes, table.Pos)
            entry.update(align_corners=options.AlignCorners(), half_pixel=options.HalfPixelCenters())
        elif kind == "CUSTOM":
            custom = code.CustomCode()
            if custom != b"Convolution2DTransposeBias":
                raise ModelError(f"{path}: unsupported custom operator {custom!r}")
            # MediaPipe's TfLiteTransposeConvParams: padding (1 same, 2 valid), stride w, stride h.
            padding, stride_w, stride_h = struct.unpack("<3i", bytes(op.CustomOptionsAsNumpy()))
            entry.update(kind="TRANSPOSE_CONV_BIAS", padding=padding, stride=(stride_h, stride_w))
        elif kind not in ("DEQUANTIZE", "RELU", "HARD_SWISH", "LOGISTIC"):
            raise ModelError(f"{path}: unsupported operator {kind}")
        ops.append(entry)
    outputs = [int(i) for i in graph.OutputsAsNumpy()]
    return ops, constants, int(graph.InputsAsNumpy()[0]), outputs


class Graph:
    """A TensorFlow Lite graph as a sequence of PyTorch calls (4-D activations NCHW, float32)."""

    def __init__(self, path: Path, sha256: str) -> None:
        import torch

        ops, constants, self.input, self.outputs = _load_graph(path, sha256)
        # DEQUANTIZE of a constant (float16 weights) is done once here.
        self.ops = []
        for op in ops:
            if op["kind"] == "DEQUANTIZE" and op["inputs"][0] in constants:
                constants[op["outputs"][0]] = constants[op["inputs"][0]].astype(np.float32)
            else:
                self.ops.append(op)
        self.weights: dict[int, Any] = {}
        for op in self.ops:
            kind, inputs = op["kind"], op["inputs"]
            if kind == "CONV_2D":  # OHWI → OIHW
                self.weights[inputs[1]] = torch.from_numpy(np.array(constants[inputs[1]].transpose(0, 3, 1, 2)))
            elif kind in ("DEPTHWISE_CONV_2D", "TRANSPOSE_CONV_BIAS"):  # 1HWO → O1HW, OHWI → IOHW
                self.weights[inputs[1]] = torch.from_numpy(np.array(constants[inputs[1]].transpose(3, 0, 1, 2)))
            for index in inputs[1:]:
                if index in constants and index not in self.weights:
                    value = constants[index]
                    if kind in ("ADD", "MUL") and value.ndim >= 1:  # per-channel (…, C) → (1, C, 1, 1)
                        value = value.reshape(-1)[None, :, None, None] if value.size > 1 else value.reshape(())
                    self.weights[index] = torch.from_numpy(np.array(value, dtype=value.dtype))
        self._lock = threading.Lock()

    @staticmethod
    def _same_pad(x: Any, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
        import torch.nn.functional as F

        pads = []
        for axis in (1, 0):  # F.pad takes the last axis (width) first
            size = x.shape[2 + axis]
            out = -(-size // stride[axis])
            total = max((out - 1) * stride[axis] + (kernel[axis] - 1) * dilation[axis] + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads) if any(pads) else x

    @staticmethod
    def _act(x: Any, act: int) -> Any:
        import torch

        if act == _ACT_RELU:
            return torch.relu(x)
        if act == _ACT_RELU6:
            return torch.clamp(x, 0.0, 6.0)
        if act != _ACT_NONE:
            raise ModelError(f"unsupported fused activation {act}")
        return x

    def __call__(self, image: Any) -> list[Any]:
        """(N, 3, H, W) float32 → the graph's outputs (NCHW)."""
        import torch
        import torch.nn.functional as F

        values: dict[int, Any] = {self.input: image}

        def get(index: int) -> Any:
            return values[index] if index in values else self.weights[index]

        with self._lock, torch.inference_mode():
            for op in self.ops:
                kind, ins, out = op["kind"], op["inputs"], op["outputs"][0]
                x = get(ins[0])
                if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                    weight = self.weights[ins[1]]
                    bias = get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                    if op["padding"] == _SAME:
                        x = self._same_pad(x, tuple(weight.shape[2:]), op["stride"], op["dilation"])
                    groups = x.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1
                    y = F.conv2d(x, weight, bias, stride=op["stride"], dilation=op["dilation"], groups=groups)
                    y = self._act(y, op["act"])
                elif kind == "AVERAGE_POOL_2D":  # the squeeze-and-excitation blocks' global pools
                    if op["padding"] != _VALID and tuple(op["size"]) != tuple(x.shape[2:]):
                        raise ModelError("unsupported padded average pool")
                    y = self._act(F.avg_pool2d(x, op["size"], op["stride"]), op["act"])
                elif kind == "ADD":
                    y = self._act(x + get(ins[1]), op["act"])
                elif kind == "MUL":
                    y = self._act(x * get(ins[1]), op["act"])
                elif kind == "RELU":
                    y = torch.relu(x)
                elif kind == "HARD_SWISH":
                    y = x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
                elif kind == "LOGISTIC":
                    y = torch.sigmoid(x)
                elif kind == "RESIZE_BILINEAR":
                    height, width = (int(v) for v in self.weights[ins[1]])
                    if not op["align_corners"] and not op["half_pixel"]:
                        raise ModelError("unsupported legacy bilinear resize")
                    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=bool(op["align_corners"]))
                elif kind == "TRANSPOSE_CONV_BIAS":
                    weight = self.weights[ins[1]]
                    if tuple(weight.shape[2:]) != tuple(op["stride"]):  # kernel = stride: no padding to place
                        raise ModelError("unsupported transposed convolution: kernel and stride differ")
                    y = F.conv_transpose2d(x, weight, get(ins[2]), stride=op["stride"])
                else:  # DEQUANTIZE of an activation
                    y = x.float()
                values[out] = y
            return [values[index] for index in self.outputs]


class PersonPrior:
    """:meth:`predict` maps a display-referred RGB image to a person mask (the selfie segmentation network)."""

    name = NAME

    def __init__(self, path: Path = MODEL_FILE) -> None:
        self.net = Graph(path, SHA256)
        self.sha256 = SHA256
        self.seconds = 0.0

    def predict(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Person probability in [0, 1], (h, w) float32, for a display-referred RGB image in [0, 1]."""
        import torch
        import torch.nn.functional as F

        if image.ndim != 3 or image.shape[2] < 3:
            raise ValueError(f"expected an (h, w, 3) image, not {image.shape}")
        start = time.perf_counter()
        h, w = size or image.shape[:2]
        rgb = np.clip(np.nan_to_num(image[..., :3].astype(np.float32)), 0.0, 1.0)
        tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            small = F.interpolate(tensor, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
            mask = self.net(small.contiguous())[0]
            mask = F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)
        self.seconds += time.perf_counter() - start
        return np.clip(mask[0, 0].numpy(), 0.0, 1.0).astype(np.float32)


_CACHE: dict[str, PersonPrior] = {}


def load_person() -> PersonPrior:
    """The bundled person prior, loaded once per process."""
    if NAME not in _CACHE:
        _CACHE[NAME] = PersonPrior()
    return _CACHE[NAME]
