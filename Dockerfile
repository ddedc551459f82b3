# Small runtime image for the bridge. Two processes, as in the Procfile:
#   docker run --env-file .env -v bridge-data:/data -p 8080:8080 bridge   # bridge serve (default)
#   docker run --env-file .env -v bridge-data:/data bridge bridge run     # workers only, no port
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PORT=8080 \
    DATABASE_URL=sqlite:////data/bridge.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install '.[postgres]' \
    && useradd --create-home --uid 10001 bridge \
    && mkdir -p /data \
    && chown bridge:bridge /data

# The SQLite file lives here; mount a volume to keep conversations across restarts. A new
# named volume takes this directory's owner (uid 10001); a bind-mounted host directory
# must be writable by that uid.
VOLUME ["/data"]
# Run from the volume, so a relative DATABASE_URL (sqlite:///bridge.db) is writable too
# and kept, instead of failing in the root-owned /app.
WORKDIR /data
USER bridge
EXPOSE 8080

# Exec form: bridge is PID 1 and receives SIGTERM itself, so it can drain answers.
CMD ["bridge", "serve"]
