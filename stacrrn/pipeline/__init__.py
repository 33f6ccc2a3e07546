"""Pipeline: composes the core and the I/O layer into passes and the match job."""
