"""Timing every helper against its physical limit, the libraries people use instead, and the notes' loops."""
