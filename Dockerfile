# One image for every role of Tessera: coordinator, broker, or the tessera CLI.
#   docker run IMAGE coordinator   docker run IMAGE broker   docker run IMAGE topics list
# Configuration comes from TESSERA_* environment variables (docs/operations.md).
# Behind a TLS-intercepting proxy: docker build --build-arg EXTRA_CA_CERT="$(cat proxy-ca.pem)" .

FROM node:20-bookworm-slim AS build
WORKDIR /src
# PEM text of one more CA to trust while downloading (build stage only; see docker/with-extra-ca.sh).
ARG EXTRA_CA_CERT=""
COPY docker/with-extra-ca.sh /usr/local/bin/with-extra-ca
# Compilers for the SQLite driver, which is built from source below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* \
 && with-extra-ca npm install -g pnpm@10
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/service/package.json packages/service/
COPY packages/coordinator/package.json packages/coordinator/
COPY packages/broker/package.json packages/broker/
COPY packages/client/package.json packages/client/
COPY packages/cli/package.json packages/cli/
COPY integration-tests/package.json integration-tests/
# What the TypeScript build needs. No install scripts: compiling needs nothing native, and the
# sources are not here yet for the root `prepare` build.
RUN with-extra-ca pnpm install --frozen-lockfile --ignore-scripts
COPY packages packages
# The root build also compiles the test harness.
COPY integration-tests integration-tests
# /app: the CLI (which runs the coordinator and the broker too) with its production dependencies,
# in a flat node_modules, without install scripts: the one native module is built next.
RUN pnpm build \
 && with-extra-ca pnpm --filter @tessera/cli deploy --prod --legacy --config.node-linker=hoisted --config.ignore-scripts=true /app \
 && rm -rf /app/node_modules/.pnpm /app/node_modules/.modules.yaml
# The native step: better-sqlite3 compiled in /app, where it runs, against this image's own Node
# headers; then only the compiled module is kept (no sources, objects or static library).
RUN cd /app/node_modules/better-sqlite3 \
 && npm_config_nodedir=/usr/local with-extra-ca npm run build-release \
 && mv build/Release/better_sqlite3.node /root/better_sqlite3.node \
 && rm -rf build deps src binding.gyp \
 && mkdir -p build/Release \
 && mv /root/better_sqlite3.node build/Release/
# The layout the entrypoint relies on, and a native SQLite driver that loads, or the build fails here.
RUN node /app/dist/bin.js --help >/dev/null \
 && node /app/node_modules/@tessera/coordinator/dist/main.js --help >/dev/null \
 && node /app/node_modules/@tessera/broker/dist/main.js --help >/dev/null \
 && cd /app/node_modules/@tessera/broker \
 && node -e "new (require('better-sqlite3'))(':memory:').close()"

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    TESSERA_HOST=0.0.0.0 \
    TESSERA_DATA_DIR=/data
# openssl makes the cluster's certificates (`tessera certs create`, compose's tls-init).
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
COPY docker/entrypoint.sh /usr/local/bin/tessera-entrypoint
# /data is where the services keep their databases: mount a named volume there (compose does).
# No VOLUME instruction, so containers that keep no data (the CLI, the demo) leave no anonymous volume.
RUN mkdir -p /data /tls && chown node:node /data /tls && chmod 0755 /usr/local/bin/tessera-entrypoint
USER node
EXPOSE 7070 7071
# Healthy = serving (over HTTPS when TESSERA_TLS_CERT is set, checked with TESSERA_TLS_CA): /ready answers 200 once the coordinator has loaded its state, or once a broker
# has registered and applied its assignments (it stays ready while the coordinator is away).
# The port is TESSERA_PORT, else the role's default (a broker has TESSERA_BROKER_ID). The CLI role
# has no port; compose turns the check off for it.
HEALTHCHECK --interval=5s --timeout=2s --start-period=20s --retries=3 \
  CMD node -e "const e=process.env,m=require(e.TESSERA_TLS_CERT?'https':'http');m.get({host:'127.0.0.1',port:e.TESSERA_PORT||(e.TESSERA_BROKER_ID?7071:7070),path:'/ready',ca:e.TESSERA_TLS_CA&&require('fs').readFileSync(e.TESSERA_TLS_CA),timeout:1500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
ENTRYPOINT ["tessera-entrypoint"]
CMD ["--help"]
