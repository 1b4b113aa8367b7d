"""Optimisers (Muon with an auxiliary Adam), learning-rate schedules and the weight EMA."""
