"""The floor every layer may import: records, the failure and verdict vocabularies, time, errors."""
