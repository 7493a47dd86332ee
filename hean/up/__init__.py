"""`hean up`: the local supervisor of every process, its simulator and its terminal view."""
