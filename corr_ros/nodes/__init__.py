"""Executables: one module per node, each with main()."""
