"""Tests of daml.frames: sampling, robust decoding, PNG sequences and shard extraction."""

from __future__ import annotations

import zlib

import av
import numpy as np
import pandas as pd
import pytest
from media import encode, make_tar, manifest_rows, png_bytes

from daml import frames as F
from daml.errors import DamlError

MANIFEST_COLUMNS = ["key", "dataset", "technique", "compression", "video", "split", "label",
                    "path", "member", "target_id", "source_id", "clip_id"]


def grey_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frame i is flat grey level 10 + 8 i: its number can be read back after decoding."""
    return [np.full((height, width, 3), 10 + 8 * i, np.uint8) for i in range(n)]


def noise_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]








# --- sample_indices -------------------------------------------------------------------------

@pytest.mark.parametrize("total", [0, 1, 2, 5, 31, 32, 33, 100, 301, 1000])
@pytest.mark.parametrize("n", [1, 4, 32])
def test_sample_indices_properties(total, n):
    got = F.sample_indices(total, n)
    assert got.dtype == np.int64
    assert len(got) == min(total, n)
    if total <= n:
        np.testing.assert_array_equal(got, np.arange(total))
        return
    assert np.all(np.diff(got) > 0) and got[0] >= 0 and got[-1] < total
    # independent check: pick k is the centre of the k-th of n equal bins, rounded down
    centres = (np.arange(n) + 0.5) * total / n
    assert np.all(got <= centres + 1e-9) and np.all(got > centres - 1)
    # uniform: gaps differ by at most one frame (up to rounding of bin centres)
    gaps = np.diff(got)
    assert n == 1 or gaps.max() - gaps.min() <= 1
    np.testing.assert_array_equal(got, F.sample_indices(total, n))  # deterministic


def test_sample_indices_rejects_n_below_one():
    with pytest.raises(DamlError):
        F.sample_indices(10, 0)


# --- read_video_frames ------------------------------------------------------------------------

def test_read_video_frames_returns_the_sampled_frames(tmp_path):
    video = encode(tmp_path / "v.mp4", grey_frames(20))
    frames, indices, total = F.read_video_frames(video, 4)
    assert total == 20
    np.testing.assert_array_equal(indices, F.sample_indices(20, 4))
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    # each frame's grey level identifies its number (lossy coding: a few levels of error)
    levels = frames.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(levels, 10 + 8 * indices, atol=3)


def test_read_video_frames_all_frames_when_few(tmp_path):
    video = encode(tmp_path / "v.mp4", grey_frames(3))
    frames, indices, total = F.read_video_frames(video, 8)
    assert total == 3 and list(indices) == [0, 1, 2] and len(frames) == 3


def test_read_video_frames_downscales_keeping_aspect(tmp_path):
    video = encode(tmp_path / "v.mp4", grey_frames(4, width=128, height=64))
    frames, _, _ = F.read_video_frames(video, 2, max_side=32)
    assert frames.shape == (2, 16, 32, 3)


def test_truncated_file_with_index_up_front_uses_the_frames_that_exist(tmp_path):
    # faststart puts the index first: the header promises 30 frames, the file holds fewer
    full = encode(tmp_path / "full.mp4", noise_frames(30), container_options={
        "movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with av.open(str(cut)) as container:
        assert container.streams.video[0].frames == 30  # what the header says
    frames, indices, total = F.read_video_frames(cut, 8)
    assert 0 < total < 30
    assert len(frames) == len(indices) == min(8, total) and indices[-1] < total


def _bad_files(tmp_path):
    good = encode(tmp_path / "good.mp4", noise_frames(12))
    data = good.read_bytes()
    files = {}
    files["empty"] = tmp_path / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["truncated"] = tmp_path / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    start = data.find(b"moov") + 4
    corrupt[start:] = np.random.default_rng(1).integers(
        0, 256, len(data) - start, dtype=np.uint8).tobytes()
    files["corrupt"] = tmp_path / "corrupt.mp4"
    files["corrupt"].write_bytes(bytes(corrupt))
    files["text"] = tmp_path / "text.mp4"
    files["text"].write_text("this is a text file, not a video\n" * 20)
    files["noframes"] = encode(tmp_path / "noframes.avi", [])
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files["audio"] = audio
    files["missing"] = tmp_path / "missing.mp4"
    return files


EXPECTED_REASONS = {
    "empty": "empty file",
    "truncated": "truncated",
    "corrupt": "corrupt",
    "text": "not a video",
    "noframes": "no frames",
    "audio": "no video stream",
    "missing": "missing file",
}


def test_bad_videos_raise_with_specific_reasons(tmp_path):
    files = _bad_files(tmp_path)
    for name, expected in EXPECTED_REASONS.items():
        with pytest.raises(F.UnreadableInput) as caught:
            F.read_video_frames(files[name], 4)
        assert caught.value.reason.startswith(expected), (name, caught.value.reason)
        assert isinstance(caught.value, DamlError)
        assert str(files[name]) in str(caught.value)


# --- read_sequence_frames ---------------------------------------------------------------------

def test_sequence_natural_order_sampling_and_bad_pngs(tmp_path):
    names = [f"{i}.png" for i in range(12)]  # 0..11: lexicographic order would put 10 after 1
    files = {f"7/fake/seq1/{name}": png_bytes(np.full((40, 30, 3), 10 + 8 * i, np.uint8))
             for i, name in enumerate(names)}
    files["7/fake/seq1/4.png"] = b"\x89PNG\r\n\x1a\nbroken"
    files["7/fake/seq2/0.png"] = png_bytes(np.zeros((40, 30, 3), np.uint8))  # other sequence
    archive = make_tar(tmp_path / "7.tar.gz", files)
    frames, indices, total, bad = F.read_sequence_frames(archive, "7/fake/seq1", 4)
    expected = F.sample_indices(12, 4)  # [1, 4, 7, 10]
    assert total == 12
    assert [b[0] for b in bad] == [4] and "4.png" in bad[0][1]
    np.testing.assert_array_equal(indices, [i for i in expected if i != 4])
    levels = frames.reshape(len(frames), -1).mean(axis=1)
    np.testing.assert_allclose(levels, 10 + 8 * indices, atol=0.5)


def test_sequence_frames_of_different_sizes_stack(tmp_path):
    files = {f"s/{i}.png": png_bytes(np.full((40 + i, 30 + 2 * i, 3), 100, np.uint8))
             for i in range(5)}
    archive = make_tar(tmp_path / "a.tar.gz", files)
    frames, indices, total, bad = F.read_sequence_frames(archive, "s", 5)
    assert frames.shape == (5, 40, 30, 3) and not bad


def test_sequence_errors(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"s/0.png": b"not a png"})
    with pytest.raises(F.UnreadableInput, match="readable"):
        F.read_sequence_frames(archive, "s", 4)
    with pytest.raises(F.UnreadableInput, match="no PNG"):
        F.read_sequence_frames(archive, "other", 4)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(F.UnreadableInput, match="archive"):
        F.read_sequence_frames(broken, "s", 4)


# --- extract_shard ----------------------------------------------------------------------------



def test_extract_shard_writes_folder_and_skips_bad_videos(tmp_path):
    files = _bad_files(tmp_path)
    paths = {name: files[name] for name in EXPECTED_REASONS}
    paths["good"] = tmp_path / "good.mp4"
    paths["good2"] = encode(tmp_path / "good2.mp4", grey_frames(7))
    rows = manifest_rows(paths)
    rows += manifest_rows({"other": paths["good"]}, compression="c40")  # other faceset
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    settings = F.FrameSettings(per_video=4, max_side=32, compress=False)
    stale = tmp_path / "frames" / ".shard0.tmp99999"  # a killed attempt's half-written folder
    stale.mkdir(parents=True)
    (stale / "index.csv").write_text("half")
    seen = []
    for shard in range(2):
        out = tmp_path / "frames" / f"shard{shard}"
        table = F.extract_shard(manifest, out, "ffpp", "c23", shard, 2, settings)
        assert list(table.columns) == F.INDEX_COLUMNS
        on_disk = pd.read_csv(out / "index.csv", keep_default_na=False)
        assert list(on_disk.columns) == F.INDEX_COLUMNS and len(on_disk) == len(table)
        assert all(zlib.crc32(key.encode()) % 2 == shard for key in on_disk["key"])
        for row in on_disk.itertuples():
            name = row.key.split("/")[-1]
            seen.append(name)
            if name.startswith("good"):
                assert row.status == "ok" and row.reason == ""
                with np.load(out / row.file) as data:
                    assert data["frames"].shape[0] == row.n_frames == 4
                    assert data["frames"].shape[1:] == (24, 32, 3)
                    assert len(data["indices"]) == 4
                assert row.total_frames == (12 if name == "good" else 7)
            else:
                assert row.status == "skipped"
                assert row.reason.startswith(EXPECTED_REASONS[name]), row.reason
        shard_manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
        assert list(shard_manifest["key"]) == list(on_disk["key"])
    assert sorted(seen) == sorted(paths)  # every c23 video in exactly one shard, no c40 one
    leftovers = [p.name for p in (tmp_path / "frames").iterdir()]
    assert sorted(leftovers) == ["shard0", "shard1"]  # no temporary folder left behind


def test_extract_shard_reads_sequences(tmp_path):
    files = {f"3/real/s{j}/{i:03d}.png": png_bytes(np.full((50, 40, 3), 60 + i, np.uint8))
             for j in range(3) for i in range(6)}
    archive = make_tar(tmp_path / "3.tar.gz", files)
    rows = []
    for j in range(3):
        rows += manifest_rows({f"3/s{j}": archive}, dataset="wilddeepfake", compression="none",
                              member=f"3/real/s{j}")
    rows += manifest_rows({"3/gone": tmp_path / "gone.tar.gz"}, dataset="wilddeepfake",
                          compression="none", member="3/real/gone")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    table = F.extract_shard(manifest, tmp_path / "out", "wilddeepfake", "none", 0, 1,
                            F.FrameSettings(per_video=4, max_side=0, compress=True))
    assert list(table["status"]) == ["ok", "ok", "ok", "skipped"]
    assert list(table["n_frames"][:3]) == [4, 4, 4] and list(table["total_frames"][:3]) == [6] * 3
    assert table["reason"].iloc[3] == "missing file"


def test_extract_shard_rejects_bad_shard(tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([], columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    with pytest.raises(DamlError, match="shard"):
        F.extract_shard(manifest, tmp_path / "out", "ffpp", "c23", 3, 2,
                        F.FrameSettings(per_video=4, max_side=0, compress=False))
