"""``berth login`` and ``berth logout``: check credentials with the registry, then keep them
where the docker CLI keeps them (see :mod:`.credentials`)."""

from __future__ import annotations

from berth.errors import RegistryAuthError, UsageError
from berth.oci.reference import DEFAULT_DOMAIN
from berth.registry.client.credentials import Credentials, CredentialStore, hostname_of, server_key
from berth.registry.client.hosts import Location, RegistryHosts
from berth.registry.client.options import ClientOptions
from berth.registry.client.session import Context, RegistrySession

LOGIN_SUCCEEDED = "Login Succeeded"


def registry_name(server: str | None) -> str:
    """What the user typed (``https://index.docker.io/v1/``, ``localhost:5000``, nothing) as
    a registry name (``docker.io``, ``localhost:5000``)."""
    if not server:
        return DEFAULT_DOMAIN
    host = hostname_of(server.strip())
    if server_key(host) == server_key(DEFAULT_DOMAIN):
        return DEFAULT_DOMAIN
    return host


def login(
    server: str | None,
    username: str,
    password: str,
    *,
    options: ClientOptions | None = None,
) -> str:
    """Verify ``username``/``password`` with the registry (``/v2/`` and the Basic or token
    flow it asks for), store them, and return "Login Succeeded"."""
    if not username:
        raise UsageError("Username is required", hint="give it with -u/--username")
    if not password:
        raise UsageError("Password is required", hint="give it with -p or --password-stdin")
    options = options or ClientOptions()
    registry = registry_name(server)
    verify_credentials(registry, Credentials(username, password), options)
    CredentialStore(options.docker_config).store(registry, Credentials(username, password))
    return LOGIN_SUCCEEDED


def verify_credentials(registry: str, credentials: Credentials, options: ClientOptions) -> None:
    hosts = RegistryHosts.load(options)
    endpoint = hosts.registry_endpoint(registry)
    location = Location(endpoint, "", registry)
    with RegistrySession(
        location,
        options=options,
        hosts=hosts,
        credentials=credentials,
        context=Context("logging in to", endpoint.host),
        connections=1,
    ) as session:
        session.open()  # a bearer challenge fetches a token with the credentials here
        response = session.request("GET", f"{session.scheme}://{session.host}/v2/", what="login")
        if response.status_code != 200:  # pragma: no cover - request() raises for others
            raise RegistryAuthError(f"login to {endpoint.host} failed")


def logout(server: str | None = None, *, options: ClientOptions | None = None) -> str:
    """Forget the stored credentials of ``server`` (Docker Hub by default)."""
    options = options or ClientOptions()
    registry = registry_name(server)
    key = server_key(registry)
    if CredentialStore(options.docker_config).erase(registry):
        return f"Removing login credentials for {key}"
    return f"Not logged in to {key}"
