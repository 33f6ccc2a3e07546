"""Execution: thread pools, Dask clusters and progress callbacks every pipeline step runs on."""
