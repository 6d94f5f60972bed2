"""What this machine computes fast, and the numeric precision ``auto`` picks from it.

Machines differ in what they compute natively. CPUs with AVX-512 BF16 (AMD Zen 4 and newer,
Intel Cooper Lake, Sapphire Rapids and newer with AMX) run bfloat16 convolutions about twice
as fast as float32; CPUs with AVX2 only (most laptops and desktops, AMD Zen 3, older Xeons)
have no bfloat16 arithmetic, and PyTorch emulates it there about **100× slower** than
float32. So precision is a property of the machine, not of a configuration file:

``auto`` (the default everywhere)
    bfloat16 on CPUs that compute it natively and on GPUs that support it; float16 with a
    gradient scaler on GPUs without bfloat16; float32 otherwise.
``bf16``, ``fp16``
    forced. ``bf16`` (or ``fp16``) on a CPU without native support raises an
    :class:`EmulatedPrecisionWarning`: it will be about 100× slower.
``fp32`` (also ``none``)
    no mixed precision.

"Native" is what PyTorch and oneDNN will actually use: the CPU's flags, limited by the
standard switches ``ATEN_CPU_CAPABILITY`` (e.g. ``avx2``) and ``ONEDNN_MAX_CPU_ISA`` (e.g.
``AVX2``). Setting both makes an AVX-512 BF16 machine behave as an AVX2 one, which is how the
benchmarks measure both kinds on one machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import warnings
from dataclasses import dataclass
from functools import cache

import torch

__all__ = [
    "AMP_CHOICES",
    "EmulatedPrecisionWarning",
    "Precision",
    "cpu_capability",
    "cpu_has_native_bf16",
    "describe_machine",
    "resolve_precision",
]

log = logging.getLogger(__name__)

#: Values accepted for ``train.amp`` / ``amp=`` (``none`` is an alias of ``fp32``).
AMP_CHOICES = ("auto", "bf16", "fp16", "fp32", "none")

#: oneDNN ISA limits (``ONEDNN_MAX_CPU_ISA``) under which bfloat16 is still native.
_ONEDNN_BF16_ISAS = frozenset(
    {
        "ALL",
        "DEFAULT",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    }
)


class EmulatedPrecisionWarning(UserWarning):
    """A reduced precision was asked for on hardware that can only emulate it (very slow)."""


def cpu_capability() -> str:
    """PyTorch's CPU kernel level on this machine: ``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``...

    (``torch.backends.cpu.get_cpu_capability()``; ``ATEN_CPU_CAPABILITY`` lowers it.)
    """
    return torch.backends.cpu.get_cpu_capability()


@cache
def _cpu_flags_bf16() -> bool:
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX) *and* PyTorch and
    oneDNN are allowed to use it (see the module docstring)."""
    if not _cpu_flags_bf16() or not cpu_capability().startswith("AVX512"):
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return isa is None or isa.strip().upper() in _ONEDNN_BF16_ISAS


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """One line naming the CPU kind, for the head of every benchmark's output, e.g.
    ``CPU: AMD EPYC, 2 threads; PyTorch capability AVX2; bfloat16 native: no``."""
    native = cpu_has_native_bf16()
    limited = " (limited by ATEN_CPU_CAPABILITY/ONEDNN_MAX_CPU_ISA)" if _cpu_flags_bf16() and not native else ""
    return (
        f"CPU: {_cpu_name()}, {torch.get_num_threads()} threads; PyTorch {torch.__version__} capability "
        f"{cpu_capability()}; bfloat16 native: {'yes' if native else 'no'}{limited}"
    )


@dataclass(frozen=True)
class Precision:
    """The precision a computation runs in.

    Attributes:
        name: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (as written to ``metrics.csv`` and cards).
        dtype: the autocast dtype (``torch.float32`` for ``fp32``).
        device_type: ``"cpu"``, ``"cuda"``...
        scaler: whether training needs a gradient scaler (float16 on a GPU).
        reason: why, in words (printed at the start of a run).
    """

    name: str
    dtype: torch.dtype
    device_type: str
    scaler: bool
    reason: str

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` for this precision (disabled for float32)."""
        if self.name == "fp32":
            return torch.autocast(self.device_type, enabled=False)
        return torch.autocast(self.device_type, dtype=self.dtype)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def resolve_precision(amp: str | None, device: str | torch.device = "cpu") -> Precision:
    """The :class:`Precision` that ``amp`` (one of :data:`AMP_CHOICES`) means on ``device``.

    Raises:
        ValueError: an unknown ``amp``.
    """
    device = torch.device(device)
    kind = device.type
    amp = "fp32" if amp in (None, "none") else str(amp).lower()
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    if kind == "cuda":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if amp == "auto":
            amp = "bf16" if bf16_ok else "fp16"
            reason = (
                "this GPU supports bfloat16" if bf16_ok else "this GPU lacks bfloat16: float16 with a gradient scaler"
            )
        else:
            reason = "asked for"
        return Precision(amp, _DTYPES[amp], kind, amp == "fp16", reason)
    if kind == "cpu":
        native = cpu_has_native_bf16()
        if amp == "auto":
            if native:
                return Precision(
                    "bf16", torch.bfloat16, kind, False, f"native bfloat16 on this CPU ({cpu_capability()})"
                )
            return Precision(
                "fp32", torch.float32, kind, False, f"this CPU ({cpu_capability()}) has no native bfloat16"
            )
        if amp in ("bf16", "fp16") and not (amp == "bf16" and native):
            message = (
                f"{amp} asked for on a CPU without native {'bfloat16' if amp == 'bf16' else 'float16'} "
                f"(PyTorch capability {cpu_capability()}): it is emulated, about 100x slower than float32. "
                "Use amp: auto (float32 here)."
            )
            warnings.warn(message, EmulatedPrecisionWarning, stacklevel=2)
            log.warning("%s", message)
        return Precision(amp, _DTYPES[amp], kind, False, "asked for")
    # other devices (mps, xpu...): mixed precision only when asked for
    name = "fp32" if amp == "auto" else amp
    return Precision(name, _DTYPES[name], kind, name == "fp16", "asked for" if amp != "auto" else f"default on {kind}")


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
