"""Exchange adapters. Only Bybit v5 (USDT linear perpetuals) for now."""
