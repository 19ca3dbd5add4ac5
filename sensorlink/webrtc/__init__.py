"""The WebRTC sink: a peer connection per viewer (video per camera, audio per microphone beam,
the readings / frames / control / status data channels), the signaling and dashboard server,
the Janus publisher, and the client side (the headless viewer and what it receives).
"""
