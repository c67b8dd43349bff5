"""berth.containers: what a container is and how it is set up, started and cleaned up.

- :mod:`.options`   the typed form of ``docker run``/``create`` options
- :mod:`.records`   container records in the store (Docker's Config/HostConfig/State shapes)
- :mod:`.create`    options -> a new container record, its dirs and volumes
- :mod:`.spec`      a container record -> an OCI runtime spec (``config.json``)
- :mod:`.users`     ``user[:group]`` resolved through the container's own /etc/passwd
- :mod:`.volumes`   named and anonymous volumes, seeded from the image
- :mod:`.runtimes`  berth's own runtime in-process, or runc/crun/a path by their CLI
- :mod:`.launcher`  start (mount, bundle, runtime create+start), stop, kill, finish
- :mod:`.logs`      the json-file log: writer with rotation, reader (tail/since/follow)
- :mod:`.names`     docker-style random names

The engine (``berth.engine.containers``) is the facade over these; the supervisor
(``berth.monitor``) uses the launcher to run detached containers.
"""
