"""``--publish`` for the commands that run sensors (run, demo): a Janus VideoRoom or any WHIP
endpoint. The WHIP token comes from ``[whip] token`` or the environment, never the command line
(command lines are visible to every user of the machine)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sensorlink.config_whip import WhipConfig
from sensorlink.errors import ConfigError
from sensorlink.service import Service
from sensorlink.webrtc.ice import is_loopback

TOKEN_ENV = "SENSORLINK_WHIP_TOKEN"


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--publish", metavar="URL",
        help="also publish: janus://HOST[:PORT]/ROOM (a Janus VideoRoom: video, audio and "
             "data), or whip://HOST[:PORT]/PATH, whips://..., http(s)://... (any WHIP endpoint: "
             "one session per camera with a microphone; with several cameras put {sensor} in "
             f"the path). A WHIP Bearer token comes from --publish-token-file, ${TOKEN_ENV} or "
             "[whip] token")
    parser.add_argument("--publish-token-file", metavar="FILE",
                        help="the WHIP Bearer token (stream key), read from FILE (wins over "
                             f"${TOKEN_ENV} and [whip] token)")
    parser.add_argument("--publish-audio", metavar="MIC|none",
                        help="the microphone each WHIP session carries (default: the first)")


def read_token(path: str) -> str:
    """The first line of ``path``, the way secrets are mounted (Docker, systemd credentials)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                          field="publish-token-file") from exc
    token = text.splitlines()[0].strip() if text else ""
    if not token:
        raise ConfigError(f"{path} holds no token", field="publish-token-file")
    return token


def add_publishers(service: Service, args: argparse.Namespace,
                   whip: WhipConfig | None = None) -> None:
    """Append the publisher ``--publish`` (or the config's ``[whip]``) asks for to the
    service's exporters."""
    url = args.publish
    if url and url.startswith("janus://"):
        from sensorlink.webrtc.janus import JanusPublisher

        if is_loopback(service.settings.host):
            # A loopback service offers only 127.0.0.1 to ICE, and Janus never pairs with it.
            raise ConfigError("publishing to Janus needs a service that listens on an address "
                              "Janus can reach (--listen HOST:PORT), not loopback",
                              field="publish")
        service.exporters.append(JanusPublisher(service, url))
        return
    if url:
        whip = WhipConfig(url=url, token=whip.token if whip else None,
                          audio=whip.audio if whip else None)
    if whip is None:
        return
    # A token file or the environment wins over [whip] token: the key stays out of the config.
    token = read_token(args.publish_token_file) if args.publish_token_file else None
    whip = WhipConfig(url=whip.url, token=token or os.environ.get(TOKEN_ENV) or whip.token,
                      audio=args.publish_audio or whip.audio)
    from sensorlink.webrtc.whip import WhipPublisher

    service.exporters.append(WhipPublisher(service, whip))
