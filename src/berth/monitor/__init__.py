"""berth.monitor: the store's supervisor of detached containers (see docs/supervisor.md).

- :mod:`.client`      how commands talk to it (``SupervisorClient``), starting it on demand
- :mod:`.spawn`       starting exactly one supervisor per store, under its anchor
- :mod:`.supervisor`  the supervisor: lifecycle, exits, restarts, recovery, boot, idle exit
- :mod:`.anchor`      the C anchor (subreaper, keeper of fds and exit statuses) and its build
- :mod:`.anchorlink`  the supervisor's side of its channel to the anchor
- :mod:`.procs`       learning how a process ended (pidfd, waitid, the anchor's records)
- :mod:`.stdio`       containers' FIFOs, stdin and pty
- :mod:`.restart`     restart policies and backoff, Docker's semantics
- :mod:`.health`      healthcheck rules; :mod:`.probes` runs them
- :mod:`.session`     attached clients; :mod:`.attach` the client's terminal side
- :mod:`.protocol`    the socket protocol; :mod:`.connection` one connection
- :mod:`.loop`        the single-threaded event loop
- :mod:`.backend`     the narrow interface to records and the launcher

``python -m berth.monitor --root ROOT`` runs a supervisor (the anchor starts it so).
"""
