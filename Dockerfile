# Builds the greenroom wheel and runs the LiveKit-compatible dev server by default.
# (No Docker engine exists on the machines this project is developed on; this file was written, not built.)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY codecs codecs
COPY runtime runtime
COPY actors actors
COPY rtc rtc
COPY testing testing
COPY agents agents
COPY fleet fleet
COPY cli cli
COPY devserver devserver
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
EXPOSE 7880/tcp
EXPOSE 50000-60000/udp
# Inside a container, bind every interface; the signalling port must be published with -p 7880:7880.
ENTRYPOINT ["greenroom"]
CMD ["serve", "--bind", "0.0.0.0"]
