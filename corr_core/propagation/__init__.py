"""corr_core.propagation: CRW label propagation (``crw``), the streaming ``Tracker`` (``tracker``)
and a timing helper (``bench``). Import the submodules directly; this module imports nothing.
"""
