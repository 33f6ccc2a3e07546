"""Mosaics: seamlines and the blended mosaic of normalized images."""
