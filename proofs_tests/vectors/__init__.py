"""Golden vectors: `vaespec vectors export` and `vaespec vectors verify`, their special cases and
the manifest's JSON Schema."""
