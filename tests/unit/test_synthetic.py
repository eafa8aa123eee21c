"""Tests of the embedded synthetic benchmark (daml.data.synthetic)."""

from __future__ import annotations

import csv
import json
import re
import tarfile
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from retinaface import detect_faces

from daml.data.synthetic import DATASETS, SyntheticSettings, generate
from daml.data.synthetic import generator as generate_module
from daml.data.synthetic.domains import DOMAINS, sample_scene
from daml.data.synthetic.face import Identity, Motion, region_mask, render_face
from daml.data.synthetic.layouts import plan
from daml.data.synthetic.manipulate import TECHNIQUES, Trace, film_scene, manipulate
from daml.errors import DamlError



def tiny(seed: int = 7, **changes) -> SyntheticSettings:
    values = dict(seed=seed, width=160, height=120, fps=25, frames=4, ffpp_pairs=(1, 1, 1),
                  celebdf_videos=2, dfdc_videos=2, wilddeepfake_sequences=1)
    values.update(changes)
    return SyntheticSettings(**values)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    for dataset in DATASETS:
        generate(dataset, folder / dataset, tiny())
    return folder


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def unpack(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            if member.isfile():
                data = np.frombuffer(archive.extractfile(member).read(), np.uint8)
                out[member.name] = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def videos(root: Path) -> list[Path]:
    return sorted(root.rglob("*.mp4"))


def ground_truth(dataset: str, settings: SyntheticSettings, relative: str):
    """Re-render the clip written at `relative` (renders are independent of each other)."""
    for job in plan(dataset, settings).jobs:
        if relative in job.paths:
            return job.render()[0]
    raise AssertionError(f"{relative} is not in the plan")


def best_face(image: np.ndarray):
    faces = detect_faces(image, score_threshold=0.3)
    assert faces, "RetinaFace found no face"
    face = max(faces, key=lambda f: f.score)
    return face.score, np.array([[p.x, p.y] for p in face.landmarks], float)


def normalised_error(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-landmark distance divided by the true inter-ocular distance."""
    return np.linalg.norm(found - truth, axis=1) / np.linalg.norm(truth[1] - truth[0])


# ---------------------------------------------------------------- layouts and files


def test_videos_decode_with_requested_shape(root):
    settings = tiny()
    paths = videos(root)
    # ffpp: 6 originals + 24 fakes at two compressions; celebdf 2+2+1; dfdc 2+2 train, 2+1 test
    assert len(paths) == 60 + 5 + 7
    for path in paths:
        frames = decode(path)
        assert frames.shape == (settings.frames, settings.height, settings.width, 3), path


def test_c40_smaller_than_c23(root):
    c23 = sorted((root / "ffpp").rglob("c23/videos/*.mp4"))
    assert len(c23) == 30
    for path in c23:
        other = Path(str(path).replace("/c23/", "/c40/"))
        assert other.stat().st_size < path.stat().st_size, path


def test_ffpp_splits_are_pairs_and_fakes_exist(root):
    ffpp = root / "ffpp"
    seen, expected_fakes = set(), set()
    for split, count in zip(("train", "val", "test"), tiny().ffpp_pairs):
        pairs = json.loads((ffpp / "splits" / f"{split}.json").read_text())
        assert len(pairs) == count
        for pair in pairs:
            assert isinstance(pair, list) and len(pair) == 2
            assert all(re.fullmatch(r"\d{3}", video) for video in pair)
            assert not seen & set(pair), "a video is in two pairs"
            seen |= set(pair)
            a, b = pair
            expected_fakes |= {f"{a}_{b}", f"{b}_{a}"}
    for compression in ("c23", "c40"):
        originals = {p.stem for p in (ffpp / "original_sequences/youtube" / compression /
                                      "videos").glob("*.mp4")}
        assert originals == seen
        for technique in TECHNIQUES:
            folder = ffpp / "manipulated_sequences" / technique / compression / "videos"
            assert {p.stem for p in folder.glob("*.mp4")} == expected_fakes
    assert not (ffpp / "original_sequences/youtube/raw").exists()


def test_celebdf_list_uses_one_for_real(root):
    celebdf = root / "celebdf"
    lines = (celebdf / "List_of_testing_videos.txt").read_text().splitlines()
    assert lines
    labels = {}
    for line in lines:
        label, relative = line.split(" ")
        assert (celebdf / relative).is_file()
        labels[relative] = int(label)
    for relative, label in labels.items():
        assert label == (0 if relative.startswith("Celeb-synthesis/") else 1)
    assert set(labels.values()) == {0, 1}
    for path in (celebdf / "Celeb-synthesis").glob("*.mp4"):
        assert re.fullmatch(r"id\d+_id\d+_0000", path.stem)


def test_dfdc_metadata_and_labels_match_files(root):
    dfdc = root / "dfdc"
    part = dfdc / "dfdc_train_part_0"
    metadata = json.loads((part / "metadata.json").read_text())
    assert set(metadata) == {p.name for p in part.glob("*.mp4")}
    for name, entry in metadata.items():
        assert entry["split"] == "train"
        if entry["label"] == "FAKE":
            original = entry["original"]
            assert metadata[original]["label"] == "REAL"
            # independent check of the pairing: the fake is its original outside the face
            fake, real = decode(part / name), decode(part / original)
            diff = np.abs(fake.astype(int) - real.astype(int)).mean(axis=(0, 3))
            assert diff[:, :20].mean() < 2.0 and diff[40:80, 60:100].mean() > 2.0
        else:
            assert entry["label"] == "REAL" and "original" not in entry
    with open(dfdc / "test" / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["filename", "label"]
    assert {r["filename"] for r in rows} == {p.name for p in (dfdc / "test").glob("*.mp4")}
    assert {r["label"] for r in rows} == {"0", "1"}


def test_wilddeepfake_archives_unpack_to_documented_structure(root):
    wild = root / "wilddeepfake"
    numbers = []
    for folder in ("real_train", "fake_train", "real_test", "fake_test"):
        kind = folder.split("_")[0]
        archives = sorted((wild / folder).glob("*.tar.gz"))
        assert len(archives) == 1
        for archive in archives:
            number = archive.name[: -len(".tar.gz")]
            numbers.append(number)
            images = unpack(archive)
            assert images
            for name, image in images.items():
                assert re.fullmatch(rf"{number}/{kind}/\d+/\d+\.png", name), name
                assert image.shape == (120, 120, 3)
            sequences = {name.rsplit("/", 1)[0] for name in images}
            for sequence in sequences:
                frames = sorted(n for n in images if n.startswith(sequence + "/"))
                assert len(frames) == tiny().frames
    assert len(set(numbers)) == len(numbers)


def test_failed_run_leaves_no_dataset(tmp_path, monkeypatch):
    real_write = generate_module.write_mp4
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("killed")
        real_write(*args, **kwargs)

    monkeypatch.setattr(generate_module, "write_mp4", failing)
    with pytest.raises(RuntimeError):
        generate("ffpp", tmp_path / "ffpp", tiny())
    assert list(tmp_path.iterdir()) == []


def test_settings_are_checked():
    with pytest.raises(DamlError, match="width"):
        tiny(width=161)
    with pytest.raises(DamlError, match="ffpp_pairs"):
        tiny(ffpp_pairs=(1, 0, 1))


# ---------------------------------------------------------------- determinism


def test_same_seed_same_content_different_seed_differs(root, tmp_path):
    for dataset in ("ffpp", "wilddeepfake"):
        generate(dataset, tmp_path / "again" / dataset, tiny())
    generate("ffpp", tmp_path / "other" / "ffpp", tiny(seed=8))
    first, again = root / "ffpp", tmp_path / "again" / "ffpp"
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == sorted(
        p.relative_to(again) for p in again.rglob("*"))
    for path in first.rglob("*.mp4"):
        np.testing.assert_array_equal(decode(path), decode(again / path.relative_to(first)))
    for path in (root / "wilddeepfake").rglob("*.tar.gz"):
        other = tmp_path / "again" / "wilddeepfake" / path.relative_to(root / "wilddeepfake")
        with tarfile.open(path) as a, tarfile.open(other) as b:
            for member in a.getmembers():
                if member.isfile():
                    assert a.extractfile(member).read() == b.extractfile(member.name).read()
    a = decode(first / "original_sequences/youtube/c23/videos/000.mp4")
    b = decode(tmp_path / "other/ffpp/original_sequences/youtube/c23/videos/000.mp4")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_datasets_use_different_identities():
    settings = tiny()
    first = [ground_truth("celebdf", settings, "Celeb-real/id0_0000.mp4").frames[0]]
    ffpp = ground_truth("ffpp", settings, "original_sequences/youtube/c23/videos/000.mp4")
    assert np.abs(first[0].astype(int) - ffpp.frames[0].astype(int)).mean() > 5


# ---------------------------------------------------------------- faces


def samples(root: Path) -> dict[str, tuple[str, str]]:
    """(real, fake) relative paths of one video per dataset."""
    ffpp = root / "ffpp"
    fake = sorted((ffpp / "manipulated_sequences/FaceSwap/c23/videos").glob("*.mp4"))[0]
    target = fake.stem.split("_")[0]
    metadata = json.loads((root / "dfdc/dfdc_train_part_0/metadata.json").read_text())
    dfdc_fake = next(n for n, e in metadata.items() if e["label"] == "FAKE")
    celeb_fake = sorted((root / "celebdf/Celeb-synthesis").glob("*.mp4"))[0]
    return {
        "ffpp": (f"original_sequences/youtube/c23/videos/{target}.mp4",
                 str(fake.relative_to(ffpp))),
        "celebdf": (f"Celeb-real/{celeb_fake.stem.split('_')[0]}_0000.mp4",
                    str(celeb_fake.relative_to(root / "celebdf"))),
        "dfdc": (f"dfdc_train_part_0/{metadata[dfdc_fake]['original']}",
                 f"dfdc_train_part_0/{dfdc_fake}"),
    }


@pytest.mark.parametrize("dataset", ["ffpp", "celebdf", "dfdc"])
def test_retinaface_finds_faces_in_videos(root, dataset):
    settings = tiny()
    scores = []
    for relative, is_real in zip(samples(root)[dataset], (True, False)):
        frames = decode(root / dataset / relative)
        truth = ground_truth(dataset, settings, relative)
        for k in range(settings.frames):
            score, landmarks = best_face(frames[k])
            scores.append(score)
            assert score > 0.5, (relative, k, score)
            # error in inter-ocular distances (about 25-35 pixels here): a few pixels;
            # fakes' faces are looser (blended, blurred)
            error = normalised_error(landmarks, truth.landmarks[k])
            assert error.mean() < (0.2 if is_real else 0.3), (relative, k, error)
            assert error.max() < (0.3 if is_real else 0.45), (relative, k, error)
    # the dim, small-faced DFDC stand-in has an occasional frame scored below RetinaFace's
    # default threshold of 0.9 (measured: 2 of 120 frames)
    assert np.mean(np.array(scores) > 0.9) >= 0.75, scores


def test_retinaface_finds_faces_in_wilddeepfake_crops(root):
    settings = tiny()
    for folder in ("real_test", "fake_test"):
        archive = next((root / "wilddeepfake" / folder).glob("*.tar.gz"))
        images = unpack(archive)
        job = next(j for j in plan("wilddeepfake", settings).jobs
                   if j.paths[0] == f"{folder}/{archive.name}")
        clip = job.render()[0]
        name = f"{job.members[0]}/0.png"
        np.testing.assert_array_equal(images[name], clip.frames[0])
        score, landmarks = best_face(images[name])
        assert score > 0.9
        assert normalised_error(landmarks, clip.landmarks[0]).mean() < 0.25


def test_landmark_order_is_retinaface_order():
    rng = np.random.default_rng(3)
    person = Identity.sample(rng)
    motion = Motion(cx=0.5, cy=0.5, size=0.3, roll=0.0, yaw=0.0, blink=0.0, mouth_open=0.3)
    image, truth = render_face(person, motion, 160, 120)
    score, landmarks = best_face(image)
    assert score > 0.9
    # left eye, right eye in image coordinates; nose between; mouth corners below the eyes
    assert truth[0, 0] < truth[1, 0] and truth[3, 0] < truth[4, 0]
    assert truth[3, 1] > truth[2, 1] > truth[0, 1]
    assert normalised_error(landmarks, truth).max() < 0.25


# ---------------------------------------------------------------- manipulations


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(11)
    target = sample_scene(DOMAINS["ffpp"], rng, Identity.sample(rng), 3, 160, 120, 25.0)
    source = sample_scene(DOMAINS["ffpp"], rng, Identity.sample(rng), 3, 160, 120, 25.0)
    real, landmarks = film_scene(target)
    return target, source, real, landmarks


def _share(diff: np.ndarray, mask: np.ndarray) -> float:
    return float((diff * mask).sum() / diff.sum())


def test_manipulations_change_different_regions(pair):
    target, source, real, _ = pair
    motion = target.motions[1]
    mouth = region_mask(target.identity, motion, 160, 120, "mouth")
    face = cv2.dilate(region_mask(target.identity, motion, 160, 120, "face"), np.ones((9, 9)))
    inner = region_mask(target.identity, motion, 160, 120, "inner")
    ring = np.clip(cv2.dilate(inner, np.ones((5, 5))) - cv2.erode(inner, np.ones((5, 5))), 0, 1)
    eyes_y = int(round(motion.cy * 120 + target.identity.eye_height * motion.size * 120))
    eyes = np.zeros_like(mouth)
    eyes[eyes_y - 6: eyes_y + 7] = 1.0
    diffs = {}
    for technique in TECHNIQUES:
        trace = next(t for t in DOMAINS["ffpp"].traces if t.technique == technique)
        fake = manipulate(target, source, trace, seed=5, real=real)[0][1]
        diff = np.abs(fake.astype(float) - real[1].astype(float)).sum(axis=2)
        assert diff.sum() > 0, technique
        assert _share(diff, face) > 0.99, technique  # the background is untouched
        diffs[technique] = diff
    shares = {t: (_share(d, mouth), _share(d, eyes), _share(d, ring)) for t, d in diffs.items()}
    # NeuralTextures: mostly the mouth; the others reach the eyes
    assert shares["NeuralTextures"][0] > 0.8
    assert shares["NeuralTextures"][1] < 0.05
    for technique in ("Deepfakes", "Face2Face", "FaceSwap"):
        assert shares[technique][0] < 0.6 and shares[technique][1] > 0.1, (technique, shares)
    # FaceSwap's hard seam: the fake's colour step across the mask edge is sharper than the
    # soft-blended Deepfakes seam
    sharp = {}
    for technique in ("Deepfakes", "FaceSwap"):
        trace = next(t for t in DOMAINS["ffpp"].traces if t.technique == technique)
        fake = manipulate(target, source, trace, seed=5, real=real)[0][1].astype(np.float32)
        gradient = np.abs(cv2.Laplacian(cv2.cvtColor(fake, cv2.COLOR_RGB2GRAY), cv2.CV_32F))
        sharp[technique] = float((gradient * ring).sum() / ring.sum())
    assert sharp["FaceSwap"] > 1.5 * sharp["Deepfakes"]


def test_deepfakes_blur_and_face2face_keep_identity(pair):
    target, source, real, landmarks = pair
    traces = {t.technique: t for t in DOMAINS["ffpp"].traces}
    inner = region_mask(target.identity, target.motions[0], 160, 120, "inner") > 0.9

    def detail(image):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[inner].mean())

    deepfake, deepfake_marks = manipulate(target, source, traces["Deepfakes"], 5, real)
    assert detail(deepfake[0]) < 0.7 * detail(real[0])  # low-resolution generator, no noise
    assert np.abs(deepfake_marks - landmarks).max() > 1.0  # the source's features
    face2face, marks = manipulate(target, source, traces["Face2Face"], 5, real)
    np.testing.assert_allclose(marks[:, :3], landmarks[:, :3], atol=1e-4)  # same identity
    no_warp = manipulate(target, source, Trace("Face2Face", feather=0.03, noise=1.0), 5, real)[0]
    assert np.abs(face2face.astype(int) - no_warp.astype(int)).mean() > 0.3  # the warp shows
