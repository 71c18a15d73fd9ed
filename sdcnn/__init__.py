"""sdcnn: Stable Diffusion images, preprocessed and classified by a small CNN.

The logic of the Snakemake workflow lives in this package; the scripts under
``scripts/`` only unpack Snakemake's job object and call into it.  Keep this file
free of imports: every step imports it, and the workflow re-runs a step when a
module the step imports changes.
"""

__version__ = "0.1.0"
