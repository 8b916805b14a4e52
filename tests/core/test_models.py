"""Model resolution: clear errors offline, atomic GGUF conversion."""

import os
import signal
import subprocess
import sys
import time

import pytest

from grace_rag.errors import ModelNotFoundError
from grace_rag.models import BASE_MODEL, BUILTIN_MODELS, builtin_path, resolve, weights_id


def test_unknown_name_offline_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="pass a local model directory or a .gguf file"):
        from grace_rag.models import load_backbone

        load_backbone("no-such-org/no-such-model-xyz")


@pytest.mark.parametrize("bad", ["./missing-dir", "/nonexistent/model.gguf", "~/nope.gguf"])
def test_missing_paths_are_clear_errors(bad):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve(bad)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a model"):
        resolve(tmp_path)


def test_builtin_gguf_is_located_in_its_package():
    path = builtin_path(BASE_MODEL)
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert BASE_MODEL in BUILTIN_MODELS


def test_weights_id_changes_with_content_and_is_memoised(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    first = weights_id(tmp_path)
    assert weights_id(tmp_path) == first
    time.sleep(0.01)
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert weights_id(tmp_path) != first


@pytest.mark.integration
def test_killed_conversion_leaves_nothing_that_loads(tmp_path):
    env = {**os.environ, "GRACE_RAG_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    code = "from grace_rag.models import resolve; resolve('smollm2-135m-instruct')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    models = tmp_path / "models"
    deadline = time.time() + 60
    while time.time() < deadline and not any(models.glob(".converting-*")):
        time.sleep(0.2)
    time.sleep(1.0)  # now mid-conversion
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [p for p in models.iterdir() if not p.name.startswith(".")]
    assert finished == []  # only the hidden temp folder may remain; it is never loaded
    assert any(models.glob(".converting-*"))
