"""Generated from inference.proto by `make proto`; never edit the generated modules by hand."""
