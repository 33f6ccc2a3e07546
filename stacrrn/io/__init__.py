"""I/O layer: rasters, grids and COG writing (rasterio/GDAL)."""
