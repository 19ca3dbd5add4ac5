"""The dashboard server serves its own files and nothing else."""

from __future__ import annotations

import asyncio

import pytest

from sensorlink.webrtc.signaling import resolve_static, static_roots


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET, so paths reach the server exactly as written (no client clean-up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_dashboard_and_schemas_are_served_with_safe_headers(still_service) -> None:
    port = still_service.bound[1]
    status, headers, body = await http_get(port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in headers["content-security-policy"]
    status, headers, body = await http_get(port, "/schemas/control.schema.json")
    assert status == 200 and b'"control' in body


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/..%2fpyproject.toml", "/%2e%2e/%2e%2e/etc/passwd", "/schemas/../../etc/passwd",
    "/etc/passwd", "//etc/passwd", "/__init__.py", "/%00index.html", "/.hidden", "/schemas/__init__.py",
    "/..\\..\\etc\\passwd", "/schemas/", "/nonexistent.js",
])
async def test_paths_outside_the_dashboard_are_not_found(still_service, path: str) -> None:
    status, _, body = await http_get(still_service.bound[1], path)
    assert status == 404, (path, body[:80])
    assert b"root:" not in body


def test_resolve_static_stays_inside_its_roots(tmp_path) -> None:
    roots = static_roots()
    assert resolve_static("/index.html", roots) is not None or not (roots["/"] / "index.html").exists()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    link = roots["/"] / "link-to-secret.txt"
    link.symlink_to(outside)
    try:
        assert resolve_static("/link-to-secret.txt", roots) is None
    finally:
        link.unlink()
