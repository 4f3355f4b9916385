"""The DataPlane: resolve a reference, load the version once, batch, predict."""
