"""The ``msseg`` command."""
