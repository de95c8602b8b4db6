"""Importers: map public datasets onto the landing layout (DESIGN §4) so that the same
ingestion, assets and checks run on real data.

    python -m ml.importers.kuailive_m3 --src DIR --out LIVECROSS_HOME
"""
