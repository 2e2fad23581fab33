"""The arithmetic precision of training: float32, or bfloat16 convolution stacks.

``auto`` picks bf16 where it was measured to pay without losing accuracy: training on
a CPU with bf16 instructions (AVX512-BF16 or AMX-BF16), where oneDNN's bf16
convolutions run faster than float32 ones. Everywhere else (CPUs without them, where
bf16 is emulated and slower; GPUs, where it has not been measured) ``auto`` is fp32.
Only the convolution stacks change (``models.blocks.ConvStack``), and the linear layer
that reads a stack's map (``models.blocks.MapLinear``, which returns float32); weights,
optimizer state, heads, losses and scoring stay float32.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import torch

from pairsearch.errors import BadValue
from pairsearch.names import PRECISIONS

_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@functools.cache  # asked at every evaluation; the answer never changes
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:  # torch's own CPU feature query (private, so guarded); else Linux's flags
        capability = torch._C._cpu._get_cpu_capability()
        return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))
    except Exception:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CPU with bf16 instructions, else ``fp32``; others as given.

    Raises:
        PairsearchError: On an unknown name.
    """
    if name not in PRECISIONS:
        raise BadValue("precision", name, f"valid: {', '.join(PRECISIONS)}")
    if name == "auto":
        # oneDNN runs the fast bf16 convolutions; a torch built without it would not.
        fast = torch.backends.mkldnn.is_available() and cpu_has_bf16()
        return "bf16" if device.type == "cpu" and fast else "fp32"
    return name


def conv_dtype(precision: str) -> Optional[torch.dtype]:
    """The dtype ``models.blocks.convolutions_in`` takes for a resolved precision."""
    return _DTYPES[precision]
