# cimport-able declarations of _dense.pyx (filled by the dense engine)
