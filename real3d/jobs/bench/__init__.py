"""`real3d bench`: the paper's claims as reproducible numbers — quality on toy-world ground truth
(quality.py: Tab. 2, Fig. 4, Fig. 6) and speed per component against its FLOP bound (speed.py)."""
