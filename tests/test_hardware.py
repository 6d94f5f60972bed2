"""Precision follows the hardware: ``auto`` never picks an emulated bfloat16."""

from __future__ import annotations

import warnings

import pytest
import torch

from aumaps import hardware
from aumaps.hardware import EmulatedPrecisionWarning, resolve_precision


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bfloat16."""

    def set_native(value: bool) -> None:
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: value)

    return set_native


def test_auto_is_float32_without_native_bf16(native_bf16):
    native_bf16(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = resolve_precision("auto", "cpu")
    assert (p.name, p.dtype, p.scaler) == ("fp32", torch.float32, False)
    assert "no native bfloat16" in p.reason
    with p.autocast():  # disabled: a matmul stays float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_auto_is_bfloat16_with_native_bf16(native_bf16):
    native_bf16(True)
    p = resolve_precision("auto", "cpu")
    assert (p.name, p.dtype, p.scaler) == ("bf16", torch.bfloat16, False)
    with p.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_forced_bf16_on_a_cpu_without_it_warns_loudly(native_bf16):
    native_bf16(False)
    with pytest.warns(EmulatedPrecisionWarning, match="100x slower"):
        assert resolve_precision("bf16", "cpu").name == "bf16"
    native_bf16(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu").name == "bf16"


@pytest.mark.parametrize("amp", ["fp32", "none", None])
def test_float32_aliases(amp, native_bf16):
    native_bf16(True)
    assert resolve_precision(amp, "cpu").name == "fp32"


def test_gpu_without_bf16_gets_fp16_with_a_scaler(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    p = resolve_precision("auto", "cuda")
    assert (p.name, p.scaler) == ("fp16", True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda").name == "bf16"


def test_unknown_amp_is_an_error():
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_precision("int4", "cpu")


def test_isa_limits_turn_native_bf16_off(monkeypatch):
    monkeypatch.setattr(hardware, "_cpu_flags_bf16", lambda: True)
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_has_native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not hardware.cpu_has_native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert hardware.cpu_has_native_bf16()
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert not hardware.cpu_has_native_bf16()
    assert "bfloat16 native: no" in hardware.describe_machine()


def test_training_records_the_precision_it_used(tiny_cache, tmp_path, native_bf16):
    import pandas as pd

    from aumaps.train import load_config, train
    from aumaps.weights import load_checkpoint

    native_bf16(False)
    cfg = load_config(
        overrides={
            "data": {"cache": str(tiny_cache), "max_train": 4, "max_val": 2},
            "model": {"num_stacks": 1, "depth": 1, "width": 8},
            "train": {"epochs": 1, "batch_size": 4, "out_dir": str(tmp_path / "run")},
        }
    )
    assert cfg["train"]["amp"] == "auto"
    run = train(cfg, progress=False)
    assert pd.read_csv(run / "metrics.csv")["precision"].tolist() == ["fp32"]
    assert load_checkpoint(run / "model.pt").card["precision"] == "fp32"
