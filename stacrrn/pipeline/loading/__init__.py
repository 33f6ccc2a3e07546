"""Loading: STAC items read lazily through odc-stac into a masked plan."""
