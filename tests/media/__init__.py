"""Test media (generated with ffmpeg at test time) and the fault-injecting media server."""
