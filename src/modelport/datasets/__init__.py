"""Datasets: uploaded CSV or Parquet files, versioned and content-addressed, with their
schema (column names, types, missing counts) and row count."""

from modelport.datasets.catalog import DatasetCatalog, parse_dataset_reference
from modelport.datasets.files import DatasetProfile, detect_format, profile_file

__all__ = [
    "DatasetCatalog",
    "DatasetProfile",
    "detect_format",
    "parse_dataset_reference",
    "profile_file",
]
