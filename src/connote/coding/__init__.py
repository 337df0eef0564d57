"""Human coding for the validation studies.

- :mod:`connote.coding.pairs`: RQ1. Draw random image pairs, give coders a sheet to rate them (blind to
  the clusters) for denotative and connotative similarity, import the ratings, and score every clustering
  run with them (Krippendorff's alpha between coders, Grimmer & King quality, pair-counting F1).
- :mod:`connote.coding.sets`: RQ2. Draw image sets per cluster of a run, give evaluators a sheet to match
  each set to a cluster's description (keywords or labels), import their answers, and score them (Cohen's
  kappa, majority label, per-cluster precision/recall, accuracy, with near-twin clusters merged).
- :mod:`connote.coding.files`: what both share: a sample's folder and name rule, reading a coder's CSV,
  keeping each imported file with the study, writing the coding pages and tables.

The metrics themselves are pure functions in :mod:`connote.evaluate`; this package is the I/O around them.
"""
