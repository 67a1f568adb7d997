# One image for every role of Tessera: coordinator, broker, or the tessera CLI.
#   docker run IMAGE coordinator   docker run IMAGE broker   docker run IMAGE topics list
# Configuration comes from TESSERA_* environment variables (docs/operations.md).

FROM node:20-bookworm-slim AS build
WORKDIR /src
# better-sqlite3 compiles from source when no prebuilt binary can be downloaded.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g pnpm@10
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/service/package.json packages/service/
COPY packages/coordinator/package.json packages/coordinator/
COPY packages/broker/package.json packages/broker/
COPY packages/client/package.json packages/client/
COPY packages/cli/package.json packages/cli/
COPY integration-tests/package.json integration-tests/
# Sources are not here yet, so the root `prepare` build is skipped; native modules are built explicitly.
RUN pnpm install --frozen-lockfile --ignore-scripts && pnpm rebuild better-sqlite3
COPY packages packages
# The root build (and `pnpm deploy`, which runs the root `prepare`) also compiles the test harness.
COPY integration-tests integration-tests
RUN pnpm build \
 && pnpm --filter @tessera/cli deploy --prod --legacy /app
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
RUN mkdir -p /data /tls && chown node:node /data /tls && chmod 0755 /usr/local/bin/tessera-entrypoint
USER node
VOLUME ["/data"]
EXPOSE 7070 7071
# Healthy = serving (over HTTPS when TESSERA_TLS_CERT is set, checked with TESSERA_TLS_CA): /ready answers 200 once the coordinator has loaded its state, or once a broker
# has registered and applied its assignments (it stays ready while the coordinator is away).
# The port is TESSERA_PORT, else the role's default (a broker has TESSERA_BROKER_ID). The CLI role
# has no port; compose turns the check off for it.
HEALTHCHECK --interval=5s --timeout=2s --start-period=20s --retries=3 \
  CMD node -e "const e=process.env,m=require(e.TESSERA_TLS_CERT?'https':'http');m.get({host:'127.0.0.1',port:e.TESSERA_PORT||(e.TESSERA_BROKER_ID?7071:7070),path:'/ready',ca:e.TESSERA_TLS_CA&&require('fs').readFileSync(e.TESSERA_TLS_CA),timeout:1500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
ENTRYPOINT ["tessera-entrypoint"]
CMD ["--help"]
