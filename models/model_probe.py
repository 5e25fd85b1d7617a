"""What a model file says about itself: its inputs, outputs and metadata, read without running the agent.

ONNX is read with onnxruntime (what a device has) or, failing that, the ``onnx`` package; OpenVINO IR is read
from its xml with the standard library, so neither runtime is imported until a file is actually probed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# onnxruntime's and the IR's element type names -> the numpy dtypes a manifest can name (others stay as written).
_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16",
           "f32": "float32", "u8": "uint8", "f16": "float16", "FLOAT": "float32", "UINT8": "uint8",
           "FLOAT16": "float16"}
_ORT_NUMPY = {"float32": np.float32, "uint8": np.uint8, "float16": np.float16}


class ProbeError(ValueError):
    """The file is not a model this importer can read at all."""


@dataclass(frozen=True)
class Tensor:
    """One input or output; a dimension is None where the model leaves it dynamic."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def static(self) -> bool:
        return all(d is not None for d in self.shape)


@dataclass
class ModelFacts:
    """``props``: the model's own string metadata (ONNX metadata_props, IR rt_info sections merged);
    ``labels_list``: the OpenVINO exporter's space-separated ``model_info/labels``, if any."""

    format: str  # "onnx" or "openvino"
    inputs: list[Tensor]
    outputs: list[Tensor]
    props: dict[str, str] = field(default_factory=dict)
    labels_list: list[str] | None = None


def _dim(value: object) -> int | None:
    if isinstance(value, (int, np.integer)) and int(value) > 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None  # symbolic ('batch'), '?', -1, a range '1..8', or unknown


def probe_onnx(path: Path) -> ModelFacts:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return _probe_onnx_package(path)
    return _probe_onnx_runtime(path)


def _probe_onnx_runtime(path: Path) -> ModelFacts:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for unreadable models
        raise ProbeError(f"{path.name}: onnxruntime cannot load it: {str(exc).splitlines()[0][:200]}") from None
    inputs = [Tensor(i.name, tuple(_dim(d) for d in i.shape), _DTYPES.get(i.type, i.type))
              for i in session.get_inputs()]
    outputs = [Tensor(o.name, tuple(_dim(d) for d in o.shape), _DTYPES.get(o.type, o.type))
               for o in session.get_outputs()]
    if any(not o.static for o in outputs) and len(inputs) == 1 and inputs[0].static \
            and inputs[0].dtype in _ORT_NUMPY:
        # Shape inference left an output symbolic: one run on zeros gives the real shapes.
        feed = {inputs[0].name: np.zeros(inputs[0].shape, _ORT_NUMPY[inputs[0].dtype])}
        arrays = session.run([o.name for o in outputs], feed)
        outputs = [Tensor(o.name, tuple(int(d) for d in a.shape), o.dtype) for o, a in zip(outputs, arrays)]
    props = dict(session.get_modelmeta().custom_metadata_map)
    return ModelFacts("onnx", inputs, outputs, props)


def _probe_onnx_package(path: Path) -> ModelFacts:
    try:
        import onnx
    except ImportError:
        raise ProbeError("reading an ONNX model needs onnxruntime or the onnx package; neither is installed") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have no common base
        raise ProbeError(f"{path.name}: not a readable ONNX model ({exc.__class__.__name__})") from None
    initializers = {i.name for i in model.graph.initializer}

    def tensor(v: onnx.ValueInfoProto) -> Tensor:
        t = v.type.tensor_type
        dims = tuple(_dim(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim)
        return Tensor(v.name, dims, _DTYPES.get(onnx.TensorProto.DataType.Name(t.elem_type), "other"))

    return ModelFacts("onnx", [tensor(v) for v in model.graph.input if v.name not in initializers],
                      [tensor(v) for v in model.graph.output],
                      {p.key: p.value for p in model.metadata_props})


def _port_dims(port: ET.Element | None) -> tuple[int | None, ...]:
    return tuple(_dim(d.text or "") for d in port.findall("dim")) if port is not None else ()


def probe_openvino(xml_path: Path) -> ModelFacts:
    """Parameters are the inputs and Results the outputs, in the xml's order (the order OpenVINO reads them in)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ProbeError(f"{xml_path.name}: not a readable OpenVINO IR xml ({exc})") from None
    if root.tag != "net":
        raise ProbeError(f"{xml_path.name}: not an OpenVINO IR xml (root element <{root.tag}>)")
    inputs, outputs = [], []
    for layer in root.iterfind("layers/layer"):
        kind = layer.get("type")
        if kind == "Parameter":
            data = layer.find("data")
            etype = data.get("element_type", "") if data is not None else ""
            inputs.append(Tensor(layer.get("name", ""), _port_dims(layer.find("output/port")),
                                 _DTYPES.get(etype, etype)))
        elif kind == "Result":
            names = layer.get("output_names") or layer.get("name", "")
            outputs.append(Tensor(names, _port_dims(layer.find("input/port")), "float32"))
    props: dict[str, str] = {}
    labels = None
    info = root.find("rt_info")
    if info is not None:
        for section in ("framework", "model_info"):  # model_info (the exporter's own) wins over converted ONNX props
            for item in info.findall(section + "/*"):
                if item.get("value") is not None:
                    props[item.tag] = item.get("value", "")
        if "labels" in props:
            labels = props.pop("labels").split()
    return ModelFacts("openvino", inputs, outputs, props, labels)


def read_metadata_yaml(path: Path) -> dict[str, object]:
    """The ``metadata.yaml`` the Ultralytics OpenVINO exporter writes beside the xml; {} when there is none."""
    if not path.is_file():
        return {}
    try:
        import yaml
    except ImportError:
        raise ProbeError(f"{path} needs PyYAML to read (pip install pyyaml), or remove it to use the xml's "
                         "own metadata") from None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path} is not readable YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ProbeError(f"{path} does not hold a mapping")
    return {str(k): v for k, v in doc.items()}
