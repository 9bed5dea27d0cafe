"""Command-line tools of LPS-HAR (run as python tools/NAME.py)."""
