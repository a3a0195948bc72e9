"""real3d"""
