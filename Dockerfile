# Image of the "Chat Persona Simulator" container action (action.yml: runs.using docker).
# Official slim Debian-based Python, pinned to a minor version; every dependency comes from the
# hashed lock below as a prebuilt wheel (amd64 and arm64), so no compiler or apt package is needed.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Only the build uses /app: at run time the runner mounts the workspace at /github/workspace and
# makes it the working directory, so the entrypoint below is an absolute path.
WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when the lock changes, never for a source edit.
COPY requirements/action.lock requirements/action.lock
RUN pip install --require-hashes --no-deps -r requirements/action.lock

# The source itself, run in place from /app (the entrypoint's folder is first on sys.path): no
# build step, so nothing unpinned enters the image and every build of a tag is the same.
COPY simulator/ simulator/
COPY personas/ personas/
COPY entrypoint.py ./
# Compiled at build time: with PYTHONDONTWRITEBYTECODE nothing is cached at run time, so every run
# of the action would compile the package again (about 50 ms of its start). unchecked-hash: the
# files are never edited in the image, so their timestamps need not be checked.
RUN python -m compileall -q --invalidation-mode unchecked-hash simulator entrypoint.py

# No USER instruction on purpose: GitHub runs Docker actions as the default Docker user (root);
# with another user the action could not write to the mounted GITHUB_WORKSPACE, GITHUB_OUTPUT or
# GITHUB_STEP_SUMMARY (see GitHub's "Dockerfile support for GitHub Actions", USER).
ENTRYPOINT ["python", "/app/entrypoint.py"]
