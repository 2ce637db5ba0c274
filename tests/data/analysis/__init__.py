"""Recorded answers for the analysis tests, and the script that records them (record.py)."""
