"""corr_core.propagation: CRW label propagation (``crw``: config, dense reference, windowed local
implementation), the context memory and exact top-k search behind it (``memory``), the streaming
``Tracker`` with CRW, MER/MAST long-term + short-term memory (``tracker``), SFC feature fusion
(``fusion``) and timing helpers (``bench``). Import the submodules directly; this module imports
nothing.
"""
