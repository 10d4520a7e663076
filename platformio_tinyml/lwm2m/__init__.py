"""LwM2M: the device management protocol between the service and its devices.

* :mod:`.ids` - object and resource ids as enums, the object definitions (OMA DDF
  files in ``objects/``: 0, 1, 3, 5, 9 and our TinyML object) and :class:`~.ids.ResourcePath`;
* :mod:`.codec` - the content formats (SenML-JSON and -CBOR, TLV, plain text, opaque,
  link format), all decoding to ``{ResourcePath: value}``;
* :mod:`.capabilities` - Device and TinyML object values -> the compilers' ``DeviceProfile``;
* :mod:`.server` - the LwM2M server (registration, device management, Send) on aiocoap,
  run inside ``tinyml serve``; :mod:`.store` keeps its devices in the service's database;
* the device side: :mod:`.sw_update` and :mod:`.fw_update` (objects 9 and 5's state
  machines, no wire) and :mod:`.agent` (``tinyml device-agent``: the LwM2M client).

Nothing here imports the HTTP service; the service imports this package.
"""
