"""Toy world: procedural scenes with ground truth (docs/toyworld.md).

sdf.py primitives · scene.py vocabulary, scene tree, captions, parser · render.py GT sphere tracer ·
dataset.py shards of GT views · judge.py the attribute CNN · metrics.py judge score, R-precision, Janus,
mesh IoU / Chamfer, KID · cli.py `real3d toyworld ...`
"""
