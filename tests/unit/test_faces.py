"""Tests of daml.faces: real RetinaFace detection, 5-point alignment and face shards.

Faces come from the procedural renderer of the embedded benchmark
(`daml.data.synthetic.face`, through tests/media.py), which gives each face's ground-truth
landmarks.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from media import encode, face_image, make_tar, manifest_rows, png_bytes, two_face_scene

from daml import faces as FA
from daml import frames as F
from daml.data.synthetic.face import Identity, make_background, render_face, talking_motion

cv2.setNumThreads(1)

MANIFEST_COLUMNS = ["key", "dataset", "technique", "compression", "video", "split", "label",
                    "path", "member", "target_id", "source_id", "clip_id"]










@pytest.fixture(scope="module")
def detector():
    return FA.Detector(score_threshold=0.9, detect_max_side=0, threads=1)


def settings(**changes) -> FA.FaceSettings:
    values = dict(crop_size=64, margin=1.3, score_threshold=0.9, detect_max_side=160,
                  batch_size=4, pad_sequences=0.25, fallback_for_sequences=True,
                  fallback_for_videos=False)
    values.update(changes)
    return FA.FaceSettings(**values)


def similarity(angle_deg: float, scale: float, shift, centre) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(tuple(map(float, centre)), angle_deg, scale)
    matrix[:, 2] += shift
    return matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


# --- alignment geometry -----------------------------------------------------------------------

def test_template_with_margin_one_is_arcface():
    np.testing.assert_allclose(FA.template_points(112, 1.0)[0], [38.2946, 51.6963])
    wide = FA.template_points(100, 2.0)
    np.testing.assert_allclose(wide - 50, (FA.template_points(100, 1.0) - 50) / 2)


def test_warp_puts_landmarks_on_the_template():
    # Independent of the matrix: paint a dot at each true landmark, warp the image, and find
    # the dots again in the crop by their centroids.
    image, landmarks = face_image(0)
    crop_size, margin = 96, 1.3
    for k, (x, y) in enumerate(landmarks):
        dots = np.zeros(image.shape[:2], np.float32)
        cv2.circle(dots, (int(round(x * 16)), int(round(y * 16))), 3 * 16, 1.0, -1,
                   cv2.LINE_AA, 4)
        warped, _ = FA.align_face(np.repeat(dots[..., None], 3, 2), landmarks, crop_size,
                                  margin)
        weights = warped[..., 0]
        ys, xs = np.mgrid[:crop_size, :crop_size]
        found = [(weights * xs).sum() / weights.sum(), (weights * ys).sum() / weights.sum()]
        least_squares = apply(FA.alignment_matrix(landmarks, crop_size, margin), landmarks[k])
        np.testing.assert_allclose(found, least_squares, atol=0.3)
    # the least-squares fit itself: a face is not exactly the template, but close to it
    residual = apply(FA.alignment_matrix(landmarks, crop_size, margin), landmarks)
    assert np.abs(residual - FA.template_points(crop_size, margin)).max() < 0.08 * crop_size


@pytest.mark.parametrize("angle,scale,shift", [(0, 1.0, (0, 0)), (25, 1.0, (0, 0)),
                                               (-30, 0.8, (30, -20)), (10, 1.3, (-25, 15)),
                                               (0, 0.6, (60, 40))])
def test_detected_landmarks_align_to_template_under_similarity(detector, angle, scale, shift):
    image, truth = face_image(3)
    height, width = image.shape[:2]
    moved = similarity(angle, scale, shift, (width / 2, height / 2))
    image = cv2.warpAffine(image, moved, (width, height), borderMode=cv2.BORDER_REFLECT)
    truth = apply(moved, truth)
    face = FA.main_face(detector.detect(image[None])[0])
    assert face is not None and face.score > 0.9
    crop_size, margin = 112, 1.3
    crop, matrix = FA.align_face(image, face.landmarks, crop_size, margin)
    template = FA.template_points(crop_size, margin)
    # detected landmarks land within a few pixels of the template ...
    assert np.abs(apply(matrix, face.landmarks) - template).max() < 6
    # ... and so do the true landmarks: the alignment undoes rotation, scale and shift
    assert np.abs(apply(matrix, truth) - template).max() < 0.08 * crop_size
    eye_left, eye_right = apply(matrix, truth[:2])
    assert abs(math.degrees(math.atan2(eye_right[1] - eye_left[1],
                                       eye_right[0] - eye_left[0]))) < 6


def test_detection_at_reduced_resolution_maps_back(detector):
    image, truth = face_image(5, width=640, height=480)
    full = FA.main_face(detector.detect(image[None])[0])
    small = FA.main_face(FA.Detector(0.9, 200, 1).detect(image[None])[0])
    assert full is not None and small is not None
    # both in full-resolution pixels; the face's inter-ocular distance is about 90 px here
    assert np.abs(small.landmarks - full.landmarks).max() < 12
    assert np.abs(small.box - full.box).max() < 20
    assert np.abs(small.landmarks - truth).max() < 0.25 * np.linalg.norm(truth[0] - truth[1])


def test_main_face_is_the_largest(detector):
    image, big_truth, _ = two_face_scene(11)
    found = detector.detect(image[None])[0]
    assert len(found) == 2
    chosen = FA.main_face(found)
    assert np.abs(chosen.landmarks - big_truth).max() < 0.25 * 0.3 * 320
    assert FA.main_face([]) is None
    # ties on area go to the higher score
    a = FA.Detection(np.array([0, 0, 10, 10.0]), np.zeros((5, 2)), 0.91)
    b = FA.Detection(np.array([5, 5, 15, 15.0]), np.zeros((5, 2)), 0.99)
    assert FA.main_face([a, b]) is b and FA.main_face([b, a]) is b
    # size wins over score
    big = FA.Detection(np.array([0, 0, 30, 30.0]), np.zeros((5, 2)), 0.92)
    assert FA.main_face([b, big]) is big


def test_batches_equal_single_images(detector):
    images = np.stack([face_image(seed)[0] for seed in (20, 21, 22)])
    batched = detector.detect(images)
    for image, together in zip(images, batched):
        alone = detector.detect(image[None])[0]
        np.testing.assert_allclose(FA.main_face(alone).landmarks,
                                   FA.main_face(together).landmarks, atol=1e-6)


def test_providers_prefer_cuda_only_when_available():
    chosen = FA.providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in chosen) == (
        "CUDAExecutionProvider" in ort.get_available_providers())


def test_fallback_crop_is_the_central_square():
    image = np.zeros((60, 40, 3), np.uint8)
    image[10:50, :] = 200
    crop, box = FA.fallback_crop(image, 20)
    np.testing.assert_array_equal(box, [0, 10, 40, 50])
    assert crop.shape == (20, 20, 3) and crop.min() == 200


# --- align_shard end to end -------------------------------------------------------------------

def face_video(path, seed: int, n: int, width=160, height=128, truth=None):
    rng = np.random.default_rng(seed)
    person = Identity.sample(rng)
    background = make_background(rng, width, height)
    rendered = [render_face(person, motion, width, height, background)
                for motion in talking_motion(rng, n, 25.0, 0.5, 0.5, 0.3)]
    if truth is not None:
        truth.extend(rendered)
    return encode(path, [image for image, _ in rendered])


def run_stage(tmp_path, rows, per_video=4, **face_changes):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    frames_dir = tmp_path / "frames" / "shard0"
    dataset, compression = rows[0]["dataset"], rows[0]["compression"]
    F.extract_shard(manifest, frames_dir, dataset, compression, 0, 1,
                    F.FrameSettings(per_video=per_video, max_side=160, compress=False))
    out = tmp_path / "faces" / "shard0"
    counts = FA.align_shard(frames_dir, out.with_suffix(".npz"), out.with_suffix(".csv"),
                            tmp_path / "faces" / "shard0.skips.csv", settings(**face_changes),
                            threads=1)
    with np.load(out.with_suffix(".npz")) as data:
        crops = data["crops"]
    table = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False, dtype={"video": str})
    skips = pd.read_csv(tmp_path / "faces" / "shard0.skips.csv", keep_default_na=False)
    return crops, table, skips, counts


def test_align_shard_on_real_videos(tmp_path):
    truth = []
    paths = {f"00{i}": face_video(tmp_path / f"00{i}.mp4", seed=i, n=6,
                                  truth=truth if i == 0 else None) for i in range(3)}
    paths["blank"] = encode(tmp_path / "blank.mp4", [np.full((128, 160, 3), 90, np.uint8)] * 5)
    paths["empty"] = tmp_path / "empty.mp4"
    paths["empty"].write_bytes(b"")
    paths["text"] = tmp_path / "text.mp4"
    paths["text"].write_text("not a video\n" * 10)
    crops, table, skips, counts = run_stage(tmp_path, manifest_rows(paths))
    assert crops.shape == (12, 64, 64, 3) and crops.dtype == np.uint8
    assert list(table.columns) == FA.CROP_COLUMNS
    assert len(table) == 12 and set(table["how"]) == {"detected"}
    assert (table["score"] > 0.9).all()
    assert sorted(table["video"].unique()) == ["000", "001", "002"]
    assert list(table[table["video"] == "000"]["frame"]) == list(F.sample_indices(6, 4))
    assert list(table["key"][:1]) == ["ffpp/c23/real/000"] and (table["label"] == 0).all()
    assert list(skips.columns) == FA.SKIP_COLUMNS
    blank = skips[skips["key"].str.endswith("blank")]
    assert list(blank["frame"]) == list(F.sample_indices(5, 4))
    assert set(blank["reason"]) == {"no face"}
    whole = skips[skips["frame"] == -1].set_index("key")["reason"]
    assert whole["ffpp/c23/real/empty"].startswith("empty file")
    assert whole["ffpp/c23/real/text"].startswith("not a video")
    assert counts["detected"] == 12 and counts["skipped_videos"] == 2
    # the crops of video 000 look like crops aligned on the true landmarks of its frames,
    # and less like those of another frame set
    rows = np.flatnonzero(table["video"] == "000")
    for row, frame in zip(rows, table["frame"].iloc[rows]):
        image, landmarks = truth[frame]
        expected, _ = FA.align_face(image, landmarks, 64, 1.3)
        other, _ = FA.align_face(*truth[(frame + 3) % 6], 64, 1.3)
        same = np.corrcoef(crops[row].ravel(), expected.ravel())[0, 1]
        assert same > 0.8, same


def test_torch_backend_gives_the_same_shard(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="daml.faces")
    paths = {f"00{i}": face_video(tmp_path / f"00{i}.mp4", seed=i, n=4) for i in range(2)}
    shards = {}
    for backend in ("onnxruntime", "torch"):
        (tmp_path / backend).mkdir()
        shards[backend] = run_stage(tmp_path / backend, manifest_rows(paths), backend=backend,
                                    device="cpu")
    (crops, table, _, counts), (torch_crops, torch_table, _, torch_counts) = shards.values()
    assert "RetinaFace on CPUExecutionProvider (onnxruntime)" in caplog.messages
    assert "RetinaFace on cpu (torch)" in caplog.messages
    assert counts == torch_counts and counts["detected"] == 8
    assert table[["key", "frame", "how"]].equals(torch_table[["key", "frame", "how"]])
    coordinates = ["x1", "y1", "x2", "y2"] + [f"lm{i}{a}" for i in range(5) for a in "xy"]
    assert (table[coordinates] - torch_table[coordinates]).abs().to_numpy().max() <= 1.0
    # a landmark a pixel off moves the crop a little: nearly the same pixels
    difference = np.abs(crops.astype(int) - torch_crops.astype(int)).mean()
    assert difference < 2, difference


def test_fallback_for_videos_keeps_every_frame(tmp_path):
    paths = {"blank": encode(tmp_path / "blank.mp4", [np.full((128, 160, 3), 90, np.uint8)] * 5)}
    crops, table, skips, _ = run_stage(tmp_path, manifest_rows(paths),
                                       fallback_for_videos=True)
    assert len(crops) == 4 and set(table["how"]) == {"fallback"} and skips.empty
    assert table["lm0x"].eq("").all() and (table["score"] == 0).all()


def test_all_empty_shard_writes_valid_empty_outputs(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    crops, table, skips, counts = run_stage(tmp_path, manifest_rows({"empty": empty}))
    assert crops.shape == (0, 64, 64, 3)
    assert table.empty and list(table.columns) == FA.CROP_COLUMNS
    assert list(skips["frame"]) == [-1] and counts["skipped_videos"] == 1


def test_tight_crop_sequence_never_loses_frames(tmp_path):
    files = {}
    for seed in range(2):
        rng = np.random.default_rng(100 + seed)
        person = Identity.sample(rng)
        for i, motion in enumerate(talking_motion(rng, 6, 25.0, 0.5, 0.5, 0.45)):
            image, truth = render_face(person, motion, 200, 200, make_background(rng, 200, 200))
            centre = truth.mean(axis=0)
            half = 0.45 * 200 * (0.85, 0.6)[seed]  # tight: cheek to cheek, brow to chin
            x1, y1 = int(centre[0] - half * 0.8), int(centre[1] - half)
            tight = image[max(0, y1):y1 + int(2 * half), max(0, x1):x1 + int(1.6 * half)]
            files[f"5/fake/s{seed}/{i}.png"] = png_bytes(tight)
    files["5/fake/s1/3.png"] = b"damaged"
    # a sequence that holds no face at all: the fallback keeps its frames
    for i in range(4):
        files[f"5/fake/plain/{i}.png"] = png_bytes(np.full((90, 80, 3), 150, np.uint8))
    archive = make_tar(tmp_path / "5.tar.gz", files)
    rows = []
    for member in ("s0", "s1", "plain"):
        rows += manifest_rows({f"5/{member}": archive}, dataset="wilddeepfake",
                              compression="none", member=f"5/fake/{member}")
    crops, table, skips, counts = run_stage(tmp_path, rows, per_video=6)
    per_video = table.groupby("video").size().to_dict()
    assert per_video == {"5/s0": 6, "5/s1": 5, "5/plain": 4}
    assert list(skips["frame"]) == [3] and "unreadable PNG" in skips["reason"].iloc[0]
    assert len(crops) == 15 == counts["detected"] + counts["fallback"]
    assert set(table[table["video"] == "5/plain"]["how"]) == {"fallback"}
    faces = table[table["video"] != "5/plain"]
    assert (faces["how"] == "detected").mean() >= 0.8
