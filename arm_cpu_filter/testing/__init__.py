"""Test and measurement harness: fuzzers, speed probes, the Nova sandbox, scenario and soak.

It ships with the package so ``arm-cpu-filter fuzz|bench|soak|demo`` work on an installed host, but
no product module imports it: the Nova scheduler loading the plugin never loads any of this.
"""
