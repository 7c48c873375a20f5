"""Scripted multi-persona simulations on a virtual clock, on the actors the server runs."""
