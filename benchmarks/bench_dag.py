"""Benchmark how fast Snakemake builds the workflow's DAG at the paper's scale.

Description:
    Builds, in a temporary folder, simulated full-size copies of the four datasets in their
    official layouts (docs/datasets.md), made of EMPTY files (a dry run
    reads no video, only names and timestamps):

    - FaceForensics++: 1,000 real videos and 4 x 1,000 fakes (Deepfakes, Face2Face, FaceSwap,
      NeuralTextures), each at c23 and c40, with `splits/{train,val,test}.json` of 360/70/70
      pairs (the fakes are the two directions of each pair);
    - Celeb-DF v2: 590 Celeb-real, 5,639 Celeb-synthesis and 300 YouTube-real videos with a
      518-line `List_of_testing_videos.txt` (178 real, 340 fake);
    - DFDC: the 5,000-video test set with `test/labels.csv`, plus one small training part
      (`dfdc_train_part_0`, 40 videos with `metadata.json`);
    - WildDeepfake: 700 frame sequences in 24 small tar.gz archives (one empty PNG per
      sequence) over `{real,fake}_{train,test}/`.

    It writes an overlay config that points `datasets.roots` at these trees and sets the
    shard counts and seeds of the paper-scale preset (workflow/presets/paper.yaml), then
    times

        python -m snakemake -n --cores all --snakefile <repo>/Snakefile \\
            --directory <tmp>/work<i> --configfile <repo>/config.yaml <overlay>

    `--repeats` times (each in a fresh working directory, bounded by `--timeout`), and prints
    the median wall time and the job count per rule parsed from Snakemake's "Job stats",
    with the input files per rule parsed from the job listing, and, from the same listing,
    how often the evaluation stage reads each face set per trained model and how many bytes
    of face shards that is (estimated from the face counts of the simulated trees at the
    preset's frames per video and crop size). Each repeat also times the same dry run with
    `--quiet rules` (no job listing) and a one-rule Snakefile (start-up cost alone), and the
    script probes `scontrol show config`, which Snakemake's SLURM plugin runs at every start.
    The goal (issue "Fewer, larger jobs"): under 20 s and at most 600 jobs, each test face
    set read at most once per trained model; the exit status is 0 when the time and job
    goals are met, 2 when not, 1 when a dry run fails. With `--profile N` one more run
    goes under cProfile and the N functions with the largest cumulative time are printed.
    With `--readme PATH` the result is written as the section "## DAG construction" of that
    Markdown file (replacing that section if present, appending it otherwise; the rest of
    the file is kept as is).

Example:
    python benchmarks/bench_dag.py --repeats 3 --readme benchmarks/README.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import random
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from daml.data import ffpp

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 20.0
GOAL_JOBS = 600
SECTION = "## DAG construction"

PRESET = yaml.safe_load((REPO / "workflow/presets/paper.yaml").read_text())
PAPER_SHARDS = PRESET["faces"]["shards"]
PAPER_SEEDS = PRESET["seeds"]
#: rules whose jobs score a trained model on a target face set (before and after they merged)
# rule names of this and earlier structures, so that old runs can be measured too
EVALUATION_RULES = ("adapt_model", "evaluate_model", "evaluate_models")

FFPP_TECHNIQUES = ffpp.TECHNIQUES
FFPP_COMPRESSIONS = ("c23", "c40")
FFPP_SPLIT_PAIRS = {"train": 360, "val": 70, "test": 70}

CELEBDF_IDS = [i for i in range(62) if i not in (14, 15, 18)]  # 59 celebrities, as in v2
CELEBDF_REAL, CELEBDF_FAKE, CELEBDF_YOUTUBE = 590, 5639, 300
CELEBDF_TEST = {"Celeb-real": 108, "YouTube-real": 70, "Celeb-synthesis": 340}  # 518 lines

DFDC_TEST, DFDC_TRAIN = 5000, 40

WILD_SEQUENCES = {"real_train": 270, "fake_train": 280, "real_test": 70, "fake_test": 80}
WILD_ARCHIVES_PER_FOLDER = 6

#: videos (sequences) per face set in the simulated trees, for the byte estimate
FACESET_VIDEOS = {
    "ffpp-c23": 1000 * (1 + len(FFPP_TECHNIQUES)),
    "ffpp-c40": 1000 * (1 + len(FFPP_TECHNIQUES)),
    "celebdf": CELEBDF_REAL + CELEBDF_FAKE + CELEBDF_YOUTUBE,
    "dfdc": DFDC_TEST + DFDC_TRAIN,
    "wilddeepfake": sum(WILD_SEQUENCES.values()),
}


def touch_all(paths) -> int:
    """Create empty files (and their folders); return how many."""
    count = 0
    made = set()
    for path in paths:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.touch()
        count += 1
    return count


def build_ffpp(root: Path, rng: random.Random) -> int:
    """FF++ layout: 1,000 real and 4 x 1,000 fake videos at c23 and c40, official-style splits.

    Arguments:
        root: folder to create.
        rng: random source for the pairing of the 1,000 identities.

    Returns:
        the number of video files created.
    """
    ids = [f"{i:03d}" for i in range(1000)]
    rng.shuffle(ids)
    pairs = [[ids[2 * i], ids[2 * i + 1]] for i in range(500)]
    splits, start = {}, 0
    for split, n in FFPP_SPLIT_PAIRS.items():
        splits[split] = pairs[start : start + n]
        start += n
    (root / "splits").mkdir(parents=True)
    for split, chosen in splits.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(chosen))
    fakes = [f"{a}_{b}" for a, b in pairs] + [f"{b}_{a}" for a, b in pairs]
    paths = []
    for comp in FFPP_COMPRESSIONS:
        base = root / "original_sequences" / "youtube" / comp / "videos"
        paths += [base / f"{i}.mp4" for i in sorted(ids)]
        for technique in FFPP_TECHNIQUES:
            base = root / "manipulated_sequences" / technique / comp / "videos"
            paths += [base / f"{name}.mp4" for name in sorted(fakes)]
    return touch_all(paths)


def build_celebdf(root: Path, rng: random.Random) -> int:
    """Celeb-DF v2 layout: 590 real, 5,639 fake, 300 YouTube-real, 518-line test list.

    Arguments:
        root: folder to create.
        rng: random source for the identities swapped in and the test videos.

    Returns:
        the number of video files created.
    """
    real = [f"id{CELEBDF_IDS[i % len(CELEBDF_IDS)]}_{i // len(CELEBDF_IDS):04d}"
            for i in range(CELEBDF_REAL)]
    fake = []
    for i in range(CELEBDF_FAKE):
        target = CELEBDF_IDS[i % len(CELEBDF_IDS)]
        source = rng.choice([s for s in CELEBDF_IDS if s != target])
        fake.append(f"id{target}_id{source}_{i // len(CELEBDF_IDS):04d}")
    youtube = [f"{i:05d}" for i in range(CELEBDF_YOUTUBE)]
    folders = {"Celeb-real": real, "Celeb-synthesis": fake, "YouTube-real": youtube}
    lines = []
    for folder, names in folders.items():
        flag = "0" if folder == "Celeb-synthesis" else "1"  # the list's convention: 1 = real
        lines += [f"{flag} {folder}/{n}.mp4" for n in rng.sample(names, CELEBDF_TEST[folder])]
    rng.shuffle(lines)
    count = touch_all(root / folder / f"{n}.mp4" for folder, names in folders.items() for n in names)
    (root / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")
    return count


def build_dfdc(root: Path, rng: random.Random) -> int:
    """DFDC layout: the 5,000-video test set with labels.csv and one small training part.

    Arguments:
        root: folder to create.
        rng: random source for the file names and labels.

    Returns:
        the number of video files created.
    """
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = set()
    while len(names) < DFDC_TEST + DFDC_TRAIN:
        names.add("".join(rng.choice(letters) for _ in range(10)))
    names = sorted(names)
    rng.shuffle(names)
    test, train = names[:DFDC_TEST], names[DFDC_TEST:]
    (root / "test").mkdir(parents=True)
    rows = ["filename,label"] + [f"{n}.mp4,{int(rng.random() < 0.5)}" for n in test]
    (root / "test" / "labels.csv").write_text("\n".join(rows) + "\n")
    part = root / "dfdc_train_part_0"
    part.mkdir()
    originals = train[: DFDC_TRAIN // 4]
    metadata = {f"{n}.mp4": {"label": "REAL", "split": "train"} for n in originals}
    for i, n in enumerate(train[DFDC_TRAIN // 4 :]):
        metadata[f"{n}.mp4"] = {"label": "FAKE", "split": "train",
                                "original": f"{originals[i % len(originals)]}.mp4"}
    (part / "metadata.json").write_text(json.dumps(metadata))
    return touch_all([root / "test" / f"{n}.mp4" for n in test] + [part / f"{n}.mp4" for n in train])


def build_wilddeepfake(root: Path) -> int:
    """WildDeepfake layout: 700 sequences in small tar.gz archives, one empty PNG each.

    Arguments:
        root: folder to create.

    Returns:
        the number of archives created.
    """
    count, number = 0, 0
    for folder, n_sequences in WILD_SEQUENCES.items():
        (root / folder).mkdir(parents=True)
        cls = folder.split("_")[0]
        per_archive = -(-n_sequences // WILD_ARCHIVES_PER_FOLDER)
        for first in range(0, n_sequences, per_archive):
            number += 1
            with tarfile.open(root / folder / f"{number}.tar.gz", "w:gz") as archive:
                for seq in range(first, min(first + per_archive, n_sequences)):
                    info = tarfile.TarInfo(f"{number}/{cls}/{seq}/0.png")
                    archive.addfile(info, io.BytesIO(b""))
            count += 1
    return count


def build_trees(base: Path, seed: int = 0) -> dict[str, Path]:
    """Build the four dataset trees under `base`; print what was made; return their roots."""
    rng = random.Random(seed)
    roots = {name: base / name for name in ("ffpp", "celebdf", "dfdc", "wilddeepfake")}
    start = time.perf_counter()
    made = dict(
        ffpp=build_ffpp(roots["ffpp"], rng),
        celebdf=build_celebdf(roots["celebdf"], rng),
        dfdc=build_dfdc(roots["dfdc"], rng),
        wilddeepfake=build_wilddeepfake(roots["wilddeepfake"]),
    )
    print(f"dataset trees built in {time.perf_counter() - start:.1f} s: "
          f"ffpp {made['ffpp']} videos, celebdf {made['celebdf']} videos, "
          f"dfdc {made['dfdc']} videos, wilddeepfake {made['wilddeepfake']} archives "
          f"({sum(WILD_SEQUENCES.values())} sequences)", flush=True)
    return roots


def check_readers(roots: dict[str, Path]) -> str:
    """Index each tree with the workflow's own readers; return a one-line summary.

    Shows that the simulated trees follow the layouts the workflow expects (the dry run
    itself never reads them).
    """
    import logging

    from daml.data.manifest import IndexSettings, read_dataset

    logging.disable(logging.WARNING)
    settings = IndexSettings(on_inconsistency="skip", val_fraction=0.1, seed=0)
    parts = []
    for name, root in roots.items():
        manifest, problems = read_dataset(name, root, settings)
        parts.append(f"{name} {len(manifest)} entries, {len(problems)} problems")
    logging.disable(logging.NOTSET)
    return "; ".join(parts)


def write_overlay(path: Path, roots: dict[str, Path], shards: dict[str, int], seeds: list[int]) -> None:
    """The overlay config: real-data roots, paper-scale shards and seeds."""
    overlay = dict(
        datasets=dict(roots={k: str(v) for k, v in roots.items()}),
        faces=dict(shards=dict(shards)),
        seeds=list(seeds),
    )
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))


def dry_run_command(snakefile: Path, configfile: Path, overlay: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-n", "--cores", "all",
            "--snakefile", str(snakefile), "--directory", str(workdir),
            "--configfile", str(configfile), str(overlay)]


def parse_job_stats(text: str) -> dict[str, int]:
    """Job counts per rule from Snakemake's 'Job stats' table (the 'total' row included).

    Arguments:
        text: the dry run's output (stdout and stderr).

    Returns:
        rule -> count in the printed order, ending with 'total'.

    Raises:
        ValueError: no 'Job stats' table in `text`.
    """
    lines = text.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except ValueError:
        raise ValueError("no 'Job stats:' table in the dry run's output") from None
    counts = {}
    for line in lines[start + 1 :]:
        match = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if match and match[1] != "job":
            counts[match[1]] = int(match[2])
            if match[1] == "total":
                break
        elif counts and not line.strip().startswith("-"):
            break
    if "total" not in counts:
        raise ValueError("the 'Job stats' table has no 'total' row")
    return counts


TRIVIAL_SNAKEFILE = """\
rule all:
    output:
        "done.txt",
    shell:
        "touch {output}"
"""


def baseline_command(base: Path, i: int) -> list[str]:
    """A dry run of a one-rule workflow: interpreter start, imports, plugin registry, exit."""
    folder = base / "trivial"
    folder.mkdir(exist_ok=True)
    (folder / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
    return [sys.executable, "-m", "snakemake", "-n", "--cores", "all",
            "--snakefile", str(folder / "Snakefile"), "--directory", str(folder / f"work{i}")]


def slurm_probe() -> str:
    """Whether `scontrol show config` answers: the SLURM executor plugin runs it on import.

    Snakemake loads every installed executor plugin at start-up, even for a local dry run;
    snakemake-executor-plugin-slurm then calls `scontrol show config` with a 10 s timeout.
    Where SLURM's client tools are installed but no controller answers, every Snakemake
    start waits up to 10 s.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(["timeout", "12", "scontrol", "show", "config"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return "scontrol not installed"
    seconds = time.perf_counter() - start
    if proc.returncode == 127:
        return "scontrol not installed"
    state = "answered" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    return f"`scontrol show config` {state} in {seconds:.2f} s"


def parse_inputs(text: str) -> dict[str, tuple[int, int]]:
    """Input files per rule from the dry run's job listing: (total references, most in one job).

    Arguments:
        text: the dry run's output, with its per-job blocks (`rule X:` then `input: a, b`).

    Returns:
        rule -> (input file references summed over its jobs, the largest count of one job).
    """
    edges: dict[str, tuple[int, int]] = {}
    rule = None
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(?:local)?rule (\w+):", line)
        if match:
            rule = match[1]
            continue
        match = re.fullmatch(r"\s*input: (.*)", line)
        if match and rule is not None:
            n = len(match[1].split(", "))
            total, most = edges.get(rule, (0, 0))
            edges[rule] = (total + n, max(most, n))
            rule = None
    return edges


def parse_jobs(text: str) -> list[dict]:
    """Every job of the dry run's listing: rule, input files and wildcards."""
    jobs, job = [], None
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(?:local)?rule (\w+):", line)
        if match:
            job = {"rule": match[1], "inputs": [], "wildcards": {}}
            jobs.append(job)
            continue
        if job is None:
            continue
        match = re.fullmatch(r"\s*input: (.*)", line)
        if match:
            job["inputs"] = match[1].split(", ")
        match = re.fullmatch(r"\s*wildcards: (.*)", line)
        if match:
            job["wildcards"] = dict(part.split("=", 1) for part in match[1].split(", "))
    return jobs


def face_set_bytes(faceset: str) -> float:
    """Bytes of one face set's crops: videos x frames per video x crop x crop x 3."""
    side = PRESET["faces"]["crop_size"]
    return FACESET_VIDEOS[faceset] * PRESET["frames"]["per_video"] * side * side * 3


MODEL_FILE = re.compile(r"results/train/([^/]+)/([^/]+)/seed(\d+)/model\.pt$")


def face_reads(jobs: list[dict]) -> dict:
    """How often the evaluation stage reads face sets, per trained model, and the bytes.

    Returns:
        {"jobs": evaluation jobs, "bytes": estimated bytes of face shards they read,
         "most": the largest number of evaluation jobs of one trained model (source, method,
         seed) that read one face set, "where": that model and face set}.
    """
    reads: dict[tuple, int] = {}
    n_jobs, total = 0, 0.0
    for job in jobs:
        if job["rule"] not in EVALUATION_RULES:
            continue
        n_jobs += 1
        shards: dict[str, int] = {}
        for path in job["inputs"]:
            match = re.search(r"results/faces/([^/]+)/shard\d+\.npz$", path)
            if match:
                shards[match[1]] = shards.get(match[1], 0) + 1
        # the trained models a job serves: the model.pt files among its inputs
        models = {m.groups() for m in map(MODEL_FILE.search, job["inputs"]) if m}
        for faceset, n in shards.items():
            total += face_set_bytes(faceset) * n / PAPER_SHARDS[faceset]
            for model in models:
                reads[(model, faceset)] = reads.get((model, faceset), 0) + 1
    most = max(reads.values(), default=0)
    where = next((k for k, v in reads.items() if v == most), None)
    return {"jobs": n_jobs, "bytes": total, "most": most, "where": where}


def run_once(cmd: list[str], timeout: float) -> tuple[float, str, int]:
    """Run `cmd` under `timeout` seconds; return wall seconds, output, return code."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(["timeout", "-k", "10", str(int(timeout)), *cmd],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as error:
        raise SystemExit(f"could not start {cmd[0]}: {error}") from error
    return time.perf_counter() - start, proc.stdout, proc.returncode


def profile_once(cmd: list[str], timeout: float, out: Path, top: int) -> str:
    """One dry run under cProfile; return the `top` functions by cumulative time."""
    prof = out / "dag.prof"
    cmd = [cmd[0], "-m", "cProfile", "-o", str(prof), *cmd[1:]]
    seconds, text, rc = run_once(cmd, timeout)
    if rc != 0 or not prof.exists():
        return f"profiled run failed (exit {rc}):\n{text[-2000:]}"
    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    return f"profiled run: {seconds:.1f} s (cProfile overhead included)\n{buf.getvalue()}"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {model}"


def section(result: dict) -> str:
    """The README section, as Markdown."""
    counts, edges = result["counts"], result["edges"]
    seconds, jobs = result["median"], counts["total"]
    ok_time, ok_jobs = seconds < GOAL_SECONDS, jobs <= GOAL_JOBS
    verdict = "PASS" if ok_time and ok_jobs else "FAIL"
    shards = ", ".join(f"{k} {v}" for k, v in result["shards"].items())
    per_shard = round(sum(FACESET_VIDEOS.values()) / sum(result["shards"].values()))

    def listing(values):
        return ", ".join(f"{t:.1f}" for t in values)

    rows = []
    for rule, n in counts.items():
        if rule == "total":
            continue
        total, most = edges.get(rule, (None, None))
        rows.append(f"| {rule} | {n} | {'' if total is None else total} | {'' if most is None else most} |")
    n_edges = sum(total for total, _ in edges.values())
    dag = seconds - result["base_median"]
    out = [
        SECTION,
        "",
        "`bench_dag.py` times how long Snakemake takes to build the whole workflow's DAG at the",
        "paper's scale (goal: under 20 s, at most 600 jobs, each test face set read at most once",
        "per trained model). It builds simulated",
        "full-size dataset trees of empty files in the four official layouts (FF++ 1,000 real +",
        "4 x 1,000 fakes at c23 and c40 with 360/70/70-pair splits; Celeb-DF v2 590 real + 5,639",
        "fake + 300 YouTube-real with a 518-line test list; the DFDC test set of 5,000 videos with",
        "`test/labels.csv` plus one 40-video training part; WildDeepfake 700 sequences in 24 small",
        "tar.gz archives), points `datasets.roots` at them in an overlay config and runs a dry run",
        "(`-n`) of the default target: every table, figure and the report. A dry run reads no",
        "video, so empty files stand in for the real ones.",
        "",
        *(["The trees follow the layouts: the workflow's own readers",
           f"(`daml.data.manifest.read_dataset`) index them as {result['readers']}.", ""]
          if result.get("readers") else []),
        f"Overlay: shards {shards}",
        f"(about {per_shard} videos per shard), seeds {result['seeds']};",
        "methods, sources, targets and table rows as in `config.yaml`.",
        "",
        f"Command and result ({result['machine']}, shared with other engineers' jobs:",
        f"load average {result['load_before']} before and {result['load_after']} after the runs,",
        "so times are noisy and inflated; each repeat in a fresh working directory):",
        "",
        "```",
        result["command"],
        "```",
        "",
        "each repeat running",
        "",
        "```",
        result["dry_run"],
        "```",
        "",
        f"- Median wall time of the dry run: **{seconds:.1f} s** (repeats: {listing(result['times'])} s),",
        "  Python start-up and the printing of every job included.",
        f"- The same with `--quiet rules` (no job listing): median {result['quiet_median']:.1f} s "
        f"({listing(result['quiet_times'])} s).",
        "- The same command on a one-rule Snakefile (interpreter start, imports, executor-plugin",
        f"  registry): median {result['base_median']:.1f} s ({listing(result['base_times'])} s), so",
        f"  building and printing this DAG takes about {dag:.1f} s of the total.",
        f"- SLURM probe: {result['probe']}",
        "  (Snakemake's SLURM plugin runs it at every start: see the notes below).",
        f"- Jobs: **{jobs}**.",
        f"- Evaluation stage: {result['reads']['jobs']} jobs reading "
        f"{result['reads']['bytes'] / 1e12:.2f} TB of face shards (estimated: the simulated trees' "
        f"videos x {PRESET['frames']['per_video']} faces of {PRESET['faces']['crop_size']} px; a job "
        "reads every shard of its face set); a trained model's face set read by at most "
        f"**{result['reads']['most']}** of its evaluation jobs.",
        f"- Goal (< {GOAL_SECONDS:.0f} s, <= {GOAL_JOBS:,} jobs): **{verdict}**"
        + (f" ({GOAL_SECONDS / seconds:.1f}x under the time limit; {jobs / GOAL_JOBS:.0%} of the"
           " job limit)." if ok_time and ok_jobs else "."),
        "",
        "| rule | jobs | input files, all jobs | input files, largest job |",
        "|---|---|---|---|",
        *rows,
        f"| **total** | **{jobs}** | {n_edges} | |",
        "",
    ]
    if not (ok_time and ok_jobs):
        missed = []
        if not ok_time:
            missed.append(f"time over the goal by {seconds - GOAL_SECONDS:.1f} s "
                          f"({seconds / GOAL_SECONDS:.1f}x the limit)")
        if not ok_jobs:
            missed.append(f"jobs over the limit by {jobs - GOAL_JOBS}")
        out += [f"Missed: {'; '.join(missed)}.", ""]
    if result.get("scaling"):
        scaling = sorted(result["scaling"] + [
            (1.0, sum(result["shards"].values()), jobs, n_edges, f"{seconds:.1f} (median above)")])
        out += [
            "One dry run each with every shard count multiplied (same overlay otherwise; single",
            "runs on the shared machine, so expect a few seconds of noise; start-up included, as",
            "above):",
            "",
            "| shards x | shards in all | jobs | input files, all jobs | seconds |",
            "|---|---|---|---|---|",
            *(f"| {f:g} | {n} | {'' if j is None else j} | {'' if r is None else r} | {t} |"
              for f, n, j, r, t in scaling),
            "",
        ]
    out += notes(jobs, n_edges, edges)
    return "\n".join(out) + "\n"


def notes(jobs: int, n_edges: int, edges: dict[str, tuple[int, int]]) -> list[str]:
    """What limits the time: prose from a cProfile run (snakemake 9.27.1,
    snakemake-executor-plugin-slurm 2.8.0), with this run's counts filled in."""
    model_rules = [r for r in ("train_model", "train_models", "adapt_model", "evaluate_model",
                               "evaluate_models") if r in edges]
    most = max((edges[r][1] for r in model_rules), default=0)
    return [
        "What the time goes to (`--profile 40` runs one dry run under cProfile):",
        "",
        "- Edges, not jobs. Every " + " and ".join(f"`{r}`" for r in model_rules) + " job takes all",
        "  three outputs of every shard of its face set as inputs (`face_shards()` in",
        f"  `common.smk`; up to {most} files per job here). Snakemake resolves each input to its",
        "  producer (`DAG.update`, `collect_potential_dependencies`, `file2jobs`) and expands",
        "  each job's unpacked input lists (`Rule.expand_input`); these two are most of the DAG",
        f"  time, for about {n_edges:,} input references against {jobs} jobs. The cost grows as",
        "  (jobs of those rules) x (shards per face set) (see the shard scaling above,",
        "  where it was run). A per-face-set aggregate job (one small file listing the shards,",
        "  the only face input of the model jobs) would take each model job from up to",
        f"  {most} inputs to two, should the shard counts ever have to grow.",
        "- Printing: the default dry run prints every job with its whole input list (megabytes",
        "  of text here); compare the `--quiet rules` line above (within the noise here).",
        "- Start-up: Snakemake imports every installed executor plugin at every start, and",
        "  snakemake-executor-plugin-slurm 2.8.0 then runs `scontrol show config` (timeout 10 s)",
        "  when SLURM's client tools are on the PATH. On this machine SLURM is installed for the",
        "  integration tests; while no controller answers, every Snakemake start, even a local",
        "  dry run, waits up to 10 s (one profiled run spent 9.0 s there). The one-rule baseline",
        "  above includes this cost whenever it happens.",
        "- Dataset size does not enter the DAG: the roots are `ancient()` directory inputs of",
        "  the four `index_dataset` jobs, and no video is opened before those jobs run.",
    ]


def write_section(readme: Path, text: str) -> None:
    """Replace the '## DAG construction' section of `readme`, or append it; keep the rest."""
    old = readme.read_text() if readme.exists() else "# Benchmarks\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + text.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, readme)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="repository with Snakefile and config.yaml")
    parser.add_argument("--repeats", type=int, default=3, help="timed dry runs (median reported)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per dry run")
    parser.add_argument("--seeds", type=int, nargs="+", default=PAPER_SEEDS, help="seeds in the overlay")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one dry run with cProfile and print the top N functions")
    parser.add_argument("--readme", type=Path, default=None,
                        help="write the result as the '## DAG construction' section of this file")
    parser.add_argument("--scale", type=float, nargs="*", default=[], metavar="F",
                        help="after the repeats, one dry run per factor F with every shard count "
                             "multiplied by F (how the time grows with the shards)")
    parser.add_argument("--check-readers", action="store_true",
                        help="index the simulated trees with daml's dataset readers first")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the trees here and keep them (default: a temporary folder)")
    args = parser.parse_args(argv)

    snakefile, configfile = args.repo / "Snakefile", args.repo / "config.yaml"
    for path in (snakefile, configfile):
        if not path.exists():
            parser.error(f"{path} not found: pass --repo, the folder holding Snakefile and config.yaml")

    holder = None
    if args.keep is None:
        holder = tempfile.TemporaryDirectory(prefix="bench_dag_")
        base = Path(holder.name)
    else:
        base = args.keep
        base.mkdir(parents=True, exist_ok=True)
    try:
        roots = build_trees(base / "datasets")
        readers = check_readers(roots) if args.check_readers else ""
        if readers:
            print(f"dataset readers: {readers}", flush=True)
        overlay = base / "overlay.yaml"
        write_overlay(overlay, roots, PAPER_SHARDS, args.seeds)
        load_before = load()
        probe_before = slurm_probe()
        times, base_times, quiet_times, counts, edges, reads = [], [], [], None, {}, {}
        for i in range(args.repeats):
            seconds, text, rc = run_once(baseline_command(base, i), args.timeout)
            if rc != 0:
                print(text[-4000:], file=sys.stderr)
                print(f"baseline dry run {i + 1} failed (exit {rc})", file=sys.stderr)
                return 1
            base_times.append(seconds)
            cmd = dry_run_command(snakefile, configfile, overlay, base / f"work{i}")
            seconds, text, rc = run_once(cmd, args.timeout)
            if rc != 0:
                reason = "timed out" if rc in (124, 137) else f"exit {rc}"
                print(text[-4000:], file=sys.stderr)
                print(f"dry run {i + 1} failed ({reason} after {seconds:.1f} s): {shlex.join(cmd)}",
                      file=sys.stderr)
                return 1
            counts = parse_job_stats(text)
            edges = parse_inputs(text)
            reads = face_reads(parse_jobs(text))
            times.append(seconds)
            seconds_q, text_q, rc = run_once(cmd + ["--quiet", "rules"], args.timeout)
            if rc != 0 or parse_job_stats(text_q)["total"] != counts["total"]:
                print(text_q[-4000:], file=sys.stderr)
                print(f"quiet dry run {i + 1} failed (exit {rc})", file=sys.stderr)
                return 1
            quiet_times.append(seconds_q)
            print(f"dry run {i + 1}/{args.repeats}: {seconds:.1f} s, {counts['total']} jobs "
                  f"(one-rule baseline {base_times[-1]:.1f} s, with --quiet rules "
                  f"{quiet_times[-1]:.1f} s)", flush=True)
        load_after = load()
        probe_after = slurm_probe()
        profile = profile_once(cmd, args.timeout, base, args.profile) if args.profile else ""
        scaling = []
        for factor in args.scale:
            shards = {k: max(1, round(v * factor)) for k, v in PAPER_SHARDS.items()}
            scaled = base / f"overlay_x{factor:g}.yaml"
            write_overlay(scaled, roots, shards, args.seeds)
            cmd_s = dry_run_command(snakefile, configfile, scaled, base / f"work_x{factor:g}")
            seconds_s, text_s, rc = run_once(cmd_s, args.timeout)
            if rc != 0:
                reason = "timed out" if rc in (124, 137) else f"exit {rc}"
                print(text_s[-3000:], file=sys.stderr)
                scaling.append((factor, sum(shards.values()), None, None, f"failed ({reason})"))
            else:
                jobs_s = parse_job_stats(text_s)["total"]
                refs_s = sum(total for total, _ in parse_inputs(text_s).values())
                scaling.append((factor, sum(shards.values()), jobs_s, refs_s, f"{seconds_s:.1f}"))
            print(f"shards x{factor:g}: {scaling[-1]}", flush=True)

        result = dict(
            counts=counts, times=times, median=statistics.median(times),
            readers=readers, base_times=base_times, scaling=scaling, base_median=statistics.median(base_times),
            quiet_times=quiet_times, quiet_median=statistics.median(quiet_times), edges=edges,
            reads=reads,
            probe=f"{probe_before} before the runs, {probe_after.split('` ', 1)[-1]} after"
            if probe_before.startswith("`") else probe_before,
            shards=PAPER_SHARDS, seeds=args.seeds, machine=machine(),
            load_before=load_before.split()[0], load_after=load_after.split()[0],
            command="python benchmarks/bench_dag.py " + shlex.join(
                a for a in (argv if argv is not None else sys.argv[1:])),
            dry_run=("python -m snakemake -n --cores all --snakefile <repo>/Snakefile "
                     "--directory <tmp>/work<i> --configfile <repo>/config.yaml <tmp>/overlay.yaml"),
        )
        text = section(result)
        print()
        print(text)
        if profile:
            print(profile)
        if args.readme is not None:
            write_section(args.readme, text)
            print(f"written to {args.readme}")
        ok = result["median"] < GOAL_SECONDS and counts["total"] <= GOAL_JOBS
        return 0 if ok else 2
    finally:
        if holder is not None:
            holder.cleanup()


if __name__ == "__main__":
    sys.exit(main())
