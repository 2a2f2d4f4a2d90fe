"""The version of hubkit (one place: the package, its products' provenance and the build)."""

__version__ = "0.1.0"
