# One image for every greenroom command: `serve` (the dev server), `agent …` (an agent worker) and
# `fleet …` (a fleet host, or a Ray node of one: the image has the `ray` extra). ENTRYPOINT is `greenroom`:
#   docker run -p 7880:7880 greenroom                                 # serve on 0.0.0.0:7880 (the default)
#   docker run greenroom agent start mybots:entrypoint --url ws://…   # (mount or COPY your bots' modules)
#   docker run greenroom fleet run /spec/fleet.toml --no-table
# BASE: any Debian-like image with python3 (>= 3.11) and its venv module. CI (.ci/image) builds this file
# with buildah on a base it makes with debootstrap (Debian bookworm's python3 3.11), since no container
# registry is reachable there, then runs `greenroom --help` and each command's --help in the image.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG EXTRAS=ray
WORKDIR /src
COPY pyproject.toml README.md ./
COPY codecs codecs
COPY runtime runtime
COPY actors actors
COPY rtc rtc
COPY testing testing
COPY agents agents
COPY fleet fleet
COPY devserver devserver
COPY cli cli
RUN python3 -m venv /opt/greenroom \
    && /opt/greenroom/bin/pip install --no-cache-dir --disable-pip-version-check "/src[${EXTRAS}]"

FROM ${BASE}
COPY --from=build /opt/greenroom /opt/greenroom
ENV PATH=/opt/greenroom/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 greenroom
USER greenroom
WORKDIR /home/greenroom
EXPOSE 7880/tcp
EXPOSE 50000-60000/udp
# Inside a container the dev server binds every interface; publish the signalling port with -p 7880:7880.
ENTRYPOINT ["greenroom"]
CMD ["serve", "--bind", "0.0.0.0"]
