"""Bad input gets a clear one-line error and leaves nothing half-written."""

import json
import shutil
import subprocess
import sys

import pytest
from checkpoints import copy_with_config

from edge.artifacts import open_artifact
from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.errors import (ArtifactError, CheckpointError, DatasetError, OutputError, UnknownNameError,
                         UnsupportedArchitectureError)
from edge.core.fsutil import atomic_path


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        convert(tmp_path / "nope", "gguf:f16", tmp_path / "out")


def test_missing_and_broken_config(tiny, tmp_path):
    ck = _copy(tiny(), tmp_path / "ck")
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        convert(ck, "gguf:f16", tmp_path / "out")
    (ck / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        convert(ck, "gguf:f16", tmp_path / "out")


def test_unsupported_architecture_is_named(tiny, tmp_path):
    ck = copy_with_config(tiny(), tmp_path / "ck", architectures=["GPTNeoXForCausalLM"])
    with pytest.raises(UnsupportedArchitectureError, match="GPTNeoXForCausalLM is not supported.*LlamaForCausalLM.*Qwen3ForCausalLM"):
        convert(ck, "gguf:f16", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_truncated_and_missing_shards(tiny, tmp_path):
    ck = _copy(tiny(), tmp_path / "ck")
    st = ck / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        convert(ck, "gguf:f16", tmp_path / "out")
    st.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        convert(ck, "gguf:f16", tmp_path / "out")
    (ck / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing safetensors shard.*model-00001-of-00002"):
        convert(ck, "gguf:f16", tmp_path / "out")


def test_pickle_checkpoints_need_opt_in(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    ck = _copy(tiny(), tmp_path / "ck")
    state = load_file(ck / "model.safetensors")
    (ck / "model.safetensors").unlink()
    torch.save(state, ck / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only pickle weights.*--allow-pickle"):
        convert(ck, "gguf:f32", tmp_path / "out")
    manifests = [a.manifest for a in convert(ck, "gguf:f32", tmp_path / "out", allow_pickle=True)]
    assert manifests[0].verification["passed"]


def test_unknown_format_fails_before_reading(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'gguf:q8_0'"):
        convert(tmp_path / "does-not-matter", "gguf:q8", tmp_path / "out")


def test_output_not_writable(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        convert(tiny(), "gguf:f16", blocker / "sub")


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 256 KiB filesystem (tmpfs); skipped where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full(tiny, tiny_fs):
    with pytest.raises(OutputError, match="not enough disk space"):
        convert(tiny(), "gguf:f32", tiny_fs / "out")
    # the write path itself: ENOSPC from the filesystem becomes one line, and no partial file is left
    with pytest.raises(OutputError, match="disk full while writing"):
        with atomic_path(tiny_fs / "big.bin") as tmp:
            tmp.write_bytes(b"\0" * (2 << 20))
    assert list(tiny_fs.iterdir()) == [tiny_fs / "out"]


def test_artifact_that_is_not_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ArtifactError, match="is neither a GGUF file nor an ExecuTorch program"):
        open_artifact(bad)
    with pytest.raises(ArtifactError, match="artifact not found"):
        open_artifact(tmp_path / "missing.gguf")


def test_corrupt_artifact_is_caught_by_its_manifest(tiny_artifacts, tmp_path):
    src = tiny_artifacts["q4_0"]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_name(src.name + ".manifest.json"), dst.with_name(dst.name + ".manifest.json"))
    with open(dst, "r+b") as fh:
        fh.seek(-100, 2)
        fh.write(b"\xff" * 10)
    with pytest.raises(ArtifactError, match="sha256 does not match its manifest"):
        open_artifact(dst)


def test_dataset_too_short(tiny_artifacts, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Only a few words here.")
    with pytest.raises(DatasetError, match="perplexity needs at least 512"):
        bench([tiny_artifacts["f16"]], config=BenchConfig(reps=1), dataset=short)
    with pytest.raises(DatasetError, match="dataset file not found"):
        bench([tiny_artifacts["f16"]], config=BenchConfig(reps=1), dataset=str(tmp_path / "nope.txt"))


def test_cli_prints_one_line_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge.cli", "convert", str(tmp_path / "nope"), "-f", "gguf:f16"],
                       capture_output=True, text=True)
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [f"error: checkpoint folder not found: {tmp_path / 'nope'}"]
    r = subprocess.run([sys.executable, "-m", "edge.cli", "convert", str(tmp_path), "-f", "gguf:q4km"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'gguf:q4_k_m'" in r.stderr and "Traceback" not in r.stderr
