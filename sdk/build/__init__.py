"""``berth build`` and ``berth commit``: Dockerfiles, contexts, the step cache, commits."""
