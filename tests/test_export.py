"""The ONNX export checks itself: a graph that does not compute what the checkpoint computes
is an error, and nothing is written."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from aumaps.cli import main
from aumaps.runtime import export

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime",
)


@pytest.fixture
def broken_export(monkeypatch):
    """The exporter fed a network whose first layer is off by 0.01: a deliberately broken export."""
    fuse = export.fuse_batchnorm

    def fuse_wrongly(model):
        fused = copy.deepcopy(fuse(model))
        with torch.no_grad():
            next(fused.parameters()).add_(0.01)
        return fused

    monkeypatch.setattr(export, "fuse_batchnorm", fuse_wrongly)


def test_a_broken_export_is_an_error_and_leaves_no_file(tiny_weights, tmp_path, broken_export, capsys):
    out = tmp_path / "tiny.onnx"
    with pytest.raises(export.ExportMismatchError, match=r"differ from PyTorch's by up to .* \(tolerance 0.001\)"):
        export.export_onnx(tiny_weights, out)
    assert not out.exists() and not list(tmp_path.iterdir())  # nor a temporary file
    assert main(["export", "--onnx", str(out), "--weights", str(tiny_weights)]) == 2
    assert "does not compute what the checkpoint computes" in capsys.readouterr().err
    assert not out.exists()


def test_a_faithful_export_passes_its_check(tiny_weights, tmp_path):
    result = export.export_onnx(tiny_weights, tmp_path / "tiny.onnx")
    assert result.path.is_file() and result.max_abs_diff is not None and 0 < result.max_abs_diff < 1e-4
    # the same export fails a tolerance it cannot meet: the check compares, it does not just run
    with pytest.raises(export.ExportMismatchError):
        export.export_onnx(tiny_weights, tmp_path / "strict.onnx", tolerance=result.max_abs_diff / 2)
    assert not (tmp_path / "strict.onnx").exists()
