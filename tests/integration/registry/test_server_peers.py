"""berth's registry against clients nobody here wrote: skopeo and the oras Python package.

Images go in and out with skopeo (plain HTTP, TLS with a verified self-signed certificate,
htpasswd basic auth, bearer tokens from berth's own token endpoint) and come back with the same
digests; oras pushes artifacts with a subject, chunked, and the referrers API lists them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.registry_server import (
    Layout,
    ProcessServer,
    busybox_layer,
    file_layer,
    skopeo,
    write_layout,
)

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    path = tmp_path_factory.mktemp("berth-layout") / "image"
    return write_layout(str(path), "v1", [busybox_layer(), file_layer("etc/motd", b"hi\n" * 999)])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ProcessServer]:
    with ProcessServer(str(tmp_path / "berth-registry")) as srv:
        yield srv


def layout_manifest_digest(path: str) -> str:
    with open(os.path.join(path, "index.json"), encoding="utf-8") as f:
        return str(json.load(f)["manifests"][0]["digest"])


def test_skopeo_copy_in_and_out_keeps_digests(
    server: ProcessServer, layout: Layout, tmp_path: Path
) -> None:
    dest = f"docker://{server.host}/berth/busybox:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1", dest)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", dest).stdout
    assert raw.encode() == layout.manifest
    info = json.loads(skopeo("inspect", "--tls-verify=false", dest).stdout)
    assert info["Digest"] == layout.manifest_digest
    assert info["Layers"] == layout.layer_digests
    out = tmp_path / "berth-out"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{out}:v1")
    assert layout_manifest_digest(str(out)) == layout.manifest_digest
    for digest in [layout.config_digest, *layout.layer_digests]:
        hex_digest = digest.split(":")[1]
        assert (out / "blobs" / "sha256" / hex_digest).read_bytes() == (
            Path(layout.path) / "blobs" / "sha256" / hex_digest).read_bytes()
    # by digest too
    by_digest = f"docker://{server.host}/berth/busybox@{layout.manifest_digest}"
    skopeo("copy", "--src-tls-verify=false", by_digest, f"oci:{tmp_path / 'berth-d'}:x")


def test_skopeo_list_tags_and_delete(server: ProcessServer, layout: Layout) -> None:
    for tag in ("v1", "v2", "latest"):
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1",
               f"docker://{server.host}/berth/tags:{tag}")
    listed = json.loads(skopeo("list-tags", "--tls-verify=false",
                               f"docker://{server.host}/berth/tags").stdout)
    assert listed["Tags"] == ["latest", "v1", "v2"]
    skopeo("delete", "--tls-verify=false", f"docker://{server.host}/berth/tags:v2")
    listed = json.loads(skopeo("list-tags", "--tls-verify=false",
                               f"docker://{server.host}/berth/tags").stdout)
    assert listed["Tags"] == []  # skopeo deletes the manifest, and with it every tag


def test_skopeo_second_push_to_another_repository_mounts(
    server: ProcessServer, layout: Layout
) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1",
           f"docker://{server.host}/berth/one:v1")
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{server.host}/berth/one:v1", f"docker://{server.host}/berth/two:v1")
    assert "mount=" in server.log()
    r = httpx.get(f"{server.url}/v2/berth/two/blobs/{layout.layer_digests[0]}")
    assert r.status_code == 200


def make_cert(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_tls_with_a_verified_certificate(tmp_path: Path, layout: Layout) -> None:
    cert, key = make_cert(tmp_path)
    certs = tmp_path / "berth-certs"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    with ProcessServer(str(tmp_path / "berth-registry"),
                       ["--tls-cert", cert, "--tls-key", key]) as server:
        assert server.url.startswith("https://")
        trust = ssl.create_default_context(cafile=cert)
        assert httpx.get(f"{server.url}/v2/", verify=trust).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v2/")  # not trusted without the certificate
        dest = f"docker://{server.host}/berth/tls:v1"
        skopeo("copy", f"--dest-cert-dir={certs}", f"oci:{layout.path}:v1", dest)
        info = json.loads(skopeo("inspect", f"--cert-dir={certs}", dest).stdout)
        assert info["Digest"] == layout.manifest_digest
        r = httpx.get(f"{server.url}/v2/berth/tls/blobs/{layout.layer_digests[0]}",
                      verify=trust)
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == layout.layer_digests[0]


def htpasswd_file(path: Path, users: dict[str, str]) -> str:
    lines = []
    for user, password in users.items():
        result = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                capture_output=True, text=True)
        lines.append(result.stdout.strip())
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_skopeo_with_htpasswd_basic_auth(tmp_path: Path, layout: Layout) -> None:
    htpasswd = htpasswd_file(tmp_path / "htpasswd", {"alice": "s3cret"})
    with ProcessServer(str(tmp_path / "berth-registry"), ["--htpasswd", htpasswd]) as server:
        dest = f"docker://{server.host}/berth/private:v1"
        with pytest.raises(AssertionError, match=r"(?i)unauthorized|authentication"):
            skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1", dest)
        with pytest.raises(AssertionError):
            skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong",
                   f"oci:{layout.path}:v1", dest)
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret",
               f"oci:{layout.path}:v1", dest)
        info = json.loads(skopeo("inspect", "--tls-verify=false", "--creds", "alice:s3cret",
                                 dest).stdout)
        assert info["Digest"] == layout.manifest_digest
        assert " alice [" in server.log()  # the access log names the user


def test_skopeo_with_bearer_tokens_and_acl(tmp_path: Path, layout: Layout) -> None:
    htpasswd = htpasswd_file(tmp_path / "htpasswd", {"alice": "a-pass", "bob": "b-pass"})
    acl = tmp_path / "acl.yaml"
    acl.write_text(
        "rules:\n"
        "  - {account: alice, repository: '*', actions: ['*']}\n"
        "  - {account: bob, repository: 'bob/*', actions: [pull, push]}\n"
        "  - {account: anonymous, repository: 'public/*', actions: [pull]}\n"
    )
    args = ["--htpasswd", htpasswd, "--acl", str(acl), "--token"]
    with ProcessServer(str(tmp_path / "berth-registry"), args) as server:
        r = httpx.get(f"{server.url}/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{server.url}/token"')
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "bob:b-pass",
               f"oci:{layout.path}:v1", f"docker://{server.host}/bob/app:v1")
        with pytest.raises(AssertionError, match=r"403 \(Forbidden\)"):
            skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "bob:b-pass",
                   f"oci:{layout.path}:v1", f"docker://{server.host}/alice/app:v1")
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:a-pass",
               f"oci:{layout.path}:v1", f"docker://{server.host}/public/app:v1")
        # anonymous pull of a public repository through the token flow
        info = json.loads(skopeo("inspect", "--tls-verify=false", "--no-creds",
                                 f"docker://{server.host}/public/app:v1").stdout)
        assert info["Digest"] == layout.manifest_digest
        with pytest.raises(AssertionError):
            skopeo("inspect", "--tls-verify=false", "--no-creds",
                   f"docker://{server.host}/bob/app:v1")


# -- oras ------------------------------------------------------------------------------------


def test_oras_pushes_and_pulls_artifacts_with_a_subject(
    server: ProcessServer, layout: Layout, tmp_path: Path
) -> None:
    import oras.oci
    import oras.provider

    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1",
           f"docker://{server.host}/berth/app:v1")
    registry = oras.provider.Registry(hostname=server.host, insecure=True)
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": ["busybox"]}))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    config = tmp_path / "config.json"
    config.write_text("{}")
    subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json",
                               digest=layout.manifest_digest, size=len(layout.manifest))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        response = registry.push(
            target=f"{server.host}/berth/app:sbom",
            files=["sbom.json:application/spdx+json", "big.bin"],
            manifest_config="config.json:application/vnd.example.sbom.config",
            manifest_annotations={"org.example.kind": "sbom"},
            subject=subject,
            do_chunked=True,
            chunk_size=1024 * 1024,
        )
        assert response.status_code == 201
        assert response.headers["OCI-Subject"] == layout.manifest_digest
        out = tmp_path / "berth-pulled"
        files = registry.pull(target=f"{server.host}/berth/app:sbom", outdir=str(out))
        assert sorted(os.path.basename(f) for f in files) == ["big.bin", "sbom.json"]
        assert (out / "big.bin").read_bytes() == big.read_bytes()
        assert json.loads((out / "sbom.json").read_text()) == {"packages": ["busybox"]}
    finally:
        os.chdir(cwd)
    r = httpx.get(f"{server.url}/v2/berth/app/referrers/{layout.manifest_digest}")
    manifests = r.json()["manifests"]
    assert len(manifests) == 1
    assert manifests[0]["artifactType"] == "application/vnd.example.sbom.config"
    assert manifests[0]["annotations"]["org.example.kind"] == "sbom"
    r = httpx.get(f"{server.url}/v2/berth/app/referrers/{layout.manifest_digest}",
                  params={"artifactType": "application/vnd.example.other"})
    assert r.json()["manifests"] == []
    assert "PATCH /v2/berth/app/blobs/uploads/" in server.log()  # chunked, as asked
    assert sorted(registry.get_tags(f"{server.host}/berth/app")) == ["sbom", "v1"]


def test_oras_against_basic_auth(tmp_path: Path) -> None:
    import oras.provider

    htpasswd = htpasswd_file(tmp_path / "htpasswd", {"alice": "s3cret"})
    with ProcessServer(str(tmp_path / "berth-registry"), ["--htpasswd", htpasswd]) as server:
        registry = oras.provider.Registry(hostname=server.host, insecure=True,
                                          auth_backend="basic")
        registry.auth.set_basic_auth("alice", "s3cret")
        note = tmp_path / "note.txt"
        note.write_text("hello")
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            assert registry.push(target=f"{server.host}/berth/note:v1",
                                 files=["note.txt"]).status_code == 201
        finally:
            os.chdir(cwd)
        token = base64.b64encode(b"alice:s3cret").decode()
        r = httpx.get(f"{server.url}/v2/berth/note/tags/list",
                      headers={"Authorization": f"Basic {token}"})
        assert r.json()["tags"] == ["v1"]


def test_oras_pulls_through_the_token_flow(tmp_path: Path) -> None:
    """oras-py fetches a bearer token for the scope the challenge names and pulls with it.

    (It pushes with basic auth only: its token cache ignores scope, so after a pull-scoped
    request it keeps sending that token to a push, which a scope-checking registry, berth or
    distribution with a token server, refuses.)
    """
    import oras.provider

    htpasswd = htpasswd_file(tmp_path / "htpasswd", {"alice": "s3cret"})
    plain = ProcessServer(str(tmp_path / "berth-registry"), ["--htpasswd", htpasswd])
    with plain:
        pusher = oras.provider.Registry(hostname=plain.host, insecure=True,
                                        auth_backend="basic")
        pusher.auth.set_basic_auth("alice", "s3cret")
        note = tmp_path / "note.txt"
        note.write_text("through a bearer token")
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            assert pusher.push(target=f"{plain.host}/berth/tokened:v1",
                               files=["note.txt"]).status_code == 201
        finally:
            os.chdir(cwd)
    args = ["--htpasswd", htpasswd, "--token"]
    with ProcessServer(str(tmp_path / "berth-registry"), args) as server:
        registry = oras.provider.Registry(hostname=server.host, insecure=True)
        registry.auth.set_basic_auth("alice", "s3cret")
        out = tmp_path / "berth-out"
        registry.pull(target=f"{server.host}/berth/tokened:v1", outdir=str(out))
        assert (out / "note.txt").read_text() == "through a bearer token"
        assert "GET /token?" in server.log()
        assert sorted(registry.get_tags(f"{server.host}/berth/tokened")) == ["v1"]
