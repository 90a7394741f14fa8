"""The player SDK in Debian's Chromium with the real players, collector, Kafka and processor."""
