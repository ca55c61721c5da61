"""What the benchmark scripts share: summaries, tables, JSON and PNG output.

Every figure is summarised as its median with the min-max range of the runs;
a ratio is computed per round between two contenders measured side by side in
that round, then summarised the same way.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Summary",
    "environment",
    "fmt",
    "md_table",
    "paired_ratios",
    "raise_nofile",
    "summarize",
    "write_json",
]

Summary = dict[str, float]


def summarize(values: Sequence[float]) -> Summary:
    """Median, min, max and count of ``values`` (NaN-free; empty gives NaNs)."""
    values = [v for v in values if v == v]
    if not values:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def paired_ratios(numer: Sequence[float], denom: Sequence[float]) -> Summary:
    """The per-round ratios numer[i] / denom[i], summarised."""
    return summarize([a / b for a, b in zip(numer, denom, strict=False) if b and a == a and b == b])


def fmt(s: Summary, digits: int = 2, *, suffix: str = "", spread: bool = True) -> str:
    """``median (min-max)`` with ``digits`` decimals."""
    if not s or s.get("n", 0) == 0:
        return "—"
    med = f"{s['median']:.{digits}f}{suffix}"
    if not spread or s["n"] < 2:
        return med
    return f"{med} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """What the JSON output records about the machine and the versions."""
    versions = {}
    for name in (
        "mal",
        "httpx",
        "httpx2",
        "msgspec",
        "anyio",
        "trio",
        "orjson",
        "ollama",
        "openai",
        "anthropic",
        "pydantic",
    ):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    return {
        "mal_commit": _git_commit(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions,
    }


def _git_commit() -> str | None:
    """The checkout's commit, with "+dirty" when mal/ has local changes."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../mal"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"environment": environment(), **data}, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"\nwrote {path}")


def raise_nofile(wanted: int = 65536) -> int:
    """Raise the soft limit on open files towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    On Linux ``ru_maxrss`` of a fresh subprocess is no good: it keeps the
    high-water mark of the process image before ``exec``, which is the RSS of
    the parent that spawned it. ``VmHWM`` in ``/proc/self/status`` is the same
    figure for this program's own memory only; elsewhere, ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bar_chart(
    path: str,
    title: str,
    groups: Sequence[str],
    series: dict[str, list[Summary | None]],
    ylabel: str,
    *,
    log: bool = False,
) -> None:
    """Grouped bars (median, with min-max error bars) saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(series)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {name: colors[i % len(colors)] for i, name in enumerate(names)}
    # Each group holds only the series it has, side by side and centred.
    present = [
        [name for name in names if (series[name][g] or {}).get("n")] for g in range(len(groups))
    ]
    width = 0.8 / max(max((len(p) for p in present), default=1), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(groups) + 2), 5))
    labelled: set[str] = set()
    for g, names_here in enumerate(present):
        for i, name in enumerate(names_here):
            s = series[name][g]
            assert s is not None
            x = g + (i - (len(names_here) - 1) / 2) * width
            ax.bar(
                x,
                s["median"],
                width,
                yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]],
                capsize=2,
                color=color[name],
                label=None if name in labelled else name,
            )
            labelled.add(name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        groups, rotation=15 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center"
    )
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
