"""Renderers of the field θ: implicit NeRF (Eq. 5–8) and explicit DMTet + rasterizer (Eq. 9–10), and shading."""
