"""`edgefleet agent infer` as a user runs it: a subprocess on a signed package."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.edge_agent.engine.inference_fixtures import COLORS, color_package, signed_package  # noqa: F401


def infer(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgefleet", "agent", "infer", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[3])


def test_synthetic_source_prints_one_json_result_per_frame(color_package):
    pkg, pub = color_package
    run = infer("--model", str(pkg), "--key", str(pub), "--source", "synthetic", "--frames", "20", "--json")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 20
    results = [json.loads(line) for line in lines]
    assert [r["frame_index"] for r in results] == sorted(r["frame_index"] for r in results)
    for r in results:
        assert r["model"] == "color-test:1.0.0" and r["source"] == "synthetic"
        assert r["results"] and all(item["label"] in COLORS for item in r["results"])
        assert r["latency_ms"] >= r["inference_ms"] >= 0
    assert "verified" in run.stderr and "backend openvino on CPU" in run.stderr


def test_video_file_runs_to_its_end_with_correct_labels_and_saves_annotated_video(color_package, tmp_path):
    pkg, pub = color_package
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    colours = [(0, 0, 255)] * 6 + [(255, 0, 0)] * 6  # BGR: red, then blue
    for bgr in colours:
        writer.write(np.full((120, 160, 3), bgr, np.uint8))
    writer.release()
    out = tmp_path / "annotated.mp4"
    run = infer("--model", str(pkg), "--key", str(pub), "--source", str(video), "--json", "--backend",
                "onnxruntime", "--save-video", str(out))
    assert run.returncode == 0, run.stderr
    tops = [json.loads(line)["results"][0]["label"] for line in run.stdout.splitlines()]
    assert tops == ["red"] * 6 + ["blue"] * 6
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert "backend onnxruntime on CPU" in run.stderr


def test_plain_output_without_json_names_the_top_class(color_package):
    pkg, pub = color_package
    run = infer("--model", str(pkg), "--key", str(pub), "--source", "synthetic:64x48", "--frames", "3",
                "--device", "CPU")
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 3 and all(line.startswith("#") for line in run.stdout.splitlines())


def test_absent_accelerator_falls_back_to_cpu_and_says_so(color_package):
    pkg, pub = color_package
    run = infer("--model", str(pkg), "--key", str(pub), "--source", "synthetic:64x48", "--frames", "2", "--json",
                "--device", "NPU")
    assert run.returncode == 0, run.stderr
    assert "NPU requested but not available" in run.stderr and "on CPU" in run.stderr
    assert len(run.stdout.splitlines()) == 2


def _tamper(pkg: Path, out: Path) -> Path:
    """Rewrite the package with one byte of the ONNX model changed (the manifest and signature untouched)."""
    with tarfile.open(pkg) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "model.onnx":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_tampered_package_is_refused_with_a_clear_message(color_package, tmp_path):
    pkg, pub = color_package
    bad = _tamper(pkg, tmp_path / pkg.name)
    run = infer("--model", str(bad), "--key", str(pub), "--source", "synthetic", "--frames", "1", "--json")
    assert run.returncode == 4
    assert "model.onnx is corrupt or altered" in run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr


def test_package_signed_by_another_key_is_refused(color_package, tmp_path):
    _, trusted = color_package
    other_pkg, _, _ = signed_package(tmp_path)
    run = infer("--model", str(other_pkg), "--key", str(trusted), "--source", "synthetic", "--frames", "1")
    assert run.returncode == 4
    assert "not by the trusted key" in run.stderr and "Traceback" not in run.stderr


def test_missing_key_missing_source_and_bad_video_name_are_clear_errors(color_package, tmp_path):
    pkg, pub = color_package
    no_key = infer("--model", str(pkg), "--key", str(tmp_path / "nope.pem"), "--source", "synthetic")
    assert no_key.returncode == 4 and "no trusted model-signing public key" in no_key.stderr
    no_file = infer("--model", str(pkg), "--key", str(pub), "--source", str(tmp_path / "missing.mp4"))
    assert no_file.returncode == 5 and "video file not found" in no_file.stderr
    bad_name = infer("--model", str(pkg), "--key", str(pub), "--source", "synthetic", "--save-video",
                     str(tmp_path / "out.txt"))
    assert bad_name.returncode == 2 and ".mp4" in bad_name.stderr
    assert all("Traceback" not in r.stderr for r in (no_key, no_file, bad_name))


def test_default_key_comes_from_the_state_dir(color_package, tmp_path):
    pkg, pub = color_package
    keys = tmp_path / "state" / "keys"
    keys.mkdir(parents=True)
    (keys / "model-signing.pub.pem").write_bytes(pub.read_bytes())
    env = {**__import__("os").environ, "EDGEFLEET_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([sys.executable, "-m", "edgefleet", "agent", "infer", "--model", str(pkg), "--source",
                          "synthetic:64x48", "--frames", "2", "--json"], capture_output=True, text=True, timeout=90,
                         env=env, cwd=Path(__file__).resolve().parents[3])
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
