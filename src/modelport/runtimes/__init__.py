"""Runtimes: code that recognises, loads and runs one model format."""
