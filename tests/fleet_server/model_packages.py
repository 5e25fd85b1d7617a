"""Real signed model packages for the server's registry tests, and the ways a package can be wrong: a byte
flipped, the signature left out, another key's signature, or no package at all."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.manifest import SIGNATURE_NAME, InputSpec, Manifest, Quantization, Runtimes
from models.package import pack
from models.signing import generate_private_key, load_or_create_private_key
from tests.models.conftest import tiny_onnx_bytes


@dataclass
class Packer:
    """Packs packages signed with `key` (the server's own signing key, or a stranger's) under `workdir`."""

    key: Ed25519PrivateKey
    workdir: Path

    @classmethod
    def for_server(cls, signing_key_path: Path, workdir: Path) -> "Packer":
        """Signs with the key whose public half the server trusts (it creates the key on first start)."""
        return cls(load_or_create_private_key(signing_key_path), workdir)

    @classmethod
    def stranger(cls, workdir: Path) -> "Packer":
        return cls(generate_private_key(), workdir)

    def make(self, version: str = "1.0.0", *, name: str = "tiny", extra: bytes = b"", int8: bool = False,
             flags: list[str] | None = None, pad: int = 0) -> Path:
        """A classifier package; `extra` bytes appended to its model file make different contents under the
        same name and version (and a bigger package that no longer loads); `pad` makes it bigger by about that
        many bytes while the model still loads (a bigger download)."""
        src = self.workdir / f"src-{name}-{version}-{len(extra)}-{pad}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "model.onnx").write_bytes(padded_onnx(pad) + extra)
        quantization = Quantization(method="onnxruntime-static-qdq-u8s8", fp32_accuracy=97.0, int8_accuracy=96.5,
                                    accuracy_delta=-0.5, calibration_samples=64) if int8 else None
        manifest = Manifest(name=name, version=version, task="classification", labels=[str(i) for i in range(10)],
                            input=InputSpec(shape=[1, 1, 8, 8], color_order="GRAY"),
                            runtimes=Runtimes(onnx="model.onnx"), precision="int8" if int8 else "fp32",
                            metrics={"accuracy": 0.97, "f1_macro": 0.96}, quantization=quantization,
                            benchmark={"onnxruntime": {"CPU": 0.2}}, deployable=not flags, flags=flags or [])
        return pack(manifest, {"model.onnx": src / "model.onnx"}, self.workdir / f"out-{len(extra)}-{pad}", self.key)


def padded_onnx(pad: int) -> bytes:
    """The tiny model with a `pad`-character doc string: the same graph, a bigger file."""
    if not pad:
        return tiny_onnx_bytes()
    import onnx

    model = onnx.load_from_string(tiny_onnx_bytes())
    model.doc_string = "edgefleet test padding " * (pad // 23 + 1)
    return model.SerializeToString()


def flipped_byte(package: Path, out: Path) -> Path:
    """The package with one byte of its model file changed (its sha256 no longer matches the manifest)."""
    data = bytearray(package.read_bytes())
    data[data.find(tiny_onnx_bytes()) + 40] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def unsigned(package: Path, out: Path) -> Path:
    """The package's members without its signature file."""
    buffer = io.BytesIO()
    with tarfile.open(package) as src, tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            if member.name != SIGNATURE_NAME:
                dst.addfile(member, src.extractfile(member))
    out.write_bytes(buffer.getvalue())
    return out


def garbage(out: Path) -> Path:
    out.write_bytes(b"this is not a model package\n" * 100)
    return out
