"""Analysis: pure functions from observations to verdicts, events, plots and reports."""
