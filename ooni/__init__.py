"""OONI's data formats in one place: reading measurements and fingerprints, writing measurements."""
