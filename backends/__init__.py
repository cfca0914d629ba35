"""Backends: each turns the lowered IR into files for one target framework."""
