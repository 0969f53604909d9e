# The guard worker. Secrets are not baked in: they come from the environment at run time (docker compose env_file).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts=false && npm install --no-save tsx@4.20.6
COPY tsconfig.json ./
COPY src ./src
# The audit log's mount point (BREAKER_AUDIT_DIR in docker-compose.yml): a new named volume takes this directory's
# owner, so the worker (user node) can write to it.
RUN mkdir -p /audit && chown node:node /audit
USER node
CMD ["npx", "tsx", "src/worker.ts"]
