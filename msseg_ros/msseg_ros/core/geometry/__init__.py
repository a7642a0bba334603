"""Camera model, ray-plane intersection, poses and the belt-position buffer."""
