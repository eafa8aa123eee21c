"""The data check's pieces: problems grouped by kind, buildable table rows."""

import pandas as pd

from daml.data.check import buildable, problem_kinds


def test_problems_are_counted_by_kind_without_their_names_and_numbers():
    problems = pd.DataFrame({"path": ["a", "b", "c"], "reason": [
        "fake 953_974 of pair [953, 974] absent for Deepfakes/c23",
        "fake 001_002 of pair [001, 002] absent for Deepfakes/c23",
        "named twice in List_of_testing_videos.txt (again at line 12)"]})
    kinds = problem_kinds(problems)
    assert kinds.tolist() == [2, 1]
    assert kinds.index[0] == "fake N_N of pair [N, N] absent for …"


def test_a_row_needs_both_classes_in_every_split_it_reads():
    manifest = pd.DataFrame({
        "compression": "c40", "split": ["train", "train", "val", "val", "test", "test"],
        "label": [0, 1, 0, 1, 0, 0], "technique": ["real", "Deepfakes", "real", "Deepfakes",
                                                    "real", "real"]})
    config = {"tables": {"table3": [{"source": "df", "target": "df"}]},
              "sources": {"df": {"faceset": "ffpp-c40", "techniques": ["Deepfakes"]}},
              "targets": {"df": {"faceset": "ffpp-c40", "techniques": ["Deepfakes"]}}}
    empty = manifest.iloc[:0]
    [verdict] = buildable(config, {"ffpp": manifest, "celebdf": empty, "dfdc": empty,
                                   "wilddeepfake": empty})
    assert not verdict["ok"]
    assert verdict["gaps"] == ["no fake test videos of ffpp-c40 (Deepfakes) (target)"]
