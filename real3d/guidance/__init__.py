"""Guidance from the prior: SDS (Eq. 2), positional prompt embedding, the reference images x̃ (and Eq. 4's D)."""
