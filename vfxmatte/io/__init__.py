"""Frame I/O: sequences, EXR and stills (OpenImageIO), movies (PyAV), colour (OpenColorIO)."""
