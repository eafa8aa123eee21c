"""Write the embedded synthetic stand-in of one dataset in its official layout."""

from pathlib import Path

from daml import config, logs
from daml.data import synthetic

with logs.to_file(snakemake.log[0]):
    synthetic.generate(
        snakemake.wildcards.dataset,
        Path(snakemake.output.root),
        config.settings_from(synthetic.SyntheticSettings, snakemake.params.settings, "synthetic"),
    )
