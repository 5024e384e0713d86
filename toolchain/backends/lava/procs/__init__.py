"""Custom Lava processes of the lava-cpu backend and their fixed_pt Python models.

This package must stay free of side effects on import: Lava's compiler imports (and even
re-executes, under bare module names) every ``.py`` file in the directory of a process class
each time it compiles. So: no code here, absolute imports only in the modules.
"""
