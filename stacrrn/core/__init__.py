"""Pure numerical core: moments, models, kernels. Imports no I/O library (no rasterio, no pystac)."""
