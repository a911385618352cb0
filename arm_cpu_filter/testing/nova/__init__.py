"""Nova harness: a real Nova scheduler in a scratch database, the demo scenario, the soak and its probe."""
