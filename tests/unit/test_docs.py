from daml import docs


def test_readme_choices_table_is_current(repo, schema_path):
    readme = (repo / "README.md").read_text()
    expected = docs.updated_readme(readme, docs.choices_markdown(schema_path))
    assert readme == expected, "README's choices table is stale: run `python -m daml.docs`"


def test_choices_table_lists_every_paper_silent_key(schema_path):
    table = docs.choices_markdown(schema_path)
    for key in ("frames.per_video", "faces.crop_size", "datasets.val_fraction"):
        assert f"`{key}`" in table
