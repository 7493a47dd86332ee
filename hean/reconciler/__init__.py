"""The reconciler process: private WS + REST catch-up -> fills (exactly once per execId), positions, equity."""
