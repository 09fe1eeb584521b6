"""refine: SAM2 mask enhancement and conditional mask fusion for RVOS results."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("refine")
except PackageNotFoundError:  # a source tree on sys.path that was never pip-installed
    __version__ = "0+unknown"
