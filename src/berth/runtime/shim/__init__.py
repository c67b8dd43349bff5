"""The exec shim (see exec_shim.c) and the script that builds it (build.py)."""
