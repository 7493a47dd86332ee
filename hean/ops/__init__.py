"""The operator's commands against a running HEAN system (local `hean up` or systemd)."""
