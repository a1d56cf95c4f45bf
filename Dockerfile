# s2seasons tile server. Builds the wheel from the repository and installs it, not editable, into a
# venv as the README's install does (the viewer's templates/ and static/ are in the wheel), then serves
# the seasons built into /data (mount it) on port 8000. The final image holds the venv, not the sources.
FROM python:3.11-slim-bookworm AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY compositor compositor
COPY templates templates
COPY static static
RUN python3 -m pip wheel -q --no-deps -w /wheels .

FROM python:3.11-slim-bookworm

COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/s2seasons && /opt/s2seasons/bin/python -m pip install -q --upgrade pip \
    && /opt/s2seasons/bin/python -m pip install -q /wheels/*.whl && rm -r /wheels

ENV S2SEASONS_DATA_DIR=/data
EXPOSE 8000
CMD ["/opt/s2seasons/bin/s2seasons", "serve", "--host", "0.0.0.0", "--port", "8000"]
