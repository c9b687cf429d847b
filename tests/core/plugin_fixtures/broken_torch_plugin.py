"""Stands in for an installed ``blazerpc-torch`` whose framework cannot be imported."""

raise ImportError("libtorch_cpu.so: cannot open shared object file")
