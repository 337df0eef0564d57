"""Human coding for the validation studies.

- :mod:`connote.coding.pairs`: RQ1. Draw random image pairs, give coders a sheet to rate them (blind to
  the clusters) for denotative and connotative similarity, import the ratings, and score every clustering
  run with them (Krippendorff's alpha between coders, Grimmer & King quality, pair-counting F1).

The metrics themselves are pure functions in :mod:`connote.evaluate`; this package is the I/O around them.
"""
