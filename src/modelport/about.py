"""The package version (a leaf module, importable from every layer)."""

VERSION = "0.1.0"
