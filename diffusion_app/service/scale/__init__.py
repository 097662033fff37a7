"""Serving beyond one machine: generation on Ray Serve replicas (ray_serving.py) and the Ray cluster connection
(ray_cluster.py). Ray is an optional install, imported only when DS_RAY is set. Studio.start is the seam: the
Studio never imports this package; startup.py hands a Studio its Ray backend."""
