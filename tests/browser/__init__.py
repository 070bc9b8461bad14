"""Support for tests/test_browser.py: which cells an explorer needs, and JupyterLab driven by Chromium."""
