"""Presentation: the lawyer's report (HTML, PDF, translations, fonts) and plots."""
