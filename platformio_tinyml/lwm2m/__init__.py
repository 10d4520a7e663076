"""LwM2M: the server side (registration, device management, deployments) and the
device side (the state machines of objects 5 and 9, the device agent)."""
