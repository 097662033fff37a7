"""Background training jobs: the manager the Training tab talks to (manager.py), their options, queue (store.py),
folders, progress, trainer processes (local or on Ray), uploads, base models and pushes to the Hub. Jobs run
training/ in another process; this package may import models/ and the top-level service modules, never
generation/."""
