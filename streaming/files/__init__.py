"""Sample files: zakotfs HDF5 (``hdf5``), SigMF recordings (``sigmf``) and raw IQ captures
(``raw``), each read in chunks as a sample source (``streaming.io.open_source``)."""
from .base import DEFAULT_CHUNK, MissingConfigError
from .hdf5 import FORMAT_VERSION, IQReader, IQWriter
from .raw import RAW_SUFFIXES, RawIQReader, RawIQWriter
from .sigmf import SigMFReader, SigMFWriter, write_sigmf

__all__ = ["DEFAULT_CHUNK", "FORMAT_VERSION", "MissingConfigError", "IQWriter", "IQReader", "SigMFWriter",
           "SigMFReader", "write_sigmf", "RawIQReader", "RawIQWriter", "RAW_SUFFIXES"]
