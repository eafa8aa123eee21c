import copy

import pytest
import yaml

from daml import config
from daml.errors import DamlError


@pytest.fixture
def shipped(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_shipped_config_validates_and_gets_defaults(shipped, schema_path):
    cfg = config.validate(copy.deepcopy(shipped), schema_path)
    assert cfg["faces"]["margin"] == 1.3  # filled from the schema
    assert cfg["faces"]["crop_size"] == shipped["faces"]["crop_size"]  # kept from the file
    # a row without shots takes the meta-test default
    assert cfg["tables"]["table3"][0]["shots"] == cfg["adapt"]["shots"] == 10
    assert all(e["shots"] > 0 for entries in cfg["tables"].values() for e in entries)


def test_schema_defaults_alone_validate(schema_path):
    defaults = config.schema_defaults(schema_path)
    assert defaults["frames"]["per_video"] == 32
    assert defaults["datasets"]["on_inconsistency"] == "skip"


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["faces"].__setitem__("crop", 3), "faces"),
        (lambda c: c.__setitem__("seeds", [-1]), "seeds.0"),
        (lambda c: c.__setitem__("methods", ["daml", "Reptile!"]), "methods.1"),
        (lambda c: c["frames"].__setitem__("per_video", "many"), "frames.per_video"),
        (lambda c: c["tables"]["table2"][0].__setitem__("shots", 0), "tables.table2.0.shots"),
    ],
)
def test_bad_values_name_their_key(shipped, schema_path, edit, key):
    edit(shipped)
    with pytest.raises(DamlError) as error:
        config.validate(shipped, schema_path)
    assert f"- {key}:" in str(error.value)


def test_unknown_key_lists_known_ones(shipped, schema_path):
    shipped["faces"]["crop"] = 3
    with pytest.raises(DamlError, match="known keys: .*crop_size"):
        config.validate(shipped, schema_path)


def test_missing_root_names_key_and_path(shipped, schema_path, tmp_path):
    shipped["datasets"]["roots"]["celebdf"] = str(tmp_path / "nowhere")
    with pytest.raises(DamlError, match=r"datasets\.roots\.celebdf: folder .*nowhere"):
        config.validate(shipped, schema_path)


def test_existing_root_is_accepted(shipped, schema_path, tmp_path):
    shipped["datasets"]["roots"]["celebdf"] = str(tmp_path)
    config.validate(shipped, schema_path)


def test_table_row_must_name_a_defined_source(shipped, schema_path):
    shipped["tables"]["table1"][0]["source"] = "ffpp-c99"
    with pytest.raises(DamlError, match=r"tables\.table1\[0\]\.source: 'ffpp-c99'"):
        config.validate(shipped, schema_path)


def test_techniques_only_on_ffpp(shipped, schema_path):
    shipped["targets"]["celebdf"]["techniques"] = ["Deepfakes"]
    with pytest.raises(DamlError, match="targets.celebdf.techniques"):
        config.validate(shipped, schema_path)


def test_settings_from_reports_drift():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class S:
        a: int
        b: int

    assert config.settings_from(S, {"a": 1, "b": 2}, "x") == S(1, 2)
    with pytest.raises(DamlError, match=r"missing \['b'\], unknown \['c'\]"):
        config.settings_from(S, {"a": 1, "c": 2}, "x")


def test_paper_preset_restores_schema_defaults(repo, shipped, schema_path):
    """The preset only undoes config.yaml's embedded-benchmark shrinking: one place per fact."""
    preset = yaml.safe_load((repo / "workflow/presets/paper.yaml").read_text())
    defaults = config.schema_defaults(schema_path)

    def walk(node, default, path):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, default[key], f"{path}{key}.")
            else:
                assert value == default[key], f"{path}{key}: preset {value!r}, schema default {default[key]!r}"

    walk(preset, defaults, "")
    merged = copy.deepcopy(shipped)
    for section, values in preset.items():
        merged[section] = {**merged[section], **values} if isinstance(values, dict) else values
    config.validate(merged, schema_path)


def test_schema_spells_the_ffpp_techniques_of_the_reader(schema_path):
    from daml.data import ffpp

    schema = config.load_schema(schema_path)
    assert tuple(schema["definitions"]["technique_list"]["items"]["enum"]) == ffpp.TECHNIQUES


def test_config_files_merge_key_by_key_as_snakemake_does(repo, schema_path):
    cfg = config.load_config_files([repo / "config.yaml", repo / "workflow/presets/paper.yaml"],
                                   schema_path)
    assert cfg["train"]["iterations"] == 3000 and cfg["train"]["image_size"] == 84  # the preset
    assert cfg["adapt"]["shots"] == 10 and cfg["seeds"] == [0, 1, 2]
    assert cfg["synthetic"]["ffpp_pairs"] == [6, 2, 10]  # config.yaml's, the preset says nothing
