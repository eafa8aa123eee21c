"""The workflow's one configuration: schema validation with defaults, and cross-checks.

`workflow/rules/common.smk` calls `validate` once when the workflow is parsed; nothing writes to
the config afterwards. Stage code receives its section as a frozen settings dataclass built with
`settings_from`, whose field names are the schema's keys (defaults live in the schema only).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Sequence, TypeVar

import jsonschema
import yaml

from daml.errors import DamlError
from daml.methods import method_specs

DATASETS = ("ffpp", "celebdf", "dfdc", "wilddeepfake")
FACESETS = {  # faceset -> (dataset, compression or None)
    "ffpp-c23": ("ffpp", "c23"),
    "ffpp-c40": ("ffpp", "c40"),
    "celebdf": ("celebdf", None),
    "dfdc": ("dfdc", None),
    "wilddeepfake": ("wilddeepfake", None),
}


def faceset_compression(faceset: str) -> str:
    """The `compression` of the face set's rows in its dataset's manifest ("none": one quality)."""
    return FACESETS[faceset][1] or "none"


T = TypeVar("T")


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that validation fills in each property's default."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def validate(config: dict, schema_path: str | Path) -> dict:
    """Validate `config` against the schema, fill in defaults and cross-check references.

    Arguments:
        config: the parsed config (modified in place: defaults are filled in, and each
            table row without `shots` gets `adapt.shots`).
        schema_path: workflow/schemas/config.schema.yaml.

    Returns:
        The same dict, for convenience.

    Raises:
        DamlError naming the offending key (as a dotted path) and what is wrong with it.
    """
    schema = load_schema(schema_path)
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"- {_key(e)}: {_explain(e)}" for e in errors[:20]]
        raise DamlError(
            f"config does not match {schema_path}:\n" + "\n".join(lines)
            + "\nFix these keys in config.yaml (or the --configfile you passed)."
        )
    cross_check(config)
    for entries in config["tables"].values():
        for entry in entries:  # a row without its own shots takes the meta-test default
            if entry["shots"] is None:
                entry["shots"] = config["adapt"]["shots"]
    return config


def load_config_files(paths: Sequence[str | Path], schema_path: str | Path) -> dict:
    """Read config files in order, later keys overriding earlier ones key by key as
    Snakemake's `--configfile` does, and `validate` the result (benchmarks use it)."""
    config: dict = {}
    for path in paths:
        with open(path) as handle:
            _merge(config, yaml.safe_load(handle) or {})
    return validate(config, schema_path)


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f" (known keys: {', '.join(allowed)})" if allowed else ""
        return f"{error.message}{hint}"
    return error.message


def cross_check(config: dict) -> None:
    """Checks a JSON schema cannot express: existing roots, references between sections."""
    for dataset, root in config["datasets"]["roots"].items():
        if root is not None and not Path(root).is_dir():
            raise DamlError(
                f"datasets.roots.{dataset}: folder {root!r} does not exist. "
                f"Set it to the {dataset} root in its official layout, or to null for the embedded benchmark."
            )
    for dataset, entry in config["datasets"]["deepfakebench"].items():
        if entry is not None:
            _check_deepfakebench(dataset, entry, config["datasets"]["roots"][dataset])
    workdir = config["export_deepfakebench"]["workdir"]
    if workdir is not None and not Path(workdir).is_dir():
        raise DamlError(f"export_deepfakebench.workdir: folder {workdir!r} does not exist; set "
                        "it to the folder DeepfakeBench runs from, or to null for this "
                        "workflow's folder.")
    for kind in ("sources", "targets"):
        for name, domain in config[kind].items():
            if domain["techniques"] is not None and not domain["faceset"].startswith("ffpp"):
                raise DamlError(
                    f"{kind}.{name}.techniques: techniques can only be chosen on FF++ face sets, "
                    f"not on {domain['faceset']!r}; remove the key."
                )
    for table, entries in config["tables"].items():
        for i, entry in enumerate(entries):
            for kind, key in (("sources", "source"), ("targets", "target")):
                if entry[key] not in config[kind]:
                    raise DamlError(
                        f"tables.{table}[{i}].{key}: {entry[key]!r} is not defined under `{kind}` "
                        f"(defined: {', '.join(sorted(config[kind])) or 'none'})."
                    )
    method_specs(config)  # every method resolves to an algorithm and a backbone
    figures = config["figures"]
    for key in ("curves_source", "shots_source"):
        if figures[key] not in config["sources"]:
            raise DamlError(f"figures.{key}: {figures[key]!r} is not defined under `sources`.")
    for target in figures["shots_targets"]:
        if target not in config["targets"]:
            raise DamlError(f"figures.shots_targets: {target!r} is not defined under `targets`.")


def _check_deepfakebench(dataset: str, entry: dict, root: str | None) -> None:
    key = f"datasets.deepfakebench.{dataset}"
    if root is not None:
        raise DamlError(f"{key} and datasets.roots.{dataset} are both set: a dataset comes either "
                        "in its official layout or preprocessed by DeepfakeBench; set one to null.")
    checks = (("root", Path.is_dir, "folder", "the folder DeepfakeBench calls rgb_dir"),
              ("json", Path.is_file, "file", "the dataset JSON DeepfakeBench's rearrange.py wrote"),
              ("workdir", Path.is_dir, "folder", "the folder DeepfakeBench runs from, or null"))
    for name, exists, kind, what in checks:
        value = entry.get(name)
        if value is not None and not exists(Path(value).expanduser()):
            raise DamlError(f"{key}.{name}: {kind} {value!r} does not exist. Set it to {what}.")


def deepfakebench_inputs(config: dict) -> dict[str, dict]:
    """The datasets given as DeepfakeBench inputs: dataset -> {root, json, workdir}."""
    return {d: e for d, e in config["datasets"]["deepfakebench"].items() if e is not None}


def settings_from(cls: type[T], section: dict[str, Any], where: str) -> T:
    """Build the settings dataclass `cls` from a validated config section.

    Raises DamlError naming `where` (the config section) if keys are missing or unknown, which
    means the schema and the dataclass have drifted apart.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    missing, unknown = names - set(section), set(section) - names
    if missing or unknown:
        raise DamlError(
            f"config section {where!r} does not fit {cls.__name__}: "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    return cls(**section)


def schema_defaults(schema_path: str | Path) -> dict:
    """The complete default config (an empty config validated); used by tests and docs."""
    config: dict = {}
    errors = list(_Validator(load_schema(schema_path)).iter_errors(config))
    if errors:
        raise DamlError(f"the schema's defaults do not validate: {errors[0].message}")
    return config
