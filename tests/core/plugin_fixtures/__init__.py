"""Sources of fake third-party plugins: tests copy them into a directory laid out like an
installed distribution (``<package>/`` plus ``<name>-<version>.dist-info/``) and put it on
``PYTHONPATH`` of a ``blaze`` subprocess, so entry-point discovery runs for real."""
