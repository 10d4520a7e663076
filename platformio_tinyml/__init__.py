"""platformio-tinyml: trained models compiled into verified, allocation-free C
for the microcontroller being built.

Layers, imports flowing one way: ``device`` -> ``model`` -> ``ir`` ->
``compilers`` -> ``memory`` -> ``integrations`` -> ``cli``.
"""

__version__ = "0.1.0"
