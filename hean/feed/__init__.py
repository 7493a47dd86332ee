"""The feed process: Bybit public WS -> lossy `tick.*` events."""
