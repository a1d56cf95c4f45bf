# s2seasons tile server. Installs the package exactly as the README does (a venv, pip install -e .)
# and serves the seasons built into /data (mount it) on port 8000.
FROM python:3.11-slim-bookworm

WORKDIR /opt/s2seasons
COPY . .
RUN python3 -m venv .venv && .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e .

ENV S2SEASONS_DATA_DIR=/data
EXPOSE 8000
CMD [".venv/bin/s2seasons", "serve", "--host", "0.0.0.0", "--port", "8000"]
