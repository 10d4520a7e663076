"""The TinyML service: the compilers behind one authenticated HTTP API.

``tinyml serve`` runs :func:`app.create_app` on uvicorn with a SQLite
database and a content-addressed artifact store under ``--data``, and an
in-process pool of compile workers (each compile in a child process with a
time and memory limit). The modules, bottom up:

* :mod:`.config` - settings from flags, environment and a TOML file;
* :mod:`.db` - SQLAlchemy models (projects, tokens, builds, compilations)
  and the Alembic migrations under ``migrations/``;
* :mod:`.store` - the content-addressed artifact store (sha256, atomic writes);
* :mod:`.auth` - bearer tokens (only hashes stored) and scopes;
* :mod:`.uploads`, :mod:`.inputs` - checks of untrusted uploads (names, sizes,
  archives) and of the other form fields;
* :mod:`.jobs` - :func:`~.jobs.run_limited` (one call in a child process with a
  time and memory limit), the job runner interface and the thread pool;
* :mod:`.tasks` - what runs in that child (check, compile, compare, pack);
* :mod:`.core` - the :class:`~.core.Service`: builds by content key, a build's steps;
* :mod:`.app`, :mod:`.compilations`, :mod:`.catalog`, :mod:`.deps`, :mod:`.schemas`,
  :mod:`.metrics` - the HTTP API; :mod:`.apidoc` - its table in docs/service.md.

Its client (``tinyml remote``, and the build integrations that compile
through a service) is :mod:`platformio_tinyml.integrations.remote`, a layer
below, so the PlatformIO and SCons front ends can use it.
"""
