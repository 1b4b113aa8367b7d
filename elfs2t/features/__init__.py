"""Whisper front end (frozen encoder) and the stage-2 feature cache."""
