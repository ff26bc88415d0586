# The portcullis image: one statically linked binary on an empty base.
#
# Build it with scripts/build-image.sh, which compiles the static binary on the host,
# stages it under target/image/ and runs `docker build -t portcullis:local .`. Nothing
# is pulled: the only base is `scratch`, so the image holds no shell, no libc and no
# CA bundle (the node makes no TLS connections: peers talk plain, sealed HTTP).
#
# Configuration: /etc/portcullis/portcullis.toml (deploy/docker/portcullis.toml) sets
# only `listen` and `data_dir`; the rest comes from PORTCULLIS_* variables or a mounted
# file. See the "Container image" section of docs/operations.md.
FROM scratch

# A non-root user; uid and gid 10001 do not collide with users of the host.
COPY deploy/docker/passwd deploy/docker/group /etc/
COPY deploy/docker/portcullis.toml /etc/portcullis/portcullis.toml
COPY target/image/portcullis /portcullis
# An empty directory staged by the build script, so that /data exists and belongs to
# the node's user before a volume is mounted: Docker copies that ownership into a new
# named volume.
COPY --chown=10001:10001 target/image/data/ /data/

USER 10001:10001
VOLUME ["/data"]
# HTTP API (token endpoint, gate, admin, metrics, readiness) and gossip.
EXPOSE 8080/tcp 7946/udp

ENV PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml
# No shell or curl in the image: the binary probes its own readiness endpoint
# (http://127.0.0.1:8080/readyz) and exits 0 when it answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/portcullis", "healthcheck"]
# SIGTERM (docker stop) is the graceful stop; give it time with `docker stop -t`.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/portcullis"]
CMD ["serve"]
