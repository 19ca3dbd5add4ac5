// What the werift peers of the tests share: a peer connection that offers or takes VP8 and Opus
// on loopback IPv4 only (what sensorlink sends), and a wait for its ICE gathering to finish
// (neither side trickles).
import { RTCPeerConnection, RTCRtpCodecParameters } from "werift";

export const newPeer = () => new RTCPeerConnection({
  iceAdditionalHostAddresses: ["127.0.0.1"], iceUseIpv6: false, iceTcpPassive: false,
  codecs: {
    video: [new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000,
      rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }] })],
    audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
  },
});

export const gathered = (pc) => new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") return resolve();
  pc.iceGatheringStateChange.subscribe((state) => state === "complete" && resolve());
});
