"""Spectral analysis of checkpoints (``raysweep spectral``): do singular values stay while singular vectors
rotate, does the rotation track OOD accuracy, and does restoring a reference's singular directions
restore what it could do?

- :mod:`maths` (pure): SVDs, principal angles, update energy outside a subspace, the edits, Spearman.
- :mod:`weights`: the analysed matrices of a checkpoint, read by name from safetensors.
- :mod:`engine`: groups of matrices as Ray tasks (or in this process).
- :mod:`analysis`: pairs of checkpoints -> one row per (pair, matrix), cached; summaries.
- :mod:`sources`: which pairs (named, a trunk, a sweep); :mod:`report`: tables, figures, correlations,
  MLflow; :mod:`edits`: edited checkpoints, evaluated; :mod:`figures`.
"""
