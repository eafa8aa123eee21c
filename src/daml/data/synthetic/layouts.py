"""Plans of the four dataset layouts: which files to write and how to render each.

Description:
    `plan(dataset, settings)` draws every identity, scene and fake of one dataset stand-in from
    the dataset's own seed stream and returns the metadata files (as text) and one `Job` per
    media file. Rendering a job is deterministic and independent of the other jobs, so tests
    can re-render any video to get its ground truth (e.g. landmarks). The layouts follow the
    real datasets (docs/datasets.md):

    - ffpp: `original_sequences/youtube/{c23,c40}/videos/NNN.mp4`,
      `manipulated_sequences/<technique>/{c23,c40}/videos/TTT_SSS.mp4` (target_source),
      `splits/{train,val,test}.json` (lists of ["TTT", "SSS"] pairs). FF++'s `raw`
      (lossless) folders are not written: they would only cost disk and time here, and the
      paper's tables use c23 and c40.
    - celebdf: `Celeb-real/idI_0000.mp4`, `Celeb-synthesis/idI_idJ_0000.mp4` (identity I's
      video with J's face), `YouTube-real/NNNNN.mp4`, `List_of_testing_videos.txt` with
      lines `<label> <subdir>/<name>.mp4`, 1 = real, 0 = fake.
    - dfdc: `dfdc_train_part_0/metadata.json` ({"x.mp4": {"label": "REAL"|"FAKE",
      "split": "train", "original": "y.mp4"}}, `original` only for fakes) with the videos
      beside it; `test/` with videos and `test/labels.csv` (filename,label; 1 = fake).
    - wilddeepfake: `{real,fake}_{train,test}/<N>.tar.gz`, each unpacking to
      `<N>/{real|fake}/<sequence>/<frame>.png`: tight face crops, no video.

References:
    FaceForensics++ (github.com/ondyari/FaceForensics), Celeb-DF v2, the DFDC dataset
    documentation, WildDeepfake (github.com/deepfakeinwild/deepfake-in-the-wild).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Callable

import cv2
import numpy as np

from daml.data.synthetic.domains import DOMAINS, Domain, sample_scene, sample_trace
from daml.data.synthetic.face import Identity
from daml.data.synthetic.manipulate import TECHNIQUES, Scene, film_scene, manipulate
from daml.data.synthetic.settings import SyntheticSettings

__all__ = ["Clip", "Job", "Plan", "plan", "DATASETS", "FFPP_CRFS"]

DATASETS = ("ffpp", "celebdf", "dfdc", "wilddeepfake")
FFPP_CRFS = {"c23": 23, "c40": 40}
WILD_FOLDERS = ("real_train", "fake_train", "real_test", "fake_test")
WILD_PER_ARCHIVE = 2


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """Rendered frames of one video or sequence, before encoding.

    Arguments:
        frames: uint8 RGB (T, H, W, 3).
        landmarks: float32 (T, 5, 2) ground truth of the face shown, RetinaFace's order.
        label: 0 real, 1 fake.
        technique: "real" or the manipulation's name.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    label: int
    technique: str


@dataclasses.dataclass(frozen=True, eq=False)
class Job:
    """One media file to write.

    Arguments:
        paths: relative paths written: MP4s (FF++: the same clip at each of `crfs`) or one
            .tar.gz.
        crfs: H.264 rate factor per path (empty for archives).
        members: folder of each clip inside the archive (empty for videos).
        render: renders the clips (one for a video, one per member for an archive).
    """

    paths: tuple[str, ...]
    crfs: tuple[int, ...]
    members: tuple[str, ...]
    render: Callable[[], list[Clip]]


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """Everything one dataset stand-in writes.

    Arguments:
        metadata: relative path -> text of each metadata file (splits, lists, labels).
        jobs: the media files, in an order that keeps the render cache warm.
    """

    metadata: dict[str, str]
    jobs: list[Job]


def plan(dataset: str, settings: SyntheticSettings) -> Plan:
    """Plan one dataset stand-in.

    Arguments:
        dataset: "ffpp", "celebdf", "dfdc" or "wilddeepfake".
        settings: scale knobs and master seed.

    Returns:
        The `Plan`. Each dataset draws from `SeedSequence([seed, index of dataset])`, so the
        datasets have different, independent identities and scenes.
    """
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, DATASETS.index(dataset)]))
    return _PLANNERS[dataset](rng, settings, DOMAINS[dataset])


def _scenes(domain: Domain, rng, settings, n, width=None, height=None) -> list[Scene]:
    width, height = width or settings.width, height or settings.height
    return [sample_scene(domain, rng, Identity.sample(rng), settings.frames, width, height,
                         settings.fps) for _ in range(n)]


def _filmer(scenes: list[Scene]):
    # a small cache: jobs are ordered so that a real video and the fakes made from it follow
    # each other, and at paper scale all real videos would not fit in memory
    @functools.lru_cache(maxsize=4)
    def real(index: int) -> tuple[np.ndarray, np.ndarray]:
        return film_scene(scenes[index])

    return real


def _plan_ffpp(rng, settings: SyntheticSettings, domain: Domain) -> Plan:
    n_pairs = sum(settings.ffpp_pairs)
    digits = max(3, len(str(2 * n_pairs - 1)))
    scenes = _scenes(domain, rng, settings, 2 * n_pairs)
    names = [f"{i:0{digits}d}" for i in range(2 * n_pairs)]
    order = rng.permutation(2 * n_pairs)
    pairs = [(int(order[2 * p]), int(order[2 * p + 1])) for p in range(n_pairs)]
    real = _filmer(scenes)
    crfs = tuple(FFPP_CRFS.values())

    def original(i):
        return lambda: [Clip(*real(i), 0, "real")]

    def fake(t, s, trace, seed):
        return lambda: [Clip(*manipulate(scenes[t], scenes[s], trace, seed, real(t)[0]), 1,
                             trace.technique)]

    jobs = []
    for a, b in pairs:
        for i in (a, b):
            paths = tuple(f"original_sequences/youtube/{c}/videos/{names[i]}.mp4"
                          for c in FFPP_CRFS)
            jobs.append(Job(paths, crfs, (), original(i)))
        for t, s in ((a, b), (b, a)):
            for technique in TECHNIQUES:
                trace = sample_trace(domain, rng, technique)
                paths = tuple(f"manipulated_sequences/{technique}/{c}/videos/"
                              f"{names[t]}_{names[s]}.mp4" for c in FFPP_CRFS)
                jobs.append(Job(paths, crfs, (), fake(t, s, trace, int(rng.integers(2**31)))))
    metadata, start = {}, 0
    for split, count in zip(("train", "val", "test"), settings.ffpp_pairs):
        chosen = [[names[a], names[b]] for a, b in pairs[start:start + count]]
        metadata[f"splits/{split}.json"] = json.dumps(chosen, indent=2) + "\n"
        start += count
    return Plan(metadata, jobs)


def _plan_celebdf(rng, settings: SyntheticSettings, domain: Domain) -> Plan:
    n = settings.celebdf_videos
    celebs = _scenes(domain, rng, settings, n)
    youtube = _scenes(domain, rng, settings, max(1, n // 2))
    real_celeb, real_youtube = _filmer(celebs), _filmer(youtube)
    jobs, listed = [], []

    def fake(t, s, trace, seed):
        return lambda: [Clip(*manipulate(celebs[t], celebs[s], trace, seed, real_celeb(t)[0]),
                             1, "Celeb-synthesis")]

    for i in range(n):
        j = (i + 1 + int(rng.integers(n - 1))) % n
        real_path, fake_path = f"Celeb-real/id{i}_0000.mp4", f"Celeb-synthesis/id{i}_id{j}_0000.mp4"
        jobs.append(Job((real_path,), (domain.crf,), (),
                        functools.partial(lambda i: [Clip(*real_celeb(i), 0, "real")], i)))
        trace = sample_trace(domain, rng)
        jobs.append(Job((fake_path,), (domain.crf,), (), fake(i, j, trace,
                                                              int(rng.integers(2**31)))))
        if i % 2 == 0:
            listed += [f"1 {real_path}", f"0 {fake_path}"]
    for k in range(len(youtube)):
        path = f"YouTube-real/{k:05d}.mp4"
        jobs.append(Job((path,), (domain.crf,), (),
                        functools.partial(lambda k: [Clip(*real_youtube(k), 0, "real")], k)))
        if k % 2 == 0:
            listed.append(f"1 {path}")
    return Plan({"List_of_testing_videos.txt": "\n".join(listed) + "\n"}, jobs)


def _dfdc_name(rng, used: set[str]) -> str:
    while True:
        name = "".join(chr(ord("a") + int(c)) for c in rng.integers(0, 26, 10)) + ".mp4"
        if name not in used:
            used.add(name)
            return name


def _plan_dfdc(rng, settings: SyntheticSettings, domain: Domain) -> Plan:
    n = settings.dfdc_videos
    used: set[str] = set()
    jobs = []
    metadata_train: dict[str, dict] = {}
    labels = ["filename,label"]

    def add(folder, scenes, real, n_fakes, record):
        for i in range(len(scenes)):
            name = _dfdc_name(rng, used)
            jobs.append(Job((f"{folder}/{name}",), (domain.crf,), (),
                            functools.partial(lambda i: [Clip(*real(i), 0, "real")], i)))
            record(name, 0, None)
            if i < n_fakes:
                j = (i + 1 + int(rng.integers(len(scenes) - 1))) % len(scenes)
                trace, seed = sample_trace(domain, rng), int(rng.integers(2**31))
                fake_name = _dfdc_name(rng, used)
                jobs.append(Job((f"{folder}/{fake_name}",), (domain.crf,), (), functools.partial(
                    lambda i, j, trace, seed: [Clip(*manipulate(
                        scenes[i], scenes[j], trace, seed, real(i)[0]), 1, "dfdc-fake")],
                    i, j, trace, seed)))
                record(fake_name, 1, name)

    def train_record(name, label, original):
        entry = {"label": "FAKE" if label else "REAL", "split": "train"}
        if original is not None:
            entry["original"] = original
        metadata_train[name] = entry

    def test_record(name, label, original):
        labels.append(f"{name},{label}")

    train = _scenes(domain, rng, settings, n)
    add("dfdc_train_part_0", train, _filmer(train), n, train_record)
    test = _scenes(domain, rng, settings, max(2, n - n // 2))
    add("test", test, _filmer(test), n // 2, test_record)
    metadata = {
        "dfdc_train_part_0/metadata.json": json.dumps(metadata_train, indent=2, sort_keys=True)
        + "\n",
        "test/labels.csv": "\n".join(labels) + "\n",
    }
    return Plan(metadata, jobs)


def _degrade(frames: np.ndarray, rng) -> np.ndarray:
    """Internet-video wear of WildDeepfake crops: lost resolution, then JPEG blocking."""
    size = frames.shape[1]
    small = max(16, int(round(size / rng.uniform(1.3, 2.0))))
    quality = int(rng.integers(55, 85))
    out = []
    for frame in frames:
        frame = cv2.resize(cv2.resize(frame, (small, small), interpolation=cv2.INTER_AREA),
                           (size, size), interpolation=cv2.INTER_LINEAR)
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
    return np.stack(out)


def _plan_wilddeepfake(rng, settings: SyntheticSettings, domain: Domain) -> Plan:
    size, k = settings.height, settings.wilddeepfake_sequences
    jobs, number = [], 1
    for folder in WILD_FOLDERS:
        kind = folder.split("_")[0]
        # fakes need a second identity (the source) for every target
        scenes = _scenes(domain, rng, settings, k + (kind == "fake"), size, size)
        real = _filmer(scenes)
        specs = []
        for i in range(k):
            wear = int(rng.integers(2**31))
            if kind == "real":
                specs.append((i, None, None, wear))
            else:
                specs.append((i, i + 1, sample_trace(domain, rng), wear, int(rng.integers(2**31))))
        for start in range(0, k, WILD_PER_ARCHIVE):
            chunk = specs[start:start + WILD_PER_ARCHIVE]
            members = tuple(f"{number}/{kind}/{m}" for m in range(len(chunk)))
            jobs.append(Job((f"{folder}/{number}.tar.gz",), (), members,
                            functools.partial(_render_wild, scenes, real, chunk)))
            number += 1
    return Plan({}, jobs)


def _render_wild(scenes, real, chunk) -> list[Clip]:
    clips = []
    for spec in chunk:
        if spec[1] is None:
            i, _, _, wear = spec
            frames, landmarks = real(i)
            label, technique = 0, "real"
        else:
            i, j, trace, wear, seed = spec
            frames, landmarks = manipulate(scenes[i], scenes[j], trace, seed, real(i)[0])
            label, technique = 1, "wild-fake"
        clips.append(Clip(_degrade(frames, np.random.default_rng(wear)), landmarks, label,
                          technique))
    return clips


_PLANNERS = {
    "ffpp": _plan_ffpp,
    "celebdf": _plan_celebdf,
    "dfdc": _plan_dfdc,
    "wilddeepfake": _plan_wilddeepfake,
}
