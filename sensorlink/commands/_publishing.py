"""``--publish`` for the commands that run sensors (run, demo): a Janus VideoRoom or any WHIP
endpoint. The WHIP token comes from ``[whip] token`` or the environment, never the command line
(command lines are visible to every user of the machine)."""

from __future__ import annotations

import argparse
import os

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
             f"the path). A WHIP Bearer token comes from ${TOKEN_ENV} or [whip] token")
    parser.add_argument("--publish-audio", metavar="MIC|none",
                        help="the microphone each WHIP session carries (default: the first)")


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
    # The environment wins over [whip] token: a deployment keeps the key out of the file.
    whip = WhipConfig(url=whip.url, token=os.environ.get(TOKEN_ENV) or whip.token,
                      audio=args.publish_audio or whip.audio)
    from sensorlink.webrtc.whip import WhipPublisher

    service.exporters.append(WhipPublisher(service, whip))
