"""Copying Gold tables from the lake into the serving database (the sync protocol)."""
