"""The model-package manifest: everything an agent needs to run a model, and everything a person needs to
trust it. Training writes it, the server indexes it, the agent reads it before it loads a byte."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature"
PACKAGE_SUFFIX = ".efpkg"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Spec):
    """How a camera frame (HxWx3 uint8 BGR from OpenCV) becomes the model's input tensor."""

    shape: list[int] = Field(description="full input shape with batch, e.g. [1, 3, 224, 224] or [1, 1, 8, 8]")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color_order: Literal["RGB", "BGR", "GRAY"] = "RGB"
    scale: float = Field(1.0 / 255.0, description="multiply raw pixel values by this first")
    mean: list[float] = Field(default_factory=lambda: [0.0], description="subtracted after scaling, per channel")
    std: list[float] = Field(default_factory=lambda: [1.0], description="divided by after subtracting the mean")
    dtype: Literal["float32", "uint8"] = "float32"
    resize: Literal["stretch", "letterbox"] = "stretch"

    @field_validator("shape")
    @classmethod
    def _four_dims(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or any(d <= 0 for d in v):
            raise ValueError("shape must be 4 positive dimensions including batch")
        return v

    @property
    def channels(self) -> int:
        return self.shape[1] if self.layout == "NCHW" else self.shape[3]

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


class OutputSpec(_Spec):
    """How raw output tensors become results; the agent picks its post-processor by ``decoding``."""

    decoding: Literal["softmax", "logits", "yolo", "ssd"] = "softmax"
    score_threshold: float = Field(0.25, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, ge=0.0, le=1.0)
    max_detections: int = Field(100, ge=1)


class OpenVinoFiles(_Spec):
    xml: str
    bin: str


class Runtimes(_Spec):
    onnx: str | None = Field(None, description="file name of the ONNX model inside the package")
    openvino: OpenVinoFiles | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> "Runtimes":
        if self.onnx is None and self.openvino is None:
            raise ValueError("a package needs at least one runtime (onnx or openvino)")
        return self


class Quantization(_Spec):
    method: str = Field(description="e.g. onnxruntime-static-qdq-u8s8, openvino-nncf-ptq")
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_delta: float = Field(description="int8 minus fp32, in accuracy points (0..100 scale)")
    threshold: float = Field(1.0, description="largest drop in points that still counts as deployable")
    calibration_samples: int = 0


class Manifest(_Spec):
    format: Literal[1] = MANIFEST_FORMAT
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    task: Literal["classification", "detection"]
    input: InputSpec
    output: OutputSpec = Field(default_factory=OutputSpec)
    labels: list[str] = Field(min_length=1)
    runtimes: Runtimes
    precision: Literal["fp32", "int8"] = "fp32"
    deployable: bool = Field(True, description="False when assessment or quantization flagged it")
    flags: list[str] = Field(default_factory=list, description="why it is not deployable, or other warnings")
    metrics: dict[str, Any] = Field(default_factory=dict, description="accuracy, precision, recall, f1, auc, per_class")
    quantization: Quantization | None = None
    benchmark: dict[str, Any] = Field(default_factory=dict, description="median latency ms per runtime on the build box")
    data_fingerprint: str | None = Field(None, description="sha256 over the training data, for lineage")
    training: dict[str, Any] = Field(default_factory=dict, description="arch, hyperparameters, seed, split")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256 of every payload file")

    @property
    def package_filename(self) -> str:
        return f"{self.name}-{self.version}{PACKAGE_SUFFIX}"

    def canonical_bytes(self) -> bytes:
        """The exact bytes that are signed and stored as manifest.json."""
        return (self.model_dump_json(indent=2) + "\n").encode("utf-8")
