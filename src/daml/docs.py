"""Regenerate the generated parts of README.md: `python -m daml.docs` (tests check they are current).

Description:
    The "paper / ours / why" table is written from the config schema's descriptions that start
    with "paper:", so the README cannot drift from what the code does.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from daml import config as daml_config
from daml.io import write_text
from daml.report import choices_table

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- CHOICES-START -->", "<!-- CHOICES-END -->"


def choices_markdown(schema_path: Path) -> str:
    """The choices table as Markdown: key, what the paper says, what we do, why, default."""
    rows = choices_table(daml_config.load_schema(schema_path))
    lines = ["| key | paper | ours | why | default |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [f"`{row['key']}`", row["paper"], row["ours"], row["why"], f"`{row['default']}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def updated_readme(readme: str, table: str) -> str:
    """`readme` with the text between the choices markers replaced by `table`."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        raise ValueError(f"README has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--schema", type=Path, default=REPO / "workflow/schemas/config.schema.yaml")
    args = parser.parse_args()
    write_text(args.readme, updated_readme(args.readme.read_text(), choices_markdown(args.schema)))


if __name__ == "__main__":
    main()
