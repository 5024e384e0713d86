"""This project's Lava processes: ``network.LavaNetwork`` (a .net file as one hierarchical process),
the processes Lava lacks (``process``: MT neuron, accumulator, host static current, delay line; host
I/O) and their fixed_pt Python models (``models``).

This package must stay free of side effects on import: Lava's compiler imports (and even
re-executes, under bare module names) every ``.py`` file in the directory of a process class
each time it compiles. So: no code here, absolute imports only in the modules.
"""
