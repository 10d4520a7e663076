# platformio-tinyml: compile the custom_tinyml_* models of this env (docs/platformio.md).
Import("env")
from platformio_tinyml.integrations.platformio.build import attach
attach(env)
