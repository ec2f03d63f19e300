# Aetherium images, one Dockerfile, two targets:
#
#   docker build --target server -t aetherium:server .   # the control plane (`aetherium server`)
#   docker build --target worker -t aetherium:worker .   # the worker agent (`aetherium worker`)
#
# `server` is the last stage, so a plain `docker build .` gives the control plane: the image that
# is safe to run anywhere. The worker image is the privileged one and has to be asked for by name.
#
# Stages: build (npm ci + npm run build), prod-deps (node_modules without the dev dependencies),
# runtime (the files a release needs, nothing else), then worker and server on top of runtime.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: compile the TypeScript into dist/ and the web UI into web/dist/ --------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# The lock file alone first, so the dependency layer is reused until package-lock.json changes.
# --ignore-scripts: the package's own `prepare` script is the build, and the sources are not here
# yet; the dependencies' install scripts only check or fetch native binaries that npm already
# installed as optional platform packages (esbuild, msgpackr-extract).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build \
  && test -f dist/cli/main.mjs \
  && test -f web/dist/index.html

# --- prod-deps: the runtime dependencies only ----------------------------------------------------
FROM build AS prod-deps
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: what `npm pack` would ship (package.json "files"), plus node_modules ----------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    AETHERIUM_LOG__PRETTY=false
WORKDIR /app
COPY --from=prod-deps /src/package.json ./package.json
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/migrations ./migrations
COPY --from=build /src/image ./image
COPY --from=build /src/web/dist ./web/dist
COPY --from=build /src/config.example.yaml ./config.example.yaml
# No src/ beside dist/: bin/aetherium.mjs then always runs the ahead-of-time build, never tsx.
ENTRYPOINT ["node", "bin/aetherium.mjs"]

# --- worker: the agent that runs VMs on a host -------------------------------------------------
FROM runtime AS worker
# The VM tools, all from Debian:
#   qemu-system-x86, qemu-utils  the qemu driver (microvm machine, qcow2 overlays)
#   bubblewrap                   the sandbox driver (namespaces); nsenter and setpriv come with util-linux
#   iproute2                     tap devices and addresses for the VMs' networks
#   busybox-static cpio lz4 e2fsprogs gcc libc6-dev xz-utils
#                                image/build.sh, which makes the qemu driver's guest image (kernel,
#                                initramfs, root disk); the driver runs it before its first VM and
#                                it would install whatever of these is missing, so they are here
# The package lists are kept: build.sh resolves the kernel package with apt-cache to tell whether
# the guest image is up to date, and without lists it would fetch them at every start.
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       qemu-system-x86 qemu-utils bubblewrap e2fsprogs busybox-static cpio lz4 iproute2 \
       gcc libc6-dev xz-utils ca-certificates \
  && rm -rf /var/cache/apt/archives/*.deb
# The guest image is built here, once, so a worker can start VMs with no way out of its network
# (the Kubernetes manifests let a worker reach only the control plane and DNS). It lands where the
# qemu driver looks by default (.aetherium/images/default under the working directory).
# Build with --build-arg GUEST_IMAGE=0 for a smaller image that builds it on the first qemu VM.
ARG GUEST_IMAGE=1
RUN if [ "$GUEST_IMAGE" = 1 ]; then sh image/build.sh /app/.aetherium/images/default; fi
# State (each worker's VMs, lock and joined identity) goes under /var/lib/aetherium: a volume in
# compose, a hostPath on Kubernetes, so VMs and the certificate survive a restart of the container.
ENV AETHERIUM_WORKER__DRIVERS__STATE_DIR=/var/lib/aetherium/state
RUN mkdir -p /var/lib/aetherium/state
VOLUME ["/var/lib/aetherium"]
# The worker runs as root, on purpose: it opens /dev/kvm, creates tap devices and network
# namespaces (CAP_NET_ADMIN), and makes a cgroup per VM to enforce its CPU and memory limits, none
# of which an unprivileged user may do. The isolation boundary is the VM (or the bubblewrap
# sandbox), not this container; run workers only on hosts meant for untrusted code. The worker
# holds no cluster credential, only its own certificate, and opens no port but its metrics.
USER 0:0
# The metrics listener (worker.metrics); the worker opens no other port.
EXPOSE 9464
CMD ["worker"]

# --- server: the control plane -----------------------------------------------------------------
FROM runtime AS server
# The control plane never touches a VM: it talks HTTP to clients, TLS to workers and TCP to the
# engines, so it runs as an unprivileged user with a fixed numeric uid (Kubernetes' runAsNonRoot
# can only check a numeric USER) and needs no capability. It writes nothing but what the engines
# keep, so the root filesystem can be mounted read-only.
RUN groupadd --system --gid 10001 aetherium \
  && useradd --system --uid 10001 --gid 10001 --home-dir /home/aetherium --create-home \
       --shell /usr/sbin/nologin aetherium \
  && mkdir -p /etc/aetherium/tls \
  && chown 10001:10001 /etc/aetherium/tls
# Inside a container the API and the agent port must listen on every address to be reachable; the
# API keeps authentication on (`aetherium server` refuses a non-loopback address without it), and
# what is published on the host is up to the deployment (compose binds to 127.0.0.1).
ENV AETHERIUM_API_GATEWAY__HOST=0.0.0.0 \
    AETHERIUM_AGENT__HOST=0.0.0.0 \
    HOME=/home/aetherium
USER 10001:10001
# 8080: the API, web UI, /health and /metrics. 4647: the agent port (mutual TLS, workers only).
EXPOSE 8080 4647
# /health is anonymous and answers 503 while an engine is down: Docker then shows the replica as
# unhealthy. Node's fetch, since the slim image has no curl. Plain HTTP: with api_gateway.tls on,
# override the check (Kubernetes ignores it and uses the Deployment's probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AETHERIUM_API_GATEWAY__PORT||process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/aetherium.mjs"]
CMD ["server"]
