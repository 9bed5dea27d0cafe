"""Configuration, logging, errors and small helpers shared by every part of the project."""
