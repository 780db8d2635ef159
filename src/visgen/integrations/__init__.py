"""Bridges to other libraries (optional extras): :mod:`visgen.integrations.diffusers`."""
