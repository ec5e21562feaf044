"""Which code and which machine made a result: the commit of this checkout and the CPU, recorded
beside what they trained or timed."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def source_commit() -> str | None:
    """HEAD of the checkout agscm runs from (`+dirty` when agscm/ has uncommitted changes), or
    None for an installed copy outside git. Ask at the start of a run: HEAD may move while a
    long run goes on, and the code it runs is the one it loaded."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agscm"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


@cache
def cpu_description() -> str:
    """The CPU's model name, and whether it has bfloat16 arithmetic (AVX-512 BF16 or AMX), which
    decides what `--precision bf16` buys: timings from two machines compare only with this."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                      if line.startswith("flags")), []))
    bf16 = "with" if flags & {"avx512_bf16", "amx_bf16"} else "without"
    return f"{name} ({bf16} bf16 arithmetic)"
