"""The static site (issue 15) in headless Chromium: see conftest.py. A package, so that its
conftest is ``browser.conftest`` and never shadows ``tests/conftest.py`` (``conftest``)."""
