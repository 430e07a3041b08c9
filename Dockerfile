# syntax=docker/dockerfile:1
#
# walnats container image: `docker build -t walnats .`, then `docker run walnats cdc|gateway|all`.
# The runtime runs the TypeScript sources through tsx (bin/walnats.js), which is why tsx is a
# production dependency and there is no compile step. See docs/deploy.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- deps: production dependencies only, from the lock file ------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="walnats" \
      org.opencontainers.image.description="PostgreSQL logical replication to NATS JetStream, with a GraphQL gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    WALNATS_HTTP_PORT=8080 \
    WALNATS_LOG_PRETTY=false
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json tsconfig.json ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root src ./src
# The application files belong to root and are read-only for the process; it runs as the
# image's unprivileged `node` user (uid 1000). tsx keeps its transpile cache under /tmp, so a
# read-only root filesystem needs a writable /tmp (the Kubernetes manifests mount one).
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.WALNATS_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/walnats.js"]
CMD ["all"]
